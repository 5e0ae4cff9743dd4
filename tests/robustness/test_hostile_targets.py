"""The real pipeline (`attt scan`, every check, every output format) against the hostile lab.

One scan covers every hostile case next to well-behaved servers; the tests below read its
outputs. What must hold: the scan ends within its timeouts, each hostile endpoint gets `error`
(or the correct finding), the well-behaved host's results equal those of a scan of it alone,
no traceback, bounded memory and stored text, and hostile strings stay inert text everywhere.
"""

import csv
import json
import sqlite3
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.robustness.conftest import AtttRun, run_attt
from tests.servers.hostile import (
    BANNER_BYTES,
    HOSTILE_CERT_NAME,
    HOSTILE_CN,
    NET,
    HostileLab,
    vanishing_host,
)

TIMEOUT = 5
"""--timeout for the scans: each check gets this long per host (the runner adds a grace)."""
CHECKS = ("ports", "tls", "ssh")
FORMATS = "html,json,junit,sarif,csv"
RAW_HOSTILE = ("\x1b", "\u202e", "\u2066", "\x07")
"""Characters that act on a terminal or reorder text: never raw in a rendered output."""
MAX_STORED_STRING = 4000
MAX_RSS_MIB = 256


@dataclass(frozen=True)
class Case:
    """One hostile endpoint and what attt must conclude about it."""

    host: str
    port: int
    check: str
    outcome: str
    """`error`: the observation failed and every finding of the check is `error`;
    `described`: the endpoint was described and judged (pass or fail, never error)."""


CASES = {
    "tarpit": Case(f"{NET}.1", 443, "tls", "error"),
    "reset": Case(f"{NET}.2", 443, "tls", "error"),
    "random bytes": Case(f"{NET}.3", 443, "tls", "error"),
    "1 MiB banner": Case(f"{NET}.4", 22, "ssh", "error"),
    "one byte per second": Case(f"{NET}.5", 22, "ssh", "error"),
    "malformed KEXINIT": Case(f"{NET}.6", 22, "ssh", "error"),
    "absurd packet length": Case(f"{NET}.6", 2222, "ssh", "error"),
    "hostile certificate subject": Case(f"{NET}.7", 443, "tls", "described"),
    "hostile certificate SANs": Case(f"{NET}.9", 443, "tls", "described"),
    "gone after discovery (tls)": Case(f"{NET}.8", 443, "tls", "error"),
    "gone after discovery (ssh)": Case(f"{NET}.8", 22, "ssh", "error"),
}
GOOD = f"{NET}.20"


def _host(address: str, *services: tuple[int, str], hostname: str | None = None) -> dict[str, Any]:
    host: dict[str, Any] = {"address": address, "services": [{"port": p, "kind": k} for p, k in services]}
    if hostname:
        host["hostname"] = hostname
    return host


def _inventory(path: Path, systems: dict[str, list[dict[str, Any]]]) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "province": "Hà Tĩnh",
                "scope": [f"{NET}.0/24"],
                "systems": [
                    {
                        "id": system_id,
                        "name": f"System {system_id}",
                        "owner": "Sở Khoa học và Công nghệ",
                        "level": 3,
                        "tags": ["internet-facing"],
                        "hosts": hosts,
                    }
                    for system_id, hosts in systems.items()
                ],
            },
            allow_unicode=True,
        ),
        encoding="utf-8",
    )
    return path


GOOD_HOSTS = [_host(GOOD, (443, "tls"), (22, "ssh"), hostname="good.attt.test")]
HOSTILE_HOSTS = [
    _host(f"{NET}.1", (443, "tls")),
    _host(f"{NET}.2", (443, "tls")),
    _host(f"{NET}.3", (443, "tls")),
    _host(f"{NET}.4", (22, "ssh")),
    _host(f"{NET}.5", (22, "ssh")),
    _host(f"{NET}.6", (22, "ssh"), (2222, "ssh")),
    _host(f"{NET}.7", (443, "tls"), hostname=HOSTILE_CERT_NAME),
    _host(f"{NET}.8", (443, "tls"), (22, "ssh")),
    _host(f"{NET}.9", (443, "tls")),
]


@dataclass(frozen=True)
class Scan:
    run: AtttRun
    out: Path
    db: Path

    @property
    def report(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.out / "report.json").read_text(encoding="utf-8"))
        return data


