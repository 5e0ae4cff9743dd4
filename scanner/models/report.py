"""The report every renderer reads, and `report.json` writes as it is."""

import itertools
import operator
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import BaseModel, Field, create_model

from attt.scanner.models.base import Frozen, Severity, Text
from attt.scanner.models.finding import Finding, FindingStatus
from attt.scanner.models.observation import Observation
from attt.scanner.models.policy import PolicySource
from attt.scanner.models.target import Owner, SystemInfo, Target, Zone, ZoneId

SCHEMA_VERSION = "1.0"

RunStatus = Literal["running", "complete", "incomplete"]


class PolicyRef(Frozen):
    id: str
    version: str
    sha256: str
    sources: tuple[PolicySource, ...] = ()


class RunInfo(Frozen):
    id: str
    started: datetime
    finished: datetime | None = None
    status: RunStatus
    province: str
    scope: tuple[str, ...]
    inventory_sha256: str
    policies: tuple[PolicyRef, ...]
    checks: tuple[str, ...]
    """The checks that ran; rules of other checks were not evaluated."""
    options: dict[str, str] = Field(default_factory=dict)
    owners: tuple[Owner, ...] = ()
    """The inventory's owner contacts, for per-owner packs and their email."""
    judged_by: dict[str, str] = Field(default_factory=dict)
    """System id -> the policy that judged it: `vn-level-2`, or `hatinh over vn-level-2` when a
    province overlay was laid over the system's own level policy."""
    zones: tuple[Zone, ...] = ()
    """The inventory's zones, so a stored run is judged and reported knowing which vantages are
    outside ones without the inventory file."""
    vantage: ZoneId | None = None
    """The zone the machine running a local scan sits in (`attt scan --vantage`); every
    observation it made records it. None: not said (or each worker says its own)."""
    probed_from: dict[ZoneId, tuple[ZoneId, ...]] = Field(default_factory=dict)
    """Zone -> the outside vantages the run was to probe its hosts from (the celery engine's
    plan), so that a stopped run judged again later knows which outside probes never ran. Empty:
    none was planned."""
    probed_with: dict[str, dict[str, dict[str, Any]]] = Field(default_factory=dict)
    """Policy that judged a system (a value of `judged_by`) -> check -> the settings its probes
    ran with, those that shape what they observe (`attt.plugin.Settings.neutral` left out): a
    policy judging the run again with other ones cannot judge that check's observations. Empty
    for runs stored before it was recorded."""

    def outside(self) -> frozenset[str]:
        """The ids of the outside vantages (`vantage: outside`), for `evaluate`."""
        return frozenset(zone.id for zone in self.zones if zone.outside)

    def zone_name(self, zone_id: str | None) -> str | None:
        """A zone's display name; None for None or a zone the run does not know."""
        return next((zone.name for zone in self.zones if zone.id == zone_id), None)


SEVERITY_WEIGHTS: dict[Severity, int] = {
    Severity.INFO: 1,
    Severity.LOW: 2,
    Severity.MEDIUM: 4,
    Severity.HIGH: 8,
    Severity.CRITICAL: 16,
}
"""Each severity weighs twice the one below: an expired certificate (high) counts as much as
four low findings."""
SCORE_FORMULA = Text(
    vi="điểm = Σ trọng số các quy tắc đạt hoặc được miễn trừ ÷ Σ trọng số các quy tắc đạt, được"
    " miễn trừ, không đạt hoặc chưa đánh giá được; trọng số: nghiêm trọng 16, cao 8, trung bình 4,"
    " thấp 2, thông tin 1; một lỗi thăm dò tính một lần, theo mức cao nhất trong các quy tắc nó"
    " chặn; không có điểm khi chưa đánh giá được quy tắc nào hoặc còn lượt thăm dò chưa chạy",
    en="score = Σ weight of rules passed or waived ÷ Σ weight of rules passed, waived, failed or"
    " not evaluated; weights: critical 16, high 8, medium 4, low 2, info 1; a probe error counts"
    " once, at the highest severity of the rules it blocked; no score when nothing was judged or"
    " a planned probe did not run",
)


_Kind = tuple[str, Severity, str]
"""What a finding counts as: its status, severity and kind."""


_KIND_OF: Callable[[Finding], _Kind] = operator.attrgetter("status", "severity", "kind")
_SYSTEM_OF: Callable[[Finding], str] = operator.attrgetter("system")


