"""JUnit XML, SARIF and CSV: valid, complete, and inert against hostile text."""

import csv
import io
import json
from pathlib import Path
from xml.etree import ElementTree as ET

import jsonschema  # type: ignore[import-untyped]  # no stubs in the dev dependencies
import junitparser
import pytest

from attt.reports.base import RenderContext
from attt.reports.csv import COLUMNS, CsvRenderer
from attt.reports.junit import JunitRenderer
from attt.reports.sarif import SarifRenderer
from attt.scanner.models.base import Severity
from attt.scanner.models.report import Report
from tests import factories as F
from tests.reports.junit_schema import junit_problems

SARIF_SCHEMA = json.loads((Path(__file__).parent / "schemas" / "sarif-2.1.0-rtm.5.json").read_text("utf-8"))


def mixed_report() -> Report:
    hostile = F.hostile_report()
    findings = F.all_statuses() + list(hostile.findings) + F.all_statuses("qlvb", "127.0.0.2")
    return F.report(findings, observations=hostile.observations)


@pytest.mark.parametrize("renderer", [JunitRenderer(), SarifRenderer(), CsvRenderer()])
def test_renderers_are_pure(renderer):
    report = mixed_report()
    assert renderer.render(report, "vi") == renderer.render(report, "vi")


# JUnit


def test_junit_is_valid_and_counts_agree():
    xml = JunitRenderer().render(mixed_report(), "en")
    assert junit_problems(xml) == []


def test_junit_has_a_suite_per_system_and_distinct_outcomes():
    root = ET.fromstring(JunitRenderer().render(mixed_report(), "en"))  # noqa: S314 - our own output
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    assert set(suites) == {"dichvucong", "qlvb"}
    qlvb = {c.get("name"): c for c in suites["qlvb"].iter("testcase")}
    assert set(qlvb) == {
        "TLS-PROTO-LEGACY @ 127.0.0.2:443",
        "SSH-PASSWORD-AUTH @ 127.0.0.2:22",
        "PORT-FORBIDDEN @ 127.0.0.2:21",
        "TLS-CERT-EXPIRY @ 127.0.0.2:443",
        "SSH-CBC @ 127.0.0.2:22",
    }
    outcome = {name: [child.tag for child in case] for name, case in qlvb.items()}
    assert outcome["TLS-PROTO-LEGACY @ 127.0.0.2:443"] == ["failure"]
    assert outcome["SSH-PASSWORD-AUTH @ 127.0.0.2:22"] == ["error"]
    assert outcome["PORT-FORBIDDEN @ 127.0.0.2:21"] == ["skipped"]
    assert outcome["SSH-CBC @ 127.0.0.2:22"] == ["skipped"]
    assert outcome["TLS-CERT-EXPIRY @ 127.0.0.2:443"] == []
    failure = qlvb["TLS-PROTO-LEGACY @ 127.0.0.2:443"].find("failure")
    assert failure is not None
    assert failure.get("type") == "high"
    assert "Enable only TLS 1.2 and TLS 1.3." in (failure.text or "")


def test_junit_honours_fail_on_in_the_parser_ci_servers_use():
    """`--fail-on critical`: the high failures are not JUnit failures (the scan exits 0 on them)."""
    report = F.report(
        [
            F.finding("A-CRIT", "fail", severity=Severity.CRITICAL),
            F.finding("B-HIGH", "fail", severity=Severity.HIGH),
            F.finding("C-PASS", "pass"),
        ]
    )
    xml = JunitRenderer().render(report, "en", RenderContext(fail_on=Severity.CRITICAL))
    parsed = junitparser.JUnitXml.fromstring(xml.decode("utf-8"))
    cases = {case.name: case for suite in parsed for case in suite}
    assert [type(r).__name__ for r in cases["A-CRIT @ 127.0.0.1:443"].result] == ["Failure"]
    assert cases["B-HIGH @ 127.0.0.1:443"].is_passed
    assert "below the --fail-on threshold (critical)" in (cases["B-HIGH @ 127.0.0.1:443"].system_out or "")
    assert cases["C-PASS @ 127.0.0.1:443"].is_passed
    suite = next(iter(parsed))
    assert (suite.tests, suite.failures, suite.errors) == (3, 1, 0)
    with_none = JunitRenderer().render(report, "en", RenderContext(fail_on=None))
    assert junitparser.JUnitXml.fromstring(with_none.decode("utf-8")).failures == 0
    assert junit_problems(xml) == []


