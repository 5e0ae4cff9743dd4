"""What changed between two runs, and which earlier run a run is compared with. Pure.

This is the one definition of "the same finding in another run" (`finding_key`): `attt diff`
and the HTML report's change section both use `compare`. A rule is *fixed* only when it failed
before and passes now; when it cannot be judged now (the host is down, the probe failed or
never ran, the endpoint is gone) it is *not re-checked*, never fixed. Runs are compared only
when they are alike: the baseline of a run is the latest earlier complete run that scanned the
same hosts of the same systems with the same checks (`choose_baseline`).
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from attt.scanner.models.base import Text
from attt.scanner.models.finding import Finding
from attt.scanner.models.report import Report, RunInfo
from attt.scanner.models.target import Target

FindingKey = tuple[str, str, str, str, int | None]
"""(policy, rule id, system, host, port): one rule on one endpoint, run after run."""

_FAILING = ("fail", "waived")
"""A waived rule still fails; the waiver only accepts it for a while."""


def finding_key(finding: Finding) -> FindingKey:
    return (finding.policy, finding.rule_id, finding.system, finding.host, finding.port)


@dataclass(frozen=True)
class Changes:
    new: tuple[Finding, ...]
    """Failing now and not in the baseline (the current finding)."""
    fixed: tuple[Finding, ...]
    """Failing in the baseline and passing now (the current, passing finding)."""
    not_rechecked: tuple[Finding, ...]
    """Failing in the baseline and not judged now: error, not probed, or no longer observed
    (the baseline's finding)."""
    still: tuple[Finding, ...]
    """Failing in both (the current finding)."""


def compare(before: Iterable[Finding], after: Iterable[Finding]) -> Changes:
    """Sort every rule that fails in either run into new, fixed, not re-checked or still failing."""
    old = {finding_key(f): f for f in before if f.status in _FAILING}
    now = {finding_key(f): f for f in after if f.kind == "rule"}
    failing = {k for k, f in now.items() if f.status in _FAILING}
    passing = {k for k, f in now.items() if f.status == "pass"}
    return Changes(
        new=_ordered(now[k] for k in failing - old.keys()),
        fixed=_ordered(now[k] for k in passing & old.keys()),
        not_rechecked=_ordered(old[k] for k in old.keys() - failing - passing),
        still=_ordered(now[k] for k in failing & old.keys()),
    )


def _ordered(findings: Iterable[Finding]) -> tuple[Finding, ...]:
    return tuple(sorted(findings, key=lambda f: (f.system, f.host, f.port or 0, f.rule_id, f.policy)))


@dataclass(frozen=True)
class Comparison:
    """The run a report is compared with, and why that one (or why none)."""

    previous: Report | None
    reason: Text


def _hosts(targets: Iterable[Target]) -> frozenset[tuple[str, str]]:
    return frozenset(t.key for t in targets)


def why_not_comparable(
    current: RunInfo, targets: Sequence[Target], earlier: RunInfo, earlier_targets: Sequence[Target]
) -> str | None:
    """None when `earlier` can be the baseline of `current`; else the reason, as a short key."""
    if earlier.status != "complete":
        return "incomplete"
    if _hosts(earlier_targets) != _hosts(targets):
        return "other_hosts"
    if set(earlier.checks) != set(current.checks):
        return "other_checks"
    return None


_SKIPPED = {
    "incomplete": ("chưa hoàn tất", "incomplete"),
    "other_hosts": ("quét tập máy chủ khác", "other hosts"),
    "other_checks": ("chạy bộ kiểm tra khác", "other checks"),
}


def choose_baseline(
    current: RunInfo, targets: Sequence[Target], earlier: Iterable[tuple[RunInfo, Sequence[Target]]]
) -> tuple[str | None, Text]:
    """The id of the newest comparable run started before `current`, and why it was chosen (or
    why none was: how many newer runs were passed over, and for what)."""
    skipped: dict[str, int] = {}
    systems = len({t.system.id for t in targets})
    for info, their_targets in sorted(earlier, key=lambda e: (e[0].started, e[0].id), reverse=True):
        if info.started >= current.started or info.id == current.id:
            continue
        why = why_not_comparable(current, targets, info, their_targets)
        if why is None:
            passed_over = _passed_over(skipped)
            return info.id, Text(
                vi=f"lượt quét hoàn tất gần nhất trước đó trên cùng {len(targets)} máy chủ của {systems}"
                f" hệ thống, cùng các kiểm tra{passed_over.vi}",
                en=f"the latest earlier complete run over the same {len(targets)} host(s) of {systems}"
                f" system(s) with the same checks{passed_over.en}",
            )
        skipped[why] = skipped.get(why, 0) + 1
    passed_over = _passed_over(skipped)
    return None, Text(
        vi=f"không có lượt quét hoàn tất nào trước đó trên cùng {len(targets)} máy chủ với cùng các"
        f" kiểm tra{passed_over.vi}",
        en=f"no earlier complete run over the same {len(targets)} host(s) with the same checks"
        f"{passed_over.en}",
    )


def _passed_over(skipped: dict[str, int]) -> Text:
    if not skipped:
        return Text(vi="", en="")
    vi = ", ".join(f"{n} lượt {_SKIPPED[k][0]}" for k, n in sorted(skipped.items()))
    en = ", ".join(f"{n} {_SKIPPED[k][1]}" for k, n in sorted(skipped.items()))
    return Text(vi=f" (bỏ qua các lượt mới hơn: {vi})", en=f" (newer runs passed over: {en})")
