"""The report summary: the counts each system and owner get, computed in one pass."""

from collections import Counter

from attt.scanner.models.finding import FindingStatus
from attt.scanner.models.report import Counts, Summary
from tests.factories import finding, system

STATUSES: tuple[FindingStatus, ...] = ("pass", "fail", "error", "waived", "not_applicable")


def test_summary_counts_equal_a_count_of_each_group_on_its_own():
    systems = [system(f"s{i}", owner=f"owner {i % 3}") for i in range(7)]
    findings = [
        finding(rule_id=f"R{j}", status=STATUSES[(i + j) % 5], sys=f"s{i}", host=f"127.0.0.{j}")
        for i in range(7)
        for j in range(i + 1)
    ]
    # A finding of a system the report does not register counts overall only.
    findings.append(finding(status="fail", sys="unregistered"))
    # A system's findings counted in several runs (an earlier attempt's, a resumed run's) too.
    findings += [finding(rule_id="LATE", status="fail", sys=f"s{i}", host="127.0.0.99") for i in (2, 5)]
    summary = Summary.of(findings, systems)
    assert summary.overall == Counts.of(findings)
    assert summary.systems == {s.id: Counts.of(f for f in findings if f.system == s.id) for s in systems}
    owner_of = {s.id: s.owner for s in systems}
    assert summary.owners == {
        owner: Counts.of(f for f in findings if owner_of.get(f.system) == owner)
        for owner in ("owner 0", "owner 1", "owner 2")
    }
    assert Counter(f.status for f in findings)["fail"] == summary.overall.by_status["fail"]


def test_a_system_without_findings_has_zero_counts_and_no_score():
    summary = Summary.of([], [system("quiet")])
    assert summary.systems["quiet"].score is None
    assert set(summary.systems["quiet"].by_status.values()) == {0}