def _scan(workdir: Path, systems: dict[str, list[dict[str, Any]]]) -> Scan:
    inventory = _inventory(workdir / "inventory.yaml", systems)
    out, db = workdir / "out", workdir / "store.sqlite"
    checks = [arg for name in CHECKS for arg in ("--check", name)]
    options = ["--timeout", str(TIMEOUT), "--concurrency", "16", "--format", FORMATS, "--lang", "en"]
    run = run_attt(
        ["scan", "-i", str(inventory), *checks, *options, "--out", str(out), "--db", str(db)], timeout=120
    )
    return Scan(run, out, db)


@pytest.fixture(scope="module")
def hostile_scan(hostile: HostileLab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scan]:
    with vanishing_host():
        yield _scan(tmp_path_factory.mktemp("hostile-scan"), {"hostile": HOSTILE_HOSTS, "good": GOOD_HOSTS})


@pytest.fixture(scope="module")
def good_alone(hostile: HostileLab, tmp_path_factory: pytest.TempPathFactory) -> Scan:
    return _scan(tmp_path_factory.mktemp("good-scan"), {"good": GOOD_HOSTS})


def test_the_scan_ends_within_its_timeouts(hostile_scan: Scan) -> None:
    # Checks of one host run in sequence, each abandoned after --timeout plus a 5 s grace.
    assert hostile_scan.run.seconds < len(CHECKS) * (TIMEOUT + 5) + 15, hostile_scan.run.seconds
    assert hostile_scan.run.returncode in (1, 3), hostile_scan.run.terminal[-2000:]
    assert hostile_scan.report["run"]["status"] == "complete"


def test_no_traceback_anywhere(hostile_scan: Scan) -> None:
    assert "Traceback" not in hostile_scan.run.terminal
    for path in hostile_scan.out.iterdir():
        assert "Traceback (most recent call last)" not in path.read_text(encoding="utf-8"), path.name


@pytest.mark.parametrize("case", list(CASES))
def test_each_hostile_endpoint_gets_the_right_outcome(hostile_scan: Scan, case: str) -> None:
    expected = CASES[case]
    report = hostile_scan.report
    observations = [
        o
        for o in report["observations"]
        if (o["host"], o["port"], o["check"]) == (expected.host, expected.port, expected.check)
    ]
    assert len(observations) == 1, observations
    findings = {
        f["status"]
        for f in report["findings"]
        if (f["host"], f["port"], f["check"]) == (expected.host, expected.port, expected.check)
    }
    if expected.outcome == "error":
        assert observations[0]["status"] == "error" and observations[0]["error"]
        assert findings == {"error"}, findings
    else:
        assert observations[0]["status"] == "ok", observations[0]["error"]
        assert findings and "error" not in findings and findings <= {"pass", "fail", "not_applicable"}


def test_the_vanished_host_was_seen_by_the_port_scan(hostile_scan: Scan) -> None:
    """Without this, 'gone after discovery' would only test a closed port."""
    observations = hostile_scan.report["observations"]
    (ports,) = [o for o in observations if (o["check"], o["host"]) == ("ports", f"{NET}.8")]
    assert {p["port"] for p in ports["data"]["open"]} >= {22, 443}


def test_hostile_neighbours_leave_the_good_host_unaffected(hostile_scan: Scan, good_alone: Scan) -> None:
    def verdicts(scan: Scan) -> set[tuple[str, str, int | None, str]]:
        return {
            (f["rule_id"], f["check"], f["port"], f["status"])
            for f in scan.report["findings"]
            if f["host"] == GOOD
        }

    assert good_alone.run.returncode in (0, 1), good_alone.run.terminal[-2000:]
    alone = verdicts(good_alone)
    assert alone and not any(status == "error" for *_, status in alone)
    assert verdicts(hostile_scan) == alone


def test_stored_text_is_bounded(hostile_scan: Scan) -> None:
    """The 1 MiB banner (and anything else a target sent) is cut before it is stored."""
    assert hostile_scan.db.stat().st_size < 4 * 1024 * 1024
    raw = hostile_scan.db.read_bytes()
    assert b"A" * 10_000 not in raw
    with sqlite3.connect(hostile_scan.db) as db:
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            for row in db.execute(f"SELECT * FROM {table}"):  # noqa: S608 - names from sqlite_master
                for value in row:
                    if isinstance(value, str) and value.startswith(("{", "[")):
                        _assert_strings_bounded(json.loads(value), table)


