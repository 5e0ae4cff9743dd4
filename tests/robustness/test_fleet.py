"""A whole fleet through the real CLI: inventories that register one host several times, and
what each system is owed from the probe it shares or not.

1. Two systems of the same level register one address under different names and services: the
   probe of one system's registration must not stand for the other's (its SNI, its certificate
   name, its declared TLS port), and the summary does not claim one probe served both.
2. A host where every port is filtered (packets vanish, nothing answers, not even a refusal)
   gives no `pass` and no score: in a network namespace the test makes, whose only route to the
   host leads into a link where nobody listens.
3. One system declaring thirty thousand ports on its host does not cost another system's hosts
   their port scans (one nmap run scans its hosts' union of ports, within each one's budget).
4. A host registered by its DNS name alone (no separate `hostname`) is reached under that name:
   it is the SNI and the name its certificate must carry, never "no host name to match".

Servers run on 127.0.203.0/24 and are started by the tests.
"""

import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.robustness.conftest import ATTT_ENTRY, run_attt
from tests.servers import stop_process
from tests.servers.listeners import tcp_listeners

NET = "127.0.203"
SHARED = f"{NET}.1"
START_TIMEOUT = 10.0
Report = dict[str, Any]


def _wait_listening(ip: str, port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the server on {ip}:{port} exited with {proc.returncode}")
        try:
            socket.create_connection((ip, port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    pytest.fail(f"nothing listens on {ip}:{port} after {START_TIMEOUT:.0f} s")


@contextmanager
def _tls_servers(workdir: Path, ip: str, ports: tuple[int, ...], name: str) -> Iterator[None]:
    """`openssl s_server` on each port of `ip`, with a self-signed certificate for `name` only."""
    cert, key = workdir / f"{name}.crt", workdir / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "30", "-subj", f"/CN={name}",
         "-addext", f"subjectAltName=DNS:{name}"],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    with ExitStack() as stack:
        for port in ports:
            proc = subprocess.Popen(
                ["openssl", "s_server", "-accept", f"{ip}:{port}", "-cert", str(cert), "-key", str(key),
                 "-www", "-quiet", "-naccept", "10000"],
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            stack.callback(stop_process, proc)
            _wait_listening(ip, port, proc)
        yield


def _inventory(path: Path, *systems: dict[str, Any]) -> Path:
    base = {"name": "Hệ thống", "owner": "UBND xã Thạch Hà", "level": 3}
    body = {"province": "Hà Tĩnh", "scope": [f"{NET}.0/24"], "systems": [base | s for s in systems]}
    path.write_text(json.dumps(body, ensure_ascii=False))  # JSON is YAML without anchors
    return path


def _scan(tmp_path: Path, inventory: Path, *args: str, entry: str = ATTT_ENTRY) -> tuple[int, Report, str]:
    out = tmp_path / "out"
    run = run_attt(
        ["scan", "-i", str(inventory), "--out", str(out), "--db", str(tmp_path / "runs.db"),
         "--format", "json", "--lang", "en", "--timeout", "10", *args],
        timeout=120, entry=entry,
    )  # fmt: skip
    assert "Traceback" not in run.terminal, run.terminal
    assert (out / "report.json").exists(), run.terminal
    return run.returncode, json.loads((out / "report.json").read_text()), run.stdout


def _finding(report: Report, system: str, rule: str, port: int | None = None) -> dict[str, Any]:
    [finding] = [
        f for f in report["findings"] if (f["system"], f["rule_id"]) == (system, rule) and f["port"] == port
    ]
    return dict(finding)


def test_1_one_address_two_registrations_each_probed_as_registered(tmp_path: Path) -> None:
    # One machine, two systems of the same level and policy: `a` knows it as a.attt.test (the
    # name its certificate carries), `b` as b.attt.test with a TLS service on 10443 besides.
    inventory = _inventory(
        tmp_path / "inv.yaml",
        {"id": "sys-a", "hosts": [{"address": SHARED, "hostname": "a.attt.test"}]},
        {"id": "sys-b", "hosts": [{"address": SHARED, "hostname": "b.attt.test",
                                   "services": [{"port": 10443, "kind": "tls"}]}]},
    )  # fmt: skip
    with _tls_servers(tmp_path, SHARED, (443, 10443), "a.attt.test"):
        code, report, stdout = _scan(tmp_path, inventory, "--check", "ports", "--check", "tls")
    tls = {(o["system"], o["port"]): o for o in report["observations"] if o["check"] == "tls"}
    assert set(tls) == {("sys-a", 443), ("sys-b", 443), ("sys-b", 10443)}
    assert all(o["status"] == "ok" for o in tls.values()), tls
    assert tls[("sys-a", 443)]["data"]["sni"] == "a.attt.test"
    assert tls[("sys-b", 443)]["data"]["sni"] == "b.attt.test"
    # The certificate names a.attt.test: right for `a`, wrong for `b`.
    assert _finding(report, "sys-a", "TLS-HOSTNAME", 443)["status"] == "pass"
    assert _finding(report, "sys-b", "TLS-HOSTNAME", 443)["status"] == "fail"
    assert _finding(report, "sys-b", "TLS-HOSTNAME", 10443)["status"] == "fail"
    # `b`'s port scan covered the port it declares.
    assert _finding(report, "sys-b", "PORT-DECLARED-REACHABLE")["status"] == "pass"
    assert _finding(report, "sys-a", "PORT-DECLARED-REACHABLE")["status"] == "not_applicable"
    assert report["summary"]["systems"]["sys-b"]["by_status"]["error"] == 0
    assert code == 1  # self-signed certificates fail their rules
    # Nothing was probed once for both, and the summary does not say it was.
    assert f"host {SHARED} is in systems sys-a, sys-b: each judges it by its own rules" in stdout
    assert "probed once" not in stdout


SILENT_NET = "198.18.203"
"""Only inside the test's own network namespace (see `_SILENT_LINK`): nothing routes it anywhere else."""
_SILENT_LINK = f"""
set -e
ip link set lo up
ip link add attt-v0 type veth peer name attt-v1
ip addr add {SILENT_NET}.1/24 dev attt-v0
ip link set attt-v0 up
ip link set attt-v1 up
for h in 2 3; do ip neigh add {SILENT_NET}.$h lladdr 02:00:00:00:cb:0$h dev attt-v0 nud permanent; done
ip route get {SILENT_NET}.2 | grep -q 'dev attt-v0'
exec "$@"
"""
"""A fresh namespace whose hosts .2 and .3 sit behind a link that drops every frame: the
frames carry a hardware address no interface owns, so each SYN vanishes unanswered (a firewall's
DROP, without needing one). `set -e` stops before any packet if the link cannot be made."""


def _can_make_links() -> bool:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return False
    trial = subprocess.run(
        ["unshare", "-n", "sh", "-c", "ip link add t0 type veth peer name t1"],
        capture_output=True,
        timeout=10,
    )
    return trial.returncode == 0


@pytest.mark.skipif(not _can_make_links(), reason="needs `unshare -n` and veth links (root, iproute2)")
def test_2_a_host_where_every_port_is_filtered_is_error_never_pass(tmp_path: Path) -> None:
    registered: dict[str, Any] = {"level": 3, "tags": ["internet-facing", "portal"], "allowed_ports": [443]}
    inventory = tmp_path / "inv.yaml"
    inventory.write_text(json.dumps({
        "province": "Hà Tĩnh", "scope": [f"{SILENT_NET}.0/24"],
        "systems": [
            {"id": "dropped", "name": "H", "owner": "UBND xã Thạch Hà", **registered,
             "hosts": [{"address": f"{SILENT_NET}.2", "services": [{"port": 443, "kind": "tls"}]}]},
            {"id": "dropped-bare", "name": "H", "owner": "UBND xã Thạch Hà", **registered,
             "hosts": [{"address": f"{SILENT_NET}.3"}]},
        ],
    }, ensure_ascii=False))  # fmt: skip
    out = tmp_path / "out"
    run = run_attt(
        ["scan", "-i", str(inventory), "--out", str(out), "--db", str(tmp_path / "runs.db"),
         "--format", "json", "--lang", "en", "--timeout", "4", "--check", "ports", "--check", "tls"],
        wrapper=["unshare", "-n", "sh", "-c", _SILENT_LINK, "sh"], timeout=90,
    )  # fmt: skip
    assert "Traceback" not in run.terminal, run.terminal
    report: Report = json.loads((out / "report.json").read_text())
    ports = {o["system"]: o for o in report["observations"] if o["check"] == "ports"}
    assert set(ports) == {"dropped", "dropped-bare"}
    for obs in ports.values():
        assert obs["status"] == "error" and obs["data"] is None, obs
        assert "host timeout" in obs["error"] or "all filtered" in obs["error"], obs["error"]
    [tls] = [o for o in report["observations"] if o["check"] == "tls" and o["system"] == "dropped"]
    assert (tls["port"], tls["status"]) == (443, "error")
    statuses = {f["status"] for f in report["findings"]}
    assert statuses <= {"error", "not_applicable"} and "error" in statuses
    # Not one port rule is judged: neither "closed" nor "only allowed ports open".
    ports_findings = [f for f in report["findings"] if f["check"] == "ports"]
    assert [f["rule_id"] for f in ports_findings] == ["PORTS-PROBE-ERROR"] * 2
    assert all("PORT-ONLY-ALLOWED" in f["blocked"] and "PORT-TELNET" in f["blocked"] for f in ports_findings)
    for system in ("dropped", "dropped-bare"):
        assert report["summary"]["systems"][system]["score"] is None
    assert report["summary"]["overall"]["score"] is None
    assert run.returncode == 3, run.terminal


def test_3_a_host_with_thousands_of_declared_ports_leaves_its_neighbours_their_scans(tmp_path: Path) -> None:
    neighbours = [f"{NET}.{i}" for i in range(20, 36)]
    crowded = f"{NET}.40"
    inventory = _inventory(
        tmp_path / "inv.yaml",
        {"id": "fleet", "hosts": [{"address": a} for a in neighbours]},
        # Thirty thousand ports as plain TCP services: as many as an inventory may hold.
        {
            "id": "crowded",
            "hosts": [{"address": crowded, "services": [{"port": p} for p in range(1, 30001)]}],
        },
    )
    with tcp_listeners([(a, 8080) for a in [*neighbours, crowded]]):
        # A budget ample for a host's own ports, and far short of the crowded host's thirty thousand.
        _, report, _ = _scan(tmp_path, inventory, "--check", "ports", "--concurrency", "16", "--timeout", "3")
    ports = {o["host"]: o for o in report["observations"]}
    assert set(ports) == {*neighbours, crowded}
    for address in neighbours:
        obs = ports[address]
        assert obs["status"] == "ok", obs["error"]
        assert len(obs["data"]["scanned"]) < 200 and [p["port"] for p in obs["data"]["open"]] == [8080]
    assert report["summary"]["systems"]["fleet"]["by_status"]["error"] == 0


NAMED = f"{NET}.7"
_DNS_ENTRY = f"""
import socket, sys
_real_getaddrinfo = socket.getaddrinfo


def _getaddrinfo(host, port, *args, **kwargs):
    # The test's own DNS: portal.attt.test is {NAMED}; every other name as the system says.
    if host == "portal.attt.test":
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("{NAMED}", port or 0))]
    return _real_getaddrinfo(host, port, *args, **kwargs)


socket.getaddrinfo = _getaddrinfo
from attt.scanner.cli import main
sys.exit(main())
"""


def test_4_a_host_registered_by_name_is_reached_and_matched_under_that_name(tmp_path: Path) -> None:
    host = {"address": "portal.attt.test", "services": [{"port": 443, "kind": "tls"}]}
    inventory = tmp_path / "inv.yaml"
    system = {"id": "by-name", "name": "H", "owner": "UBND xã Thạch Hà", "level": 3, "hosts": [host]}
    body = {"province": "Hà Tĩnh", "scope": [f"{NET}.0/24", "*.attt.test"], "systems": [system]}
    inventory.write_text(json.dumps(body, ensure_ascii=False))
    # The server's certificate names another host.
    with _tls_servers(tmp_path, NAMED, (443,), "other.attt.test"):
        _, report, _ = _scan(tmp_path, inventory, "--check", "tls", entry=_DNS_ENTRY)
    [obs] = report["observations"]
    assert (obs["host"], obs["status"], obs["data"]["sni"]) == ("portal.attt.test", "ok", "portal.attt.test")
    assert obs["data"]["certificate"]["hostname_matches"] is False
    hostname = _finding(report, "by-name", "TLS-HOSTNAME", 443)
    assert hostname["status"] == "fail", hostname["message"]
    assert hostname["message"]["en"] == "the certificate is not valid for portal.attt.test"
