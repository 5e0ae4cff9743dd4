"""Trends over the stored runs of one inventory: what an auditor asks after "what fails now".

Pure: it reads the current report and earlier ones (`RenderContext.history`), never the store.
"""

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from attt.scanner.models.base import Severity
from attt.scanner.models.finding import Finding
from attt.scanner.models.report import Counts, Report

K = TypeVar("K")
FindingKey = tuple[str, str, str, int | None]
"""(rule, system, host, port): the same failure in two runs."""


def finding_key(f: Finding) -> FindingKey:
    return (f.rule_id, f.system, f.host, f.port)


@dataclass(frozen=True, slots=True)
class Point:
    started: datetime
    score: float | None
    open_serious: int
    """Open (failed, not waived) critical and high findings."""


def open_serious(findings: Iterable[Finding]) -> int:
    return sum(1 for f in findings if f.status == "fail" and f.severity.rank >= Severity.HIGH.rank)


def series(
    runs: Sequence[Report],
    subject: K,
    counts_of: Callable[[Report, K], Counts | None],
    belongs: Callable[[Finding, K], bool],
) -> tuple[Point, ...]:
    """One point per run that judged the subject (a system or an owner), oldest first."""
    points = []
    for run in runs:
        counts = counts_of(run, subject)
        if counts is None:
            continue  # the run did not cover this subject: no point, rather than a false zero
        serious = open_serious(f for f in run.findings if belongs(f, subject))
        points.append(Point(run.run.started, counts.score, serious))
    return tuple(points)


def first_seen(current: Report, history: Sequence[Report]) -> dict[FindingKey, datetime]:
    """For each failure open now, when the run of uninterrupted failure that it is in began.

    Walking back from the newest earlier run, a run where the rule passed or did not apply ends
    the streak; a run that did not judge it (not scanned, or an error) neither ends nor extends
    it, since nothing was observed either way.
    """
    since = {finding_key(f): current.run.started for f in current.findings if f.status == "fail"}
    ended: set[FindingKey] = set()
    for run in reversed(history):
        status = {finding_key(f): f.status for f in run.findings}
        for key in since.keys() - ended:
            seen = status.get(key)
            if seen == "fail":
                since[key] = run.run.started
            elif seen in ("pass", "not_applicable", "waived"):
                ended.add(key)
    return since
