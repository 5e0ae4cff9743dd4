"""Trends over the stored runs of one inventory: what an auditor asks after "what fails now".

Pure: it reads the current report and earlier ones (`RenderContext.history`), never the store.
"""

from collections import Counter
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


def _serious(f: Finding) -> bool:
    return f.status == "fail" and f.severity.rank >= Severity.HIGH.rank


def series(
    runs: Sequence[Report],
    subjects: Iterable[K],
    counts_of: Callable[[Report, K], Counts | None],
    subject_of: Callable[[Finding], K | None],
) -> dict[K, tuple[Point, ...]]:
    """Each subject's points (a system's or an owner's), one per run that judged it, oldest first.
    `subject_of` names the subject a finding belongs to, so that each run's findings are counted
    in one pass: asked, for each system, about every finding of every earlier run, the report of
    a 1,000-system province with four weekly runs behind it took a minute and a half."""
    serious_of = [Counter(subject_of(f) for f in run.findings if _serious(f)) for run in runs]
    points: dict[K, tuple[Point, ...]] = {}
    for subject in subjects:
        judged = []
        for run, serious in zip(runs, serious_of, strict=True):
            counts = counts_of(run, subject)
            if counts is None:
                continue  # the run did not cover this subject: no point, rather than a false zero
            judged.append(Point(run.run.started, counts.score, serious[subject]))
        points[subject] = tuple(judged)
    return points


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