def test_report_strings_are_bounded(hostile_scan: Scan) -> None:
    _assert_strings_bounded(hostile_scan.report, "report.json")
    # The bound is the stored database's: the rules, not the banner, decide a report's size,
    # and no output carries a run of the banner's bytes.
    for path in hostile_scan.out.iterdir():
        assert path.stat().st_size < 4 * BANNER_BYTES, path.name
        assert b"A" * 10_000 not in path.read_bytes(), path.name


def _assert_strings_bounded(value: Any, where: str) -> None:
    if isinstance(value, str):
        assert len(value) <= MAX_STORED_STRING, f"{where}: a string of {len(value)} characters"
    elif isinstance(value, dict):
        for key, item in value.items():
            _assert_strings_bounded(key, where)
            _assert_strings_bounded(item, where)
    elif isinstance(value, list):
        for item in value:
            _assert_strings_bounded(item, where)


def test_memory_stays_bounded(hostile_scan: Scan) -> None:
    assert hostile_scan.run.max_rss_mib < MAX_RSS_MIB, hostile_scan.run.max_rss_mib


# --- hostile strings stay inert in every output ---------------------------------------------------


def test_the_hostile_certificate_reached_the_record(hostile_scan: Scan) -> None:
    """report.json keeps the facts exactly (JSON escapes what it must): this is what makes the
    inertness tests below meaningful."""
    subjects = [
        o["data"]["certificate"]["subject"]
        for o in hostile_scan.report["observations"]
        if o["check"] == "tls" and o["status"] == "ok" and o["host"] in (f"{NET}.7", f"{NET}.9")
    ]
    assert len(subjects) == 2
    assert all("<script" in s and "\x1b[31m" in s and "\u202e" in s for s in subjects), subjects
    assert "\x1b" not in (hostile_scan.out / "report.json").read_text(encoding="utf-8")


class _Markup(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.handlers: list[str] = []
        self.script_text: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.handlers += [name for name, _ in attrs if name.startswith("on")]
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.script_text.append(data)


def test_html_shows_hostile_strings_as_text(hostile_scan: Scan, good_alone: Scan) -> None:
    html = (hostile_scan.out / "report.html").read_text(encoding="utf-8")
    markup, clean = _Markup(), _Markup()
    markup.feed(html)
    clean.feed((good_alone.out / "report.html").read_text(encoding="utf-8"))
    # The hostile report has exactly the elements and scripts of a report without hostile text.
    assert markup.tags.count("script") == clean.tags.count("script")
    assert "img" not in markup.tags and not markup.handlers
    assert not any("alert(" in text for text in markup.script_text)
    assert HOSTILE_CN not in html and "alert(" in html  # present, but only as escaped text
    assert not any(char in html for char in RAW_HOSTILE)


@pytest.mark.parametrize("name", ["report.junit.xml", "report.sarif"])
def test_machine_outputs_are_well_formed_and_inert(hostile_scan: Scan, name: str) -> None:
    text = (hostile_scan.out / name).read_text(encoding="utf-8")
    if name.endswith(".xml"):
        ET.fromstring(text)  # noqa: S314 - our own output; raw control characters would fail here
    else:
        json.loads(text)
    assert "alert(" in text
    assert not any(char in text for char in RAW_HOSTILE)


def test_csv_cells_are_inert(hostile_scan: Scan) -> None:
    text = (hostile_scan.out / "report.csv").read_text(encoding="utf-8")
    assert not any(char in text for char in RAW_HOSTILE)
    cells = [cell for row in csv.reader(text.splitlines()) for cell in row]
    assert any("alert(" in cell for cell in cells)
    formulas = [c for c in cells if c[:1] in ("=", "+", "-", "@") and not _is_number(c)]
    assert not formulas, formulas[:5]


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def test_terminal_output_is_inert(hostile_scan: Scan) -> None:
    assert not any(char in hostile_scan.run.terminal for char in RAW_HOSTILE)
    assert max(len(line) for line in hostile_scan.run.terminal.splitlines()) < 2000