class Counts(Frozen):
    by_status: dict[str, int]
    """Entries by status; a probe error or a probe that never ran is one `error` entry."""
    by_severity: dict[str, int]
    """Failed findings (not waived) by severity."""
    not_probed: int = 0
    """Planned probes that never ran (the run was stopped): their rules have no verdict."""
    score: float | None
    """Severity-weighted share of the applicable entries (pass, fail, waived, error) that passed
    or are waived (`SCORE_FORMULA`): what could not be evaluated counts against the score, never
    for it. None when nothing could be judged, or when a planned probe did not run, because a
    score over a part of the scan would read as the score of the whole."""

    @classmethod
    def of(cls, findings: Iterable[Finding]) -> "Counts":
        return cls.tally(Counter(map(_KIND_OF, findings)))

    @classmethod
    def tally(cls, kinds: Mapping[_Kind, int]) -> "Counts":
        """The counts of findings tallied by (status, severity, kind)."""
        by_status: Counter[str] = Counter()
        failed: Counter[str] = Counter()
        weights: Counter[str] = Counter()
        not_probed = 0
        for (status, severity, kind), n in kinds.items():
            by_status[status] += n
            weights[status] += SEVERITY_WEIGHTS[severity] * n
            if status == "fail":
                failed[severity.value] += n
            if kind == "not_probed":
                not_probed += n
        good = weights["pass"] + weights["waived"]
        applicable = good + weights["fail"] + weights["error"]
        judged = by_status["pass"] + by_status["waived"] + by_status["fail"]
        return cls(
            by_status={s: by_status[s] for s in _STATUSES},
            by_severity={s.value: failed[s.value] for s in Severity},
            not_probed=not_probed,
            score=None if judged == 0 or not_probed else round(good / applicable, 4),
        )


_STATUSES: tuple[FindingStatus, ...] = ("pass", "fail", "error", "waived", "not_applicable")


class Summary(Frozen):
    overall: Counts
    systems: dict[str, Counts]
    owners: dict[str, Counts]
    score_formula: Text = SCORE_FORMULA
    """How `score` is computed, printed in every report that shows a score."""

    @classmethod
    def of(cls, findings: Iterable[Finding], systems: Iterable[SystemInfo]) -> "Summary":
        """One pass over the findings, tallied by system (a national run costs the number of its
        findings, not that times its systems); the overall and owners' counts add tallies up."""
        system_list = list(systems)
        tallies: dict[str, Counter[_Kind]] = defaultdict(Counter)
        # A system's findings mostly come one after another: each run of them is counted by
        # `Counter` itself, without a Python call per finding.
        for system_id, run in itertools.groupby(findings, key=_SYSTEM_OF):
            tallies[system_id].update(map(_KIND_OF, run))
        overall: Counter[_Kind] = Counter()
        for tally in tallies.values():
            overall.update(tally)
        by_owner: dict[str, Counter[_Kind]] = {
            owner: Counter() for owner in sorted({s.owner for s in system_list})
        }
        for system in system_list:
            by_owner[system.owner].update(tallies.get(system.id, {}))
        # Systems of one level mostly tally alike: their counts (immutable) are made once.
        made: dict[frozenset[tuple[_Kind, int]], Counts] = {}

        def counts(tally: Mapping[_Kind, int]) -> Counts:
            key = frozenset(tally.items())
            known = made.get(key)
            if known is None:
                known = made[key] = Counts.tally(tally)
            return known

        return cls(
            overall=Counts.tally(overall),
            systems={s.id: counts(tallies.get(s.id, {})) for s in system_list},
            owners={owner: counts(tally) for owner, tally in by_owner.items()},
        )


class Report(Frozen):
    schema_version: str = SCHEMA_VERSION
    tool_version: str
    run: RunInfo
    systems: tuple[SystemInfo, ...]
    targets: tuple[Target, ...]
    observations: tuple[Observation, ...]
    findings: tuple[Finding, ...]
    summary: Summary


def report_json_schema(data_models: Mapping[str, type[BaseModel]]) -> dict[str, Any]:
    """The JSON Schema of report.json, each check's observations described field by field: a
    union of one observation model per check, told apart by `check`. It covers the checks
    given (`Registry.data_models`): a third-party check's fields appear where it is installed."""
    variants = tuple(_observation_model(name, model) for name, model in sorted(data_models.items()))
    if not variants:
        return Report.model_json_schema()
    observation = Annotated[Union[variants], Field(discriminator="check")]  # type: ignore[valid-type]  # noqa: UP007
    typed = create_model("Report", __base__=Report, observations=(tuple[observation, ...], ...))
    return typed.model_json_schema()


def _observation_model(check: str, data_model: type[BaseModel]) -> type[Observation]:
    # Field types made at run time: typed as Any, since no static type can name them.
    check_type: Any = Literal[check]
    data_type: Any = Optional[data_model]  # noqa: UP045 (a runtime type, not an annotation)
    return create_model(
        f"{check.title().replace('_', '')}Observation",
        __base__=Observation,
        __doc__=f"An observation of the `{check}` check; `data` is present when `status` is ok.",
        check=(check_type, ...),
        data=(data_type, None),
    )
