"""`attt scan --check web` against hostile HTTP servers and a redirect out of scope.

The servers send endless headers, a 10 MB header line, one byte every half second, a redirect
loop, and markup, bidi overrides, terminal escapes and spreadsheet formulas in headers, cookies
and a generator tag. What must hold: the scan ends within its timeout, each hostile endpoint is
an `error` or a correct finding, no traceback, no connection outside the inventory (strace sees
every connect of the process), and the hostile text inert in every report format.
"""

import csv
import json
import re
import shutil
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.robustness.conftest import AtttRun, run_attt
from tests.servers.web import (
    HOSTILE_COOKIE,
    HOSTILE_NET,
    HOSTILE_SERVER,
    TRAP,
    HostileWeb,
    WebLab,
)

TIMEOUT = 5
FORMATS = "html,json,junit,sarif,csv"
RAW = ("\x1b", "\u202e", "\x07")
"""Characters that act on a terminal or reorder text: never raw in an output."""
OUTCOMES = {
    "endless headers": "error",
    "10 MB header line": "error",
    "slow drip": "error",
    "redirect loop": "WEB-HTTPS-REDIRECT",
    "hostile text": "WEB-VERSION-DISCLOSURE",
}
"""Case → `error` (every finding of the endpoint), or the rule that must fail on it."""
_CONNECT = re.compile(
    r"connect\(\d+, \{sa_family=AF_INET, sin_port=htons\((\d+)\), sin_addr=inet_addr\(\"([\d.]+)\"\)"
)


@dataclass(frozen=True)
class Scan:
    run: AtttRun
    out: Path
    connects: list[tuple[str, int]] | None
    """Every IPv4 connect of the scan (None without strace)."""
    trap_before: int

    @property
    def report(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.out / "report.json").read_text(encoding="utf-8"))
        return data


