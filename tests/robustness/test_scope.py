"""Scope is law: attt contacts only the addresses and ports the inventory registers.

- Addresses carrying nmap or shell syntax are refused before anything is sent (exit 2).
- A name that resolves outside the scope is refused; one that resolves inside is accepted.
- A name is resolved once and its address pinned for the whole run: a DNS answer that changes
  during the scan (rebinding) is never followed.
- Every connect(2) of the whole process tree during a full scan (attt, its threads, nmap) is
  watched with strace, and every program attt starts with a Python audit hook.
"""

import ipaddress
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from attt.scanner.cli import main
from tests.robustness.conftest import run_attt
from tests.servers.hostile import NET, HostileLab

INJECTIONS = [
    "127.0.50.20 -oN /tmp/owned",
    "127.0.50.20;id",
    "127.0.50.20 && id",
    "$(id).attt.test",
    "`id`.attt.test",
    "127.0.50.20|nc",
    "-iL/etc/passwd",
    "--script=http-title",
    "127.0.50.0/24",
    "127.0.50.1-5",
    "127.0.50.*",
    "127.0.50.20,21",
    "127.0.50.20 127.0.50.21",
    "127.0.50.20\n-oN x",
    "0x7f.0.50.20",
    "0177.0.50.20",
    "host.attt.test:443",
    "[::1]",
    "ho st.attt.test",
    "-leading.attt.test",
    "*.attt.test",
    "",
]
AUDITED_ENTRY = """
import json, os, socket, sys
_log = open(os.environ["ATTT_AUDIT_LOG"], "a", buffering=1)
_answers = json.loads(os.environ.get("ATTT_FAKE_DNS", "{}"))
_real_getaddrinfo = socket.getaddrinfo


def _getaddrinfo(host, port, *args, **kwargs):
    # DNS for the test names only: each lookup gets the next answer, as a rebinding server would.
    if isinstance(host, str) and host in _answers:
        _log.write(json.dumps(["resolve", host]) + "\\n")
        answers = _answers[host]
        ip = answers.pop(0) if len(answers) > 1 else answers[0]
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port or 0))]
    return _real_getaddrinfo(host, port, *args, **kwargs)


def _hook(event, args):
    if event == "subprocess.Popen":
        _log.write(json.dumps(["exec", [str(a) for a in args[1]]]) + "\\n")
    elif event == "socket.connect":
        _log.write(json.dumps(["connect", repr(args[1])]) + "\\n")


socket.getaddrinfo = _getaddrinfo
sys.addaudithook(_hook)
from attt.scanner.cli import main
sys.exit(main())
"""
_CONNECT = re.compile(
    r"connect\(\d+, \{sa_family=(AF_INET6?), sin6?_port=htons\((\d+)\), "
    r"(?:sin_addr=inet_addr\(\"([^\"]+)\"\)|sin6_flowinfo=[^,]+, inet_pton\(AF_INET6, \"([^\"]+)\")"
)


def _inventory(path: Path, scope: list[str], address: str, **host: Any) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "province": "Hà Tĩnh",
                "scope": scope,
                "systems": [
                    {
                        "id": "portal",
                        "name": "Portal",
                        "owner": "Sở Khoa học và Công nghệ",
                        "level": 3,
                        "hosts": [{"address": address, **host}],
                    }
                ],
            },
            allow_unicode=True,
        ),
        encoding="utf-8",
    )
    return path


@pytest.mark.parametrize("address", INJECTIONS)
def test_addresses_with_nmap_or_shell_syntax_are_refused(address: str, tmp_path: Path) -> None:
    inventory = _inventory(tmp_path / "inv.yaml", [f"{NET}.0/24", "*.attt.test"], address)
    db = tmp_path / "store.sqlite"
    result = CliRunner().invoke(main, ["scan", "-i", str(inventory), "--db", str(db), "--out", str(tmp_path)])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("attt: error: ") and "inv.yaml" in lines[0], lines
    assert not db.exists(), "a store was opened for a scan that must not start"


def test_a_name_resolving_outside_scope_is_refused(tmp_path: Path) -> None:
    # `localhost` resolves (from /etc/hosts, no DNS query) to 127.0.0.1, outside 127.0.50.0/24.
    inventory = _inventory(tmp_path / "inv.yaml", [f"{NET}.0/24", "localhost"], "localhost")
    result = CliRunner().invoke(main, ["scan", "-i", str(inventory), "--db", str(tmp_path / "db")])
    assert result.exit_code == 2
    assert "out of scope" in result.stderr and "127.0.0.1" in result.stderr
    assert not (tmp_path / "db").exists()


