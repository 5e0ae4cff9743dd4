"""Every `pass` and `not_applicable` rests on observed facts: the cases of issue 11, each against
a real server of the verdicts lab (tests/servers/verdicts.py), through the real CLI.

1. A TLS step that failed (the first TLS 1.0 handshake alerted) makes the rules that need it
   `error` naming the step, never `pass`.
2. "Only allowed ports" says what it covered; at level 4 it scans every TCP port and fails on
   31337, which the default list never scans.
3. A host where nothing answers is `error` ("is it still in service?"); an HTTP answer that was
   too large or too slow makes the HSTS rule `error`, not "does not serve HTTP".
4. Probes a SIGTERM kept from running are `error` entries in every format, with no score.
6. A TLS 1.0 server down on the next run is "not re-checked", never "fixed".
7. One STARTTLS failure is one entry per endpoint listing the rules it blocked.
8. An SSH server refusing the session channel, or dripping `sshd -T` output, loses only the
   rules that read `sshd -T`.
9. Odd SAN names are kept as inert text and the hostname mismatch is judged.
"""

import contextlib
import csv
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.robustness.conftest import run_attt
from tests.servers.verdicts import NET, ODD_SAN_HOST, VerdictsLab, legacy_tls_server

Report = dict[str, Any]


def _inventory(path: Path, *systems: dict[str, Any], scope: tuple[str, ...] = (f"{NET}.0/24",)) -> Path:
    base = {"name": "Hệ thống", "owner": "UBND xã Thạch Hà", "level": 3, "tags": ["internet-facing"]}
    body = {"province": "Hà Tĩnh", "scope": list(scope), "systems": [base | s for s in systems]}
    path.write_text(json.dumps(body, ensure_ascii=False))  # JSON is YAML without anchors
    return path


def _scan(tmp_path: Path, inventory: Path, *args: str, timeout: float = 150.0) -> tuple[int, Report, str]:
    out = tmp_path / "out"
    run = run_attt(
        ["scan", "-i", str(inventory), "--out", str(out), "--db", str(tmp_path / "runs.db"),
         "--format", "json,html,junit,sarif,csv", "--lang", "en", "--timeout", "20", *args],
        timeout=timeout,
    )  # fmt: skip
    assert "Traceback" not in run.terminal, run.terminal
    assert (out / "report.json").exists(), run.terminal
    return run.returncode, json.loads((out / "report.json").read_text()), run.stdout


def _findings(report: Report, rule_id: str) -> list[dict[str, Any]]:
    return [f for f in report["findings"] if f["rule_id"] == rule_id]


def _one(report: Report, rule_id: str) -> dict[str, Any]:
    [finding] = _findings(report, rule_id)
    return finding


def test_1_a_tls_step_that_failed_is_error_never_pass(tmp_path: Path, verdicts_servers: VerdictsLab) -> None:
    host = {"address": verdicts_servers.flaky_tls10, "hostname": "verdicts.attt.test",
            "services": [{"port": 443, "kind": "tls"}]}  # fmt: skip
    inventory = _inventory(tmp_path / "inv.yaml", {"id": "flaky", "hosts": [host]})
    code, report, _ = _scan(tmp_path, inventory, "--check", "tls")
    [obs] = report["observations"]
    assert obs["status"] == "ok" and "tls_1_0_cipher_suites" in obs["data"]["incomplete"]
    assert "access denied" in obs["data"]["step_errors"]["tls_1_0_cipher_suites"]
    assert verdicts_servers.tls10_alerts() >= 1
    floor = _one(report, "TLS-MIN-TLS12")
    assert floor["status"] == "error"
    assert "tls_1_0_cipher_suites" in floor["message"]["en"]
    # Rules that do not read the TLS 1.0 step are still judged from what was observed.
    assert _one(report, "TLS-CERT-TRUSTED")["status"] == "fail"
    assert code == 1


def test_2_only_allowed_ports_says_what_it_covered(tmp_path: Path, verdicts_servers: VerdictsLab) -> None:
    host = {"address": verdicts_servers.unscanned_port}
    inventory = _inventory(
        tmp_path / "inv.yaml",
        {"id": "cap3", "level": 3, "allowed_ports": [8080], "hosts": [host]},
        {"id": "cap4", "level": 4, "allowed_ports": [8080], "hosts": [host]},
    )
    _, report, _ = _scan(tmp_path, inventory, "--check", "ports")
    level3, level4 = (
        next(f for f in _findings(report, "PORT-ONLY-ALLOWED") if f["system"] == s) for s in ("cap3", "cap4")
    )
    # The common-port scan never looks at 31337: the verdict and the title say what was covered.
    assert level3["status"] == "pass"
    assert level3["title"]["en"].startswith("Among the ports scanned")
    assert level3["message"]["en"].endswith("TCP ports were not scanned)")
    # Level 4 scans every TCP port and sees it (and, in a full test session, gnutls-serv's port,
    # which listens on every loopback address).
    assert level4["status"] == "fail" and 31337 in level4["evidence"]["observed"]
    full = next(o for o in report["observations"] if o["system"] == "cap4")
    assert full["data"]["full_range"] is True


