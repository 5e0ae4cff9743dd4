"""Trends over earlier runs (pure): each subject's points, and each run's findings read once."""

from datetime import timedelta

from attt.reports import _trends
from attt.scanner.models.base import Severity
from attt.scanner.models.finding import Finding, FindingStatus
from attt.scanner.models.report import Counts, Report
from tests import factories as F

SYSTEMS = [F.system(f"s{i}") for i in range(3)]


def run(day: int, statuses: dict[tuple[str, str], FindingStatus], systems: int = 3) -> Report:
    findings = [F.finding(rule, status, sys=system) for (rule, system), status in statuses.items()]
    return F.report(findings, SYSTEMS[:systems], id=f"run-{day}", started=F.STARTED + timedelta(days=day))


def test_each_subject_gets_a_point_per_run_that_judged_it_reading_each_finding_once() -> None:
    runs = [
        run(-14, {("A", "s0"): "fail", ("B", "s0"): "fail", ("A", "s1"): "pass"}, systems=2),
        run(-7, {("A", "s0"): "fail", ("A", "s1"): "fail", ("A", "s2"): "pass"}),
        run(0, {("A", "s0"): "pass", ("A", "s1"): "fail", ("A", "s2"): "fail"}),
    ]
    asked: list[Finding] = []

    def system_of(finding: Finding) -> str:
        asked.append(finding)
        return finding.system

    def counts_of(report: Report, system: str) -> Counts | None:
        return report.summary.systems.get(system)

    points = _trends.series(runs, ["s0", "s1", "s2"], counts_of, system_of)
    assert {s: [p.open_serious for p in ps] for s, ps in points.items()} == {
        "s0": [2, 1, 0],
        "s1": [0, 1, 1],
        "s2": [0, 1],  # the first run did not cover it: no point, rather than a false zero
    }
    assert [p.started for p in points["s2"]] == [runs[1].run.started, runs[2].run.started]
    # Each failure is asked its system once, whatever the number of systems: a province's report
    # asked every system about every finding of every run (minutes for four weekly runs).
    assert len(asked) == sum(1 for r in runs for f in r.findings if f.status == "fail")


def test_only_open_failures_of_high_or_critical_severity_count() -> None:
    findings = [
        F.finding("CRIT", "fail", severity=Severity.CRITICAL),
        F.finding("HIGH", "fail", severity=Severity.HIGH),
        F.finding("MED", "fail", severity=Severity.MEDIUM),
        F.finding("WAIVED", "waived", severity=Severity.CRITICAL),
        F.finding("PASS", "pass", severity=Severity.CRITICAL),
    ]
    report = F.report(findings)
    points = _trends.series(
        [report], ["dichvucong"], lambda r, s: r.summary.systems.get(s), lambda f: f.system
    )
    assert [p.open_serious for p in points["dichvucong"]] == [2]