def test_junit_names_are_stable_and_split_safe():
    """CI servers split `classname` at dots into package and class: it holds the system id only."""
    findings = [F.finding(host="10.20.30.40"), F.finding("SSH-CBC", host="2001:db8::1", port=22)]
    xml = JunitRenderer().render(F.report(findings), "en")
    cases = [case for suite in junitparser.JUnitXml.fromstring(xml.decode("utf-8")) for case in suite]
    assert {case.classname for case in cases} == {"dichvucong"}
    assert {case.name for case in cases} == {"TLS-PROTO-LEGACY @ 10.20.30.40:443", "SSH-CBC @ 2001:db8::1:22"}
    assert JunitRenderer().render(F.report(findings), "en") == xml


def test_junit_checker_catches_a_wrong_count():
    xml = JunitRenderer().render(mixed_report(), "en").replace(b'failures="2"', b'failures="7"', 1)
    assert junit_problems(xml)


def test_junit_hostile_text_is_inert():
    xml = JunitRenderer().render(F.hostile_report(), "en")
    root = ET.fromstring(xml)  # noqa: S314 - our own output; parsing proves no forbidden character
    for raw in (b"\x1b", b"\x07", b"\x00", "\u202e".encode()):
        assert raw not in xml
    assert b"<script>" not in xml and b"<img" not in xml
    texts = [e.text or "" for e in root.iter()] + [v for e in root.iter() for v in e.attrib.values()]
    assert any("<script>alert('x')</script>" in t for t in texts)  # kept, as character data


# SARIF


def test_sarif_validates_against_the_official_schema():
    doc = json.loads(SarifRenderer().render(mixed_report(), "vi"))
    validator = jsonschema.Draft4Validator(
        SARIF_SCHEMA, format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER
    )
    assert [e.message for e in validator.iter_errors(doc)] == []