def test_3_nothing_answering_and_failed_http_are_errors(
    tmp_path: Path, verdicts_servers: VerdictsLab
) -> None:
    lab = verdicts_servers
    inventory = _inventory(
        tmp_path / "inv.yaml",
        {"id": "gone", "hosts": [{"address": lab.nothing}]},
        {"id": "huge", "hosts": [{"address": lab.huge_http, "services": [{"port": 443, "kind": "tls"}]}]},
        {"id": "slow", "hosts": [{"address": lab.slow_http, "services": [{"port": 443, "kind": "tls"}]}]},
    )
    code, report, stdout = _scan(tmp_path, inventory, "--check", "ports", "--check", "tls")
    gone = [f for f in report["findings"] if f["system"] == "gone"]
    assert {f["status"] for f in gone} <= {"error", "not_applicable"}
    assert any("is the host still in service?" in f["message"]["en"] for f in gone)
    assert report["summary"]["systems"]["gone"]["score"] is None
    for system in ("huge", "slow"):
        hsts = next(f for f in _findings(report, "TLS-HSTS") if f["system"] == system)
        assert hsts["status"] == "error", hsts["message"]
        assert "http_headers" in hsts["message"]["en"]
    assert code == 1  # the self-signed certificates fail their rules
    assert "gone" in stdout and "score: score = " in stdout


def _wait_for_probes(db: Path, count: int, deadline: float) -> None:
    """Until the scan has stored `count` probes: it is under way, with most hosts still to go."""
    while time.monotonic() < deadline:
        if db.exists():
            with sqlite3.connect(db) as conn, contextlib.suppress(sqlite3.OperationalError):
                if conn.execute("SELECT COUNT(*) FROM probes").fetchone()[0] >= count:
                    return
        time.sleep(0.05)
    pytest.fail("the scan stored no probe in time")


def _sigterm_scan(tmp_path: Path, inventory: Path) -> tuple[int, str]:
    attt = str(Path(sys.executable).with_name("attt"))
    db = tmp_path / "runs.db"
    args = ["scan", "-i", str(inventory), "--out", str(tmp_path / "out"), "--db", str(db), "--lang", "en",
            "--format", "json,html,junit,sarif,csv", "--check", "ports", "--concurrency", "1"]  # fmt: skip
    process = subprocess.Popen(
        [attt, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "CI": "1"},
    )
    try:
        # The first probe is committed as it ends, the next ones a fifth of a second later at most.
        _wait_for_probes(db, 1, time.monotonic() + 60)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    return process.returncode, stderr