def _inventory(path: Path, hostile: HostileWeb, lab: WebLab) -> Path:
    offscope = lab["offscope"]
    systems = [
        {
            "id": "hostile",
            "name": "Hostile web servers",
            "owner": "Sở Khoa học và Công nghệ",
            "level": 3,
            "hosts": [
                {"address": ip, "services": [{"port": 80, "kind": "http"}]} for ip in hostile.hosts.values()
            ],
        },
        {
            "id": "offscope",
            "name": "Portal redirecting out of scope",
            "owner": "UBND xã Thạch Hà",
            "level": 1,
            "tags": ["portal"],
            "hosts": [{"address": offscope.ip, "hostname": offscope.hostname}],
        },
    ]
    scope = [f"{HOSTILE_NET}.0/24", f"{offscope.ip}/32"]
    inventory = {"province": "Hà Tĩnh", "scope": scope, "systems": systems}
    path.write_text(yaml.safe_dump(inventory, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def scan(hostile_web: HostileWeb, web_servers: WebLab, tmp_path_factory: pytest.TempPathFactory) -> Scan:
    workdir = tmp_path_factory.mktemp("hostile-web")
    inventory = _inventory(workdir / "inventory.yaml", hostile_web, web_servers)
    out, trace = workdir / "out", workdir / "strace.txt"
    traced = shutil.which("strace") is not None
    wrapper = ["strace", "-f", "-qq", "-e", "trace=connect", "-o", str(trace)] if traced else []
    options = ["--check", "web", "--timeout", str(TIMEOUT), "--format", FORMATS, "--lang", "en"]
    before = web_servers.trap.accepted
    run = run_attt(
        ["scan", "-i", str(inventory), *options, "--out", str(out), "--db", str(workdir / "db.sqlite")],
        wrapper=wrapper,
        timeout=120,
    )
    connects = [(ip, int(port)) for port, ip in _CONNECT.findall(trace.read_text())] if traced else None
    return Scan(run, out, connects, before)


def test_the_scan_ends_within_its_timeout_without_a_traceback(scan: Scan) -> None:
    assert scan.run.returncode in (1, 3), scan.run.terminal[-2000:]
    # Hosts are probed concurrently; the slowest (the drip) is cut at the probe's deadline.
    assert scan.run.seconds < 3 * (TIMEOUT + 5), scan.run.seconds
    assert "Traceback" not in scan.run.terminal
    for path in scan.out.iterdir():
        assert "Traceback (most recent call last)" not in path.read_text(encoding="utf-8"), path.name


@pytest.mark.parametrize("case", list(OUTCOMES))
def test_each_hostile_server_gets_the_right_outcome(scan: Scan, hostile_web: HostileWeb, case: str) -> None:
    host = hostile_web.hosts[case]
    report = scan.report
    (observation,) = [o for o in report["observations"] if (o["host"], o["port"]) == (host, 80)]
    findings = {f["rule_id"]: f["status"] for f in report["findings"] if (f["host"], f["port"]) == (host, 80)}
    if OUTCOMES[case] == "error":
        assert observation["status"] == "error" and observation["error"]
        assert set(findings.values()) == {"error"}, findings
    else:
        assert observation["status"] == "ok", observation["error"]
        assert findings[OUTCOMES[case]] == "fail"


def test_the_endless_and_huge_headers_are_cut_at_64_kib(scan: Scan, hostile_web: HostileWeb) -> None:
    errors = {
        o["host"]: o["error"]
        for o in scan.report["observations"]
        if o["status"] == "error" and o["port"] == 80
    }
    for case in ("endless headers", "10 MB header line"):
        assert "larger than 64 KiB" in errors[hostile_web.hosts[case]]


def test_nothing_outside_the_inventory_is_contacted(
    scan: Scan, web_servers: WebLab, hostile_web: HostileWeb
) -> None:
    assert web_servers.trap.accepted == scan.trap_before
    (offscope,) = [
        o for o in scan.report["observations"] if o["host"] == web_servers["offscope"].ip and o["port"] == 80
    ]
    assert offscope["data"]["off_scope_location"] == f"http://{TRAP}/login"
    if scan.connects is None:
        pytest.skip("strace is not installed (Makefile: system-deps)")
    registered = {*hostile_web.hosts.values(), web_servers["offscope"].ip}
    assert scan.connects, "strace saw no connect at all"
    outside = [(ip, port) for ip, port in scan.connects if ip not in registered or port not in (80, 443)]
    assert outside == []


def test_the_hostile_text_reached_the_record(scan: Scan, hostile_web: HostileWeb) -> None:
    (data,) = [
        o["data"]
        for o in scan.report["observations"]
        if o["host"] == hostile_web.hosts["hostile text"] and o["status"] == "ok"
    ]
    assert HOSTILE_SERVER in [d["value"] for d in data["disclosures"]]
    assert [c["name"] for c in data["cookies"]] == [HOSTILE_COOKIE]


@pytest.mark.parametrize(
    "name", ["report.html", "report.json", "report.junit.xml", "report.sarif", "report.csv"]
)
def test_hostile_text_is_inert_in_every_format(scan: Scan, name: str) -> None:
    text = (scan.out / name).read_text(encoding="utf-8")
    # report.json is the exact record: JSON escapes the control characters and keeps the rest.
    raw = ("\x1b", "\x07") if name == "report.json" else RAW
    assert not any(char in text for char in raw), name
    assert "alert(" in text  # the text is there, as text
    if name == "report.html":
        assert "<script>alert" not in text and "<img" not in text
    elif name.endswith(".xml"):
        ET.fromstring(text)  # noqa: S314 - our own output; a raw control character would fail here
    elif name == "report.csv":
        cells = [cell for row in csv.reader(text.splitlines()) for cell in row]
        assert not [
            c for c in cells if c.startswith(("=", "+", "@")) or (c.startswith("-") and not c[1:2].isdigit())
        ]
    else:
        json.loads(text)


def test_the_terminal_stays_inert(scan: Scan) -> None:
    assert not any(char in scan.run.terminal for char in RAW)
