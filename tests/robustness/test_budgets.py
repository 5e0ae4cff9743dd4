"""Budgets that mean what they say: a healthy server never ends as `error` because attt was
busy, however short `--timeout` or wide `--concurrency`; and the open-file limit is raised at
start-up, concurrency capped to it with a message when it binds."""

import json
import resource
from pathlib import Path
from typing import Any

import yaml

from tests.robustness.conftest import run_attt
from tests.servers.listeners import PORTS_HOST_MIXED
from tests.servers.sshd import SshServers
from tests.servers.tls import GNUTLS_PORT, TlsLab

HEALTHY_TLS = (
    "modern",
    "intermediate",
    "legacy",
    "tripledes",
    "expired",
    "selfsigned",
    "smtp",
    "imap",
    "pop3",
)


def _fleet(path: Path, tls: TlsLab, ssh: SshServers) -> Path:
    """A dozen systems and then some, each one healthy server (well or badly configured, but
    answering): TLS, STARTTLS, SSH, and hosts with plain open ports."""
    systems: list[dict[str, Any]] = []
    for name in HEALTHY_TLS:
        server = tls.servers[name]
        services = [{"port": GNUTLS_PORT, "kind": "tls"}] if server.port == GNUTLS_PORT else []
        host = {"address": server.ip, "services": services}
        systems.append({"id": f"tls-{name}", "name": name, "owner": "Sở KH&CN", "level": 2, "hosts": [host]})
    for name in ("hardened", "debian", "weak"):
        host = {"address": getattr(ssh, name), "services": [{"port": ssh.port, "kind": "ssh"}]}
        systems.append({"id": f"ssh-{name}", "name": name, "owner": "Sở TT&TT", "level": 2, "hosts": [host]})
    for address in (PORTS_HOST_MIXED,):
        host = {"address": address}
        ident = f"ports-{address.rsplit('.', 1)[1]}"
        systems.append({"id": ident, "name": ident, "owner": "UBND", "level": 1, "hosts": [host]})
    inventory = {"province": "Hà Tĩnh", "scope": ["127.0.0.0/8"], "systems": systems}
    path.write_text(yaml.safe_dump(inventory, allow_unicode=True), encoding="utf-8")
    return path


def test_healthy_servers_never_end_as_error_at_a_short_timeout_and_wide_concurrency(
    tls_lab_servers: TlsLab, sshd_servers: SshServers, port_listeners: object, tmp_path: Path
) -> None:
    inventory = _fleet(tmp_path / "fleet.yaml", tls_lab_servers, sshd_servers)
    out = tmp_path / "out"
    run = run_attt(
        ["scan", "-i", str(inventory), "--check", "ports", "--check", "tls", "--check", "ssh",
         "--timeout", "5", "--concurrency", "256", "--format", "json",
         "--out", str(out), "--db", str(tmp_path / "store.sqlite")],
        timeout=300,
    )  # fmt: skip
    assert run.returncode in (0, 1), run.terminal[-3000:]
    assert (out / "report.json").is_file(), run.terminal[-3000:]
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    errors = [
        (o["system"], o["check"], o["port"], o["error"])
        for o in report["observations"]
        if o["status"] == "error"
    ]
    assert errors == []
    seen = {(o["system"], o["check"]) for o in report["observations"]}
    assert {(f"tls-{name}", "tls") for name in HEALTHY_TLS} <= seen
    assert {(f"ssh-{name}", "ssh") for name in ("hardened", "debian", "weak")} <= seen


_LOW_LIMIT = """
import resource, sys
resource.setrlimit(resource.RLIMIT_NOFILE, (300, 300))
from attt.scanner.cli import main
sys.exit(main())
"""


def test_concurrency_is_capped_to_the_open_file_limit_and_says_so(
    port_listeners: object, tmp_path: Path
) -> None:
    host = {"address": PORTS_HOST_MIXED}
    system = {"id": "one", "name": "one", "owner": "Sở KH&CN", "level": 1, "hosts": [host]}
    inventory = tmp_path / "inv.yaml"
    inventory.write_text(
        yaml.safe_dump({"province": "Hà Tĩnh", "scope": ["127.0.0.0/8"], "systems": [system]})
    )
    run = run_attt(
        ["scan", "-i", str(inventory), "--check", "ports", "--concurrency", "256", "--format", "json",
         "--out", str(tmp_path / "out"), "--db", str(tmp_path / "store.sqlite")],
        entry=_LOW_LIMIT,
        timeout=120,
    )  # fmt: skip
    assert run.returncode in (0, 1), run.terminal[-2000:]
    assert "--concurrency 256 lowered to 17: the open-file limit is 300" in run.stderr


def test_the_soft_open_file_limit_is_raised_to_the_hard_one() -> None:
    from attt.scanner.limits import raise_open_files

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(256, hard), hard))
        raised = raise_open_files()
        assert raised == resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        assert raised == min(hard, 1 << 20)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