def test_a_name_resolving_inside_scope_is_accepted(tmp_path: Path) -> None:
    inventory = _inventory(tmp_path / "inv.yaml", ["127.0.0.1/32", "::1/128", "localhost"], "localhost")
    result = CliRunner().invoke(main, ["inventory", "validate", str(inventory)])
    assert result.exit_code == 0, result.output
    assert "all in scope" in result.output


def test_a_name_outside_the_scope_names_is_not_even_resolved(tmp_path: Path) -> None:
    inventory = _inventory(tmp_path / "inv.yaml", [f"{NET}.0/24"], "elsewhere.attt.test")
    log = tmp_path / "audit.log"
    run = run_attt(
        ["scan", "-i", str(inventory), "--db", str(tmp_path / "db")],
        entry=AUDITED_ENTRY,
        env={"ATTT_AUDIT_LOG": str(log), "ATTT_FAKE_DNS": json.dumps({"elsewhere.attt.test": [f"{NET}.20"]})},
        timeout=30,
    )
    assert run.returncode == 2, run.terminal
    events = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    # The scan's own store process (attt.scanner.storehost) starts with the program; it opened
    # nothing (no store file above) and is told of no target.
    probing = [e for e in events if e[0] in ("resolve", "connect", "exec") and not _store_process(e)]
    assert not probing, events
    assert not (tmp_path / "db").exists()


def _store_process(event: list[Any]) -> bool:
    return event[0] == "exec" and "attt.scanner.storehost" in event[1][-1]


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed (Makefile: system-deps)")
def test_a_full_scan_contacts_only_the_pinned_registered_address(hostile: HostileLab, tmp_path: Path) -> None:
    """A name that resolves to the good host first and to another lab address afterwards: the
    whole scan (ports, tls, ssh, web) must connect to the first answer only, to registered ports."""
    name = "pinned.attt.test"
    good, rebound = f"{NET}.20", f"{NET}.21"
    inventory = _inventory(
        tmp_path / "inv.yaml",
        [f"{NET}.0/24", "*.attt.test"],
        name,
        hostname=name,
        services=[{"port": 443, "kind": "tls"}, {"port": 22, "kind": "ssh"}],
    )
    log, trace, out = tmp_path / "audit.log", tmp_path / "strace.txt", tmp_path / "out"
    # strace slows every connection down: the TLS probe needs a larger budget than usual.
    options = ["--timeout", "20", "--db", str(tmp_path / "db"), "--out", str(out), "--format", "json"]
    run = run_attt(
        ["scan", "-i", str(inventory), *options],
        entry=AUDITED_ENTRY,
        wrapper=["strace", "-f", "-qq", "-e", "trace=connect", "-o", str(trace)],
        env={"ATTT_AUDIT_LOG": str(log), "ATTT_FAKE_DNS": json.dumps({name: [good, rebound]})},
        timeout=90,
    )
    assert run.returncode in (0, 1, 3), run.terminal[-2000:]
    events = [json.loads(line) for line in log.read_text().splitlines()]

    # Resolved exactly once, and every probe saw the pinned address.
    assert [e for e in events if e[0] == "resolve"] == [["resolve", name]]
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert {o["ip"] for o in report["observations"]} == {good}
    assert {(o["check"], o["status"]) for o in report["observations"]} == {
        ("ports", "ok"),
        ("tls", "ok"),
        ("ssh", "ok"),
        ("web", "ok"),
    }

    # nmap is told the pinned address only, never the name, and never resolves (-n).
    nmap_runs = [e[1] for e in events if e[0] == "exec" and Path(e[1][0]).name == "nmap" and "-p" in e[1]]
    assert nmap_runs, events
    for argv in nmap_runs:
        assert "-n" in argv and name not in " ".join(argv)
        assert {a for a in argv if _is_ip(a)} == {good}, argv
    scanned = {int(p) for argv in nmap_runs for p in _ports(argv[argv.index("-p") + 1])}

    # Every connect of every process: the pinned address only, on a port that was scanned.
    connects = _inet_connects(trace.read_text())
    assert connects, "strace saw no connect at all"
    outside = [(ip, port) for ip, port in connects if ip != good or port not in scanned]
    assert outside == [], f"{len(outside)} out-of-scope connections: {outside[:10]}"
    python_ports = {port for ip, port in connects if ip == good} & {443, 22}
    assert python_ports == {443, 22}


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _ports(spec: str) -> list[int]:
    out: list[int] = []
    for part in spec.split(","):
        low, _, high = part.partition("-")
        out += range(int(low), int(high or low) + 1)
    return out


def _inet_connects(trace: str) -> list[tuple[str, int]]:
    found: list[tuple[str, int]] = []
    for line in trace.splitlines():
        if "connect(" not in line or "AF_UNIX" in line or "AF_NETLINK" in line:
            continue
        match = _CONNECT.search(line)
        assert match, f"unparsed connect: {line}"
        found.append((match.group(3) or match.group(4), int(match.group(2))))
    return found