def test_4_probes_never_run_are_visible_in_every_format(
    tmp_path: Path, verdicts_servers: VerdictsLab
) -> None:
    # Registered hosts where nothing listens, scanned one at a time, stopped once one is stored.
    # Each takes a few milliseconds: with sixty, then with 155 (probing over 0.4 s after the first
    # was stored), a loaded machine sometimes saw the scan end before the signal came, and a
    # signal during the report's writing leaves no report. Two address blocks: 310 hosts.
    quiet = "127.0.113"  # nothing of the lab listens there
    hosts = [{"address": f"{net}.{n}"} for net in (NET, quiet) for n in range(100, 255)]
    many = {"id": "many", "allowed_ports": [443], "hosts": hosts}
    inventory = _inventory(tmp_path / "inv.yaml", many, scope=(f"{NET}.0/24", f"{quiet}.0/24"))
    code, stderr = _sigterm_scan(tmp_path, inventory)
    assert code == 130, stderr
    out = tmp_path / "out"
    report = json.loads((out / "report.json").read_text())
    not_probed = [f for f in report["findings"] if f["kind"] == "not_probed"]
    assert not_probed and all(f["status"] == "error" for f in not_probed)
    assert "pass" not in {f["status"] for f in report["findings"]}
    assert report["summary"]["overall"]["not_probed"] == len(not_probed)
    assert report["summary"]["overall"]["score"] is None
    junit = ET.parse(out / "report.junit.xml").getroot()  # noqa: S314 (our own report)
    assert int(junit.get("errors", "0")) >= len(not_probed)
    sarif = json.loads((out / "report.sarif").read_text())
    assert sum(r["ruleId"] == "PORTS-NOT-PROBED" for r in sarif["runs"][0]["results"]) == len(not_probed)
    with (out / "report.csv").open(encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    assert sum(row["Rule"] == "PORTS-NOT-PROBED" and bool(row["Rules it blocked"]) for row in rows) == len(
        not_probed
    )
    html = (out / "report.html").read_text()
    assert "no score: the run did not finish" in html
    assert "Could not be scanned (0)" not in html and "(0)</h2>" not in html.split('id="unscanned"')[1][:400]


def test_6_a_host_down_on_the_next_run_is_not_fixed(tmp_path: Path, verdicts_servers: VerdictsLab) -> None:
    address = f"{NET}.60"
    host = {"address": address, "services": [{"port": 443, "kind": "tls"}]}
    inventory = _inventory(tmp_path / "inv.yaml", {"id": "old-tls", "hosts": [host]})
    with legacy_tls_server(tmp_path, address):
        _, first, _ = _scan(tmp_path, inventory, "--check", "tls")
    assert _one(first, "TLS-MIN-TLS12")["status"] == "fail"
    _scan(tmp_path, inventory, "--check", "tls")
    db = str(tmp_path / "runs.db")
    diff = run_attt(["diff", "previous", "latest", "--db", db])
    assert diff.returncode == 0, diff.terminal
    assert "fixed: 0" in diff.stdout
    assert "TLS-MIN-TLS12" in diff.stdout.split("not re-checked:")[1].split("still failing:")[0]
    html = (tmp_path / "out" / "report.html").read_text()
    assert first["run"]["id"] in html.split('id="changes"')[1]


def test_7_one_broken_probe_is_one_entry_per_endpoint(tmp_path: Path, verdicts_servers: VerdictsLab) -> None:
    services = [{"port": p, "kind": k} for p, k in ((25, "smtp"), (110, "pop3"), (143, "imap"))]
    host = {"address": verdicts_servers.mail_without_tls, "services": services}
    inventory = _inventory(tmp_path / "inv.yaml", {"id": "mail", "hosts": [host]})
    _, report, _ = _scan(tmp_path, inventory, "--check", "tls")
    errors = [f for f in report["findings"] if f["status"] == "error"]
    # SMTP rejects even EHLO: a broken dialogue, one probe error. POP3 and IMAP answer and refuse
    # STARTTLS: that is an observed fact (cleartext-only mailbox access), judged, not an error.
    assert sorted(f["port"] for f in errors) == [25]
    assert all(f["kind"] == "probe_error" and len(f["blocked"]) > 5 for f in errors)
    assert report["summary"]["systems"]["mail"]["by_status"]["error"] == 1
    mail = {f["port"]: f["status"] for f in report["findings"] if f["rule_id"] == "VN-MAIL-CLEARTEXT"}
    assert mail == {110: "fail", 143: "fail"}


READS_SSHD_T = frozenset({"ssh.config", "ssh.forwarding_disabled"})
"""The ssh controls that judge the effective configuration `sshd -T` printed."""


@pytest.mark.parametrize(("server", "why"), [("no_session", "session channel"), ("drip_session", "in time")])
def test_8_a_failed_sshd_t_costs_only_the_rules_that_read_it(
    tmp_path: Path, verdicts_servers: VerdictsLab, server: str, why: str
) -> None:
    host = {"address": getattr(verdicts_servers, server), "services": [{"port": 22, "kind": "ssh"}]}
    inventory = _inventory(tmp_path / "inv.yaml", {"id": "jump", "level": 4, "hosts": [host]})
    credentials = tmp_path / "credentials.yaml"
    login = {"user": "audit", "key_file": str(verdicts_servers.client_key)}
    credentials.write_text(yaml.safe_dump({"systems": {"jump": login}}))
    credentials.chmod(0o600)
    _, report, _ = _scan(tmp_path, inventory, "--check", "ssh", "--credentials", str(credentials))
    [obs] = report["observations"]
    assert obs["status"] == "ok" and obs["data"]["incomplete"] == ["sshd_t"]
    assert why in obs["data"]["step_errors"]["sshd_t"]
    errors = {f["rule_id"] for f in report["findings"] if f["status"] == "error"}
    config_rules = {f["rule_id"] for f in report["findings"] if f["control"] in READS_SSHD_T}
    assert errors == config_rules and errors
    # The unauthenticated facts stand and are judged.
    judged = {f["status"] for f in report["findings"] if f["control"] not in READS_SSHD_T}
    assert judged & {"pass", "fail"}


def test_9_odd_san_names_stay_text_and_the_mismatch_is_judged(
    tmp_path: Path, verdicts_servers: VerdictsLab
) -> None:
    host = {
        "address": verdicts_servers.odd_san,
        "hostname": ODD_SAN_HOST,
        "services": [{"port": 443, "kind": "tls"}],
    }
    inventory = _inventory(tmp_path / "inv.yaml", {"id": "odd", "hosts": [host]})
    _, report, _ = _scan(tmp_path, inventory, "--check", "tls")
    [obs] = report["observations"]
    assert obs["status"] == "ok", obs["error"]
    data = obs["data"]
    assert data["protocols"] and data["certificate"]["sans"] == [
        "<b>markup</b>.attt.test",
        "esc\\x1b[31m.attt.test",
        '=HYPERLINK("http://x")',
    ]
    assert _one(report, "TLS-HOSTNAME")["status"] == "fail"
    assert _one(report, "TLS-CERT-TRUSTED")["status"] == "fail"
    html = (tmp_path / "out" / "report.html").read_text()
    assert "<b>markup</b>" not in html and "\x1b" not in html