def test_sarif_rules_results_and_locations():
    doc = json.loads(SarifRenderer().render(mixed_report(), "en"))
    run = doc["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == sorted({f.rule_id for f in mixed_report().findings})
    legacy = next(r for r in rules if r["id"] == "TLS-PROTO-LEGACY")
    assert legacy["help"]["text"] == "Enable only TLS 1.2 and TLS 1.3."
    assert legacy["defaultConfiguration"]["level"] == "error"
    results = run["results"]
    assert {r["properties"]["status"] for r in results} == {"fail", "error", "waived"}
    for r in results:
        assert rules[r["ruleIndex"]]["id"] == r["ruleId"]
    by_key = {(r["ruleId"], r["properties"]["system"]): r for r in results}
    failed = by_key[("TLS-PROTO-LEGACY", "qlvb")]
    assert failed["kind"] == "fail" and failed["level"] == "error"
    assert failed["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "tls://127.0.0.2:443"
    error = by_key[("SSH-PASSWORD-AUTH", "qlvb")]
    assert (error["kind"], error["level"]) == ("open", "none")
    assert error["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "ssh://127.0.0.2:22"
    waived = by_key[("PORT-FORBIDDEN", "qlvb")]
    assert waived["suppressions"][0]["status"] == "accepted"
    assert waived["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "tcp://127.0.0.2:21"
    notes = run["invocations"][0]["toolExecutionNotifications"]
    assert len(notes) == 1 and notes[0]["level"] == "error"


def test_sarif_location_without_port_and_ipv6():
    findings = [F.finding(port=None), F.finding("V6-RULE", host="::1")]
    doc = json.loads(SarifRenderer().render(F.report(findings), "en"))
    uris = [
        r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in doc["runs"][0]["results"]
    ]
    assert sorted(uris) == ["host://dichvucong/127.0.0.1", "tls://[::1]:443"]


def test_sarif_uri_of_a_scope_id_from_an_older_run_is_percent_encoded():
    findings = [F.finding("V6-RULE", host="::1%\x1b]0;pwned\x07\u202e")]
    doc = json.loads(SarifRenderer().render(F.report(findings), "en"))
    [result] = doc["runs"][0]["results"]
    assert result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == (
        "tls://[::1%25%1B%5D0%3Bpwned%07%E2%80%AE]:443"
    )


@pytest.mark.parametrize(
    ("severity", "fail_on", "level"),
    [
        (Severity.CRITICAL, Severity.LOW, "error"),
        (Severity.MEDIUM, Severity.LOW, "error"),
        (Severity.LOW, Severity.LOW, "error"),
        (Severity.CRITICAL, Severity.CRITICAL, "error"),
        (Severity.HIGH, Severity.CRITICAL, "warning"),
        (Severity.MEDIUM, Severity.HIGH, "warning"),
        (Severity.LOW, Severity.HIGH, "note"),
        (Severity.INFO, Severity.LOW, "note"),
        (Severity.HIGH, None, "warning"),
    ],
)
def test_sarif_level_honours_fail_on(severity, fail_on, level):
    """At or above --fail-on a failure is an error, as the exit code says; below it, not."""
    report = F.report([F.finding(severity=severity)])
    doc = json.loads(SarifRenderer().render(report, "en", RenderContext(fail_on=fail_on)))
    assert doc["runs"][0]["results"][0]["level"] == level
    assert doc["runs"][0]["tool"]["driver"]["rules"][0]["defaultConfiguration"]["level"] == level


def test_sarif_hostile_text_is_cleaned():
    body = SarifRenderer().render(F.hostile_report(), "en").decode("utf-8")
    assert "\u202e" not in body and "\\u001b" not in body and "\\u0000" not in body
    assert "\\\\x1b[31mRED" in body  # the escape shows as text


# CSV


def read_csv(body: bytes) -> list[list[str]]:
    assert body.startswith(b"\xef\xbb\xbf")
    return list(csv.reader(io.StringIO(body.decode("utf-8-sig"), newline="")))


def test_csv_has_one_row_per_finding_with_localised_header():
    report = mixed_report()
    rows = read_csv(CsvRenderer().render(report, "vi"))
    assert len(rows) == len(report.findings) + 1
    assert rows[0][:3] == ["Cơ quan chủ quản", "Hệ thống", "Tên hệ thống"]
    assert all(len(r) == len(COLUMNS) for r in rows)
    header = rows[0]
    legacy = next(r for r in rows if r[header.index("Quy tắc")] == "TLS-PROTO-LEGACY")
    assert legacy[header.index("Giá trị quan sát")] == '["TLSv1.0", "TLSv1.2"]'
    assert legacy[header.index("Tiêu đề")] == "Tắt các phiên bản TLS cũ"


def test_csv_values_follow_the_language():
    """A Vietnamese sheet says "không đạt", "cao", "đóng": no English value between Vietnamese headers."""
    findings = [
        F.finding(evidence={"observed": "open", "expected": "closed"}),
        F.finding("PORT-TELNET", "waived", port=23, waiver=F.waiver(expired=True)),
    ]
    rows = read_csv(CsvRenderer().render(F.report(findings), "vi"))
    header = rows[0]
    by_rule = {row[header.index("Quy tắc")]: row for row in rows[1:]}
    first, waived = by_rule["TLS-PROTO-LEGACY"], by_rule["PORT-TELNET"]
    assert first[header.index("Kết quả")] == "không đạt"
    assert first[header.index("Mức độ")] == "cao"
    assert (first[header.index("Giá trị quan sát")], first[header.index("Yêu cầu")]) == ("mở", "đóng")
    assert waived[header.index("Kết quả")] == "miễn trừ"
    assert waived[header.index("Hết hạn")] == "31/01/2025"
    assert waived[header.index("Đã hết hạn")] == "có"
    assert "chưa đối chiếu" in first[header.index("Căn cứ")]
    values = {cell for row in rows[1:] for cell in row}
    assert not values & {"fail", "waived", "high", "not_applicable", "critical", "true", "false", "closed"}
    english = read_csv(CsvRenderer().render(F.report(findings), "en"))
    assert {row[english[0].index("Status")] for row in english[1:]} == {"fail", "waived"}


def test_csv_neutralises_formulas_and_control_characters():
    findings = [F.finding(message=text) for text in ("=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx")]
    findings = [f.model_copy(update={"rule_id": f"R-{i}"}) for i, f in enumerate(findings)]
    body = CsvRenderer().render(F.report(findings + list(F.hostile_report().findings)), "en")
    rows = read_csv(body)
    message = rows[0].index("Message")
    cells = [r[message] for r in rows[1:]]
    for cell in cells:
        assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cell
    assert "'=1+1" in cells
    for raw in ("\x1b", "\x00", "\u202e"):
        assert raw not in body.decode("utf-8-sig")
    assert all(not c.startswith(("=", "+", "-", "@")) for r in rows for c in r)
