"""`report.html`: the auditor's report, one self-contained file in Vietnamese or English.

Python builds a view model of plain, already-cleaned values (`build_view`); the templates only
lay it out. One autoescaping environment renders everything, so a value a target sent can only
ever reach the page as escaped text. The page's own CSS and script are the only markup marked
safe, and a Content-Security-Policy pins them by hash: nothing else may run or load.

The report reads verdict first: the cover gives the overall verdict, the score and how it is
computed, the counts by severity and every critical and high failure; run metadata and policy
hashes close the report in its appendix. It carries what an auditor reads, so a province's page
stays small enough to open: failures, errors and waivers in full, a compact row each with the
facts of that finding (where, what was observed, since when), referring by link to what is the
same for many rows: its rule's title, remediation and references, printed once in the rules
section, and its waiver's reason, approver and decision, printed once in the waivers section;
passes and not-applicable rules as counts and their ids; the raw observations only in
report.json, which the page names. `report.pdf` (`reports/pdf.py`) lays out the same view for
filing, with passes and waived findings as counts.
"""

import base64
import hashlib
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from functools import cache, lru_cache
from importlib.resources import files
from typing import ClassVar, Final, Literal, TypeVar

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup, escape

from attt.reports import _trends
from attt.reports._i18n import evidence_value, strings
from attt.reports._locale import day, name_key, percent, when
from attt.reports._reference import reference_text
from attt.reports._text import as_text
from attt.reports.base import DEFAULT_CONTEXT, Lang, RenderContext
from attt.scanner.changes import Comparison, Side, compare_runs
from attt.scanner.evaluate import exit_code
from attt.scanner.exitcodes import ExitCode
from attt.scanner.models.base import Severity
from attt.scanner.models.finding import Finding, FindingStatus, WaiverNote
from attt.scanner.models.policy import Reference
from attt.scanner.models.report import Counts, Report
from attt.scanner.models.target import Contact
from attt.scanner.text import clean

Medium = Literal["html", "pdf"]
V = TypeVar("V", "OwnerView", "SystemView")
K = TypeVar("K")

SEVERITIES: Final = tuple(s.value for s in reversed(Severity))
"""Most severe first, the order a reader wants."""
STATUSES: Final[tuple[FindingStatus, ...]] = ("fail", "error", "waived", "pass", "not_applicable")
_STATUS_RANK: Final[dict[str, int]] = {s: i for i, s in enumerate(STATUSES)}
_SHOWN: Final = frozenset({"fail", "waived"})
"""Statuses listed openly per host; errors are grouped per probe, the others folded away."""
BANDS: Final = ((0.9, "good"), (0.7, "fair"), (0.0, "poor"))
"""Score bars: green from 90 %, amber from 70 %, red below."""
COLOURS: Final = {
    "good": "#1a7f37",
    "fair": "#d4731b",
    "poor": "#c4262e",
    "none": "#6e7781",
    "track": "#e6e9ed",
    "critical": "#7a0916",
    "high": "#c4262e",
    "medium": "#d4731b",
    "low": "#b08800",
    "info": "#4a6fa5",
    "ink": "#1b1f24",
}
"""Fills of the inline charts, given as SVG attributes: PDF layout applies no stylesheet to SVG."""
COVER_LIMIT: Final = 60
"""Critical and high failures listed on the cover; the rest are counted, and all are in the details."""
LARGE_REPORT: Final = 100
"""Systems from which the browser lays out only the systems near the screen (report.css)."""
TREND_RUNS: Final = 12
"""Runs a trend shows, the current one included."""

_ENV: Final = Environment(
    loader=PackageLoader("attt.reports"),
    autoescape=select_autoescape(enabled_extensions=("html", "j2"), default_for_string=True, default=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _element_text(value: str) -> Markup:
    """`value` escaped for an element's content, where quotes are inert: evidence is JSON, full of
    quotes that `&#34;` would make five bytes each. Only ever for text between tags, never for an
    attribute value (autoescaping does those)."""
    return Markup(str(escape(value)).replace("&#34;", '"').replace("&#39;", "'"))  # noqa: S704 - escaped above


_ENV.filters["text"] = _element_text
# For a page that renders models as they are (the owners' index), not a view already cleaned.
_ENV.filters["clean"] = clean


@dataclass(frozen=True, slots=True)
class Asset:
    """The page's own inline CSS or script, and its CSP hash."""

    text: Markup
    csp: str


@cache
def _asset(name: str) -> Asset:
    text = files("attt.reports").joinpath("templates", name).read_text("utf-8")
    if "</" in text:
        raise ValueError(f"{name} must not contain '</': it is inlined into the page")
    digest = base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")
    return Asset(text=Markup(text), csp=f"'sha256-{digest}'")  # noqa: S704 - our own file, never target text


@dataclass(frozen=True, slots=True)
class CountsView:
    by_status: Mapping[str, int]
    by_severity: Mapping[str, int]
    score: str
    score_fraction: float | None
    band: str
    """`good`, `fair`, `poor` (BANDS) or `none`: the colour of the score bar."""


@dataclass(frozen=True, slots=True)
class ReferenceView:
    text: str
    """`reference_text`: standard, clause and confidence, the way every format cites them."""
    confidence: str
    url: str | None


@dataclass(frozen=True, slots=True)
class WaiverView:
    """One waiver as a policy grants it (a rule on a system), with every place it covers: the
    findings it covers link to it (`anchor`) instead of repeating its text."""

    anchor: str
    rule_id: str
    system: str
    places: tuple[str, ...]
    """`host:port` of each finding it covers."""
    reason: str
    approved_by: str
    decision: str | None
    expires: str
    expired: bool


@dataclass(frozen=True, slots=True)
class FindingView:
    rule_id: str
    title: str
    status: str
    severity: str
    severity_label: str
    owner_index: int
    system: str
    host: str
    port: int | None
    place: str
    """`host:port`, or the host alone."""
    check: str
    control: str
    policy: str
    message: str
    evidence: tuple[tuple[str, str], ...]
    """(key, text), observed and expected first; empty unless the finding failed or is waived."""
    remediation: str
    references: tuple[ReferenceView, ...]
    waiver: WaiverView | None
    open_days: str | None
    """For a failure: the first run of the streak it is in, as a date, and for how long."""
    vantage: str | None = None
    """`from: Internet (outside)` for what an outside vantage saw; `judged from inside: DMZ` for a
    rule asking for the Internet that had to do without; None for the usual inside view."""

    @property
    def observed(self) -> str:
        return next((text for key, text in self.evidence if key == "observed"), "")

    @property
    def expected(self) -> str:
        return next((text for key, text in self.evidence if key == "expected"), "")

    @property
    def other_evidence(self) -> tuple[tuple[str, str], ...]:
        """Evidence a check gave beyond what it observed and expected, by name."""
        return tuple((key, text) for key, text in self.evidence if key not in ("observed", "expected"))


@dataclass(frozen=True, slots=True)
class ErrorGroupView:
    """One probe (or one reason) that kept rules from a verdict, with the rules it blocked."""

    owner_index: int
    system: str
    host: str
    port: int | None
    place: str
    check: str
    severity: str
    """The most severe rule it blocked."""
    severity_label: str
    message: str
    """What the report says, in the report's language."""
    tool_said: str | None
    """The probe's own error text (a library's words), shown as such, apart from the sentence."""
    rules: tuple[str, ...]
    vantage: str | None = None
    """As `FindingView.vantage`: an outside probe that failed says where it was made from."""


@dataclass(frozen=True, slots=True)
class HostView:
    address: str
    hostname: str | None
    ip: str | None
    shown: tuple[FindingView, ...]
    errors: tuple[ErrorGroupView, ...]
    folded: tuple[FindingView, ...]
    shared_with: tuple[str, ...] = ()
    """Other systems that register the same host, each judging it by its own rules."""
    vantages: str | None = None
    """Where the host was seen from, when from more than one zone: `DMZ, Internet (outside)`."""

    @property
    def passed(self) -> tuple[FindingView, ...]:
        return tuple(fv for fv in self.folded if fv.status == "pass")

    @property
    def not_applicable(self) -> tuple[FindingView, ...]:
        return tuple(fv for fv in self.folded if fv.status == "not_applicable")


@dataclass(frozen=True, slots=True)
class SystemView:
    id: str
    name: str
    level: int | None
    """None for a system the report's inventory does not register."""
    owner: str
    owner_index: int
    tags: tuple[str, ...]
    counts: CountsView
    hosts: tuple[HostView, ...]
    level_decision: str | None
    """The decision approving the level: number and date."""
    judged_by: str | None
    """The policy that judged the system (a province overlay names the level policy it lies over)."""


@dataclass(frozen=True, slots=True)
class OwnerView:
    index: int
    name: str
    counts: CountsView
    systems: tuple[SystemView, ...]
    contact: str | None
    """Who receives the agency's pack: name, email, phone."""


@dataclass(frozen=True, slots=True)
class TopFailureView:
    severity: str
    severity_label: str
    rule_id: str
    title: str
    system: str
    system_name: str
    owner: str
    place: str
    open_days: str | None


@dataclass(frozen=True, slots=True)
class RuleView:
    """A rule that failed somewhere, with what to do about it: printed once, not per host."""

    rule_id: str
    title: str
    severity: str
    remediation: str
    references: tuple[ReferenceView, ...]
    failed: int


@dataclass(frozen=True, slots=True)
class CheckedView:
    """What was checked on one host: each check's probe outcome and the verdict counts."""

    system: str
    host: str
    probes: tuple[tuple[str, bool], ...]
    """(check, whether its probe completed)."""
    by_status: Mapping[str, int]


@dataclass(frozen=True, slots=True)
class ChangeView:
    rule_id: str
    title: str
    severity: str
    system: str
    host: str
    port: int | None
    verdicts: str = ""
    """For a rule judged otherwise: its verdict then and now (`fail → pass`)."""


@dataclass(frozen=True, slots=True)
class ChangesView:
    previous_run: str | None
    """None when no earlier run is comparable; `reason` says why."""
    reason: str
    """Why this run was chosen as the baseline (or why there is none)."""
    new: tuple[ChangeView, ...]
    fixed: tuple[ChangeView, ...]
    not_rechecked: tuple[ChangeView, ...]
    still: int
    first_judged: tuple[ChangeView, ...] = ()
    """Failing now and not judged in the previous run: not called new."""
    unverified: int = 0
    """Rules passing in the baseline and not judged now: no longer shown compliant. A count: the
    hosts that could not be judged are listed where the report lists what it could not scan, and
    one host down would list every rule it was judged on."""
    rejudged: tuple[ChangeView, ...] = ()
    """Verdicts that changed while the policy judging the system changed: neither new nor fixed."""
    notes: tuple[str, ...] = ()
    """How the judging changed between the two runs (which policy, which system)."""


@dataclass(frozen=True, slots=True)
class TrendView:
    """One subject's last runs as an inline SVG: a score line over open critical/high bars."""

    name: str
    line: str
    """The polyline's points, `x,y x,y`; empty when no run had a score."""
    bars: tuple[tuple[float, float, float, int], ...]
    """(x, y, height, count) per run."""
    first: str
    last: str
    score: str
    open_serious: int
    runs: int


@dataclass(frozen=True, slots=True)
class PolicyView:
    id: str
    version: str
    sha256: str
    sources: tuple[tuple[str, str, str], ...]
    """(path, version, sha256) of every file the policy was resolved from."""


@dataclass(frozen=True, slots=True)
class RunView:
    province: str
    run_id: str
    started: str
    finished: str | None
    status: str
    tool_version: str
    schema_version: str
    inventory_sha256: str
    policies: tuple[PolicyView, ...]
    scope: tuple[str, ...]
    checks: tuple[str, ...]
    zones: tuple[str, ...] = ()
    """The inventory's zones: `dmz (DMZ)`, `internet (Internet, outside)`."""


@dataclass(frozen=True, slots=True)
class VerdictView:
    key: str
    """`fail`, `incomplete` or `pass`: the same judgement as the scan's exit code."""
    fail_on: str | None
    score_formula: str
    top: tuple[TopFailureView, ...]
    top_more: int


@dataclass(frozen=True, slots=True)
class ReportView:
    lang: Lang
    medium: Medium
    t: Mapping[str, str]
    run: RunView
    verdict: VerdictView
    overall: CountsView
    chart: tuple[tuple[str, int, int], ...]
    """(severity, failed count, bar width 0..100) for the summary chart."""
    owners: tuple[OwnerView, ...]
    """Worst first."""
    error_groups: tuple[ErrorGroupView, ...]
    waivers: tuple[WaiverView, ...]
    changes: ChangesView | None
    trends_systems: tuple[TrendView, ...]
    trends_owners: tuple[TrendView, ...]
    checked: tuple[CheckedView, ...]
    rules: tuple[RuleView, ...]
    """Failed or waived rules, most severe first (the PDF prints remediation once per rule)."""
    other_rules: tuple[tuple[str, str], ...]
    """(id, title) of every other rule the page names by id alone (passed, not applicable, no
    verdict), so each id the details show has its title in the rules section."""
    observation_count: int
    """Raw observations stay in report.json: the page says how many and where, never repeats them."""
    systems: tuple[tuple[str, str], ...]
    """(id, name) of every system, for the filter."""
    finding_count: int
    """Rows the filter counts: each finding, with errors one row per group."""


def build_view(
    report: Report, lang: Lang, context: RenderContext = DEFAULT_CONTEXT, medium: Medium = "html"
) -> ReportView:
    """Everything the templates show, cleaned and ordered."""
    t = strings(lang)
    by_name = name_key(lang)
    # A finding of a system the report does not register still shows, under an unknown owner:
    # nothing is dropped from the report for lack of metadata.
    registered = list(report.systems)
    orphans = sorted({f.system for f in report.findings} - {s.id for s in registered})
    owner_of = {s.id: s.owner for s in registered} | dict.fromkeys(orphans, t["owner_unknown"])
    name_of = {s.id: s.name for s in registered} | {sid: sid for sid in orphans}
    owner_names = sorted(set(owner_of.values()) | set(report.summary.owners), key=by_name)
    owner_index = {name: i for i, name in enumerate(owner_names)}
    since = _trends.first_seen(report, context.history)
    vantage = _Vantages(report, t)
    waivers = _waivers(report, lang)
    findings = [
        _finding_view(
            f,
            owner_index[owner_of[f.system]],
            lang,
            t,
            _open_days(report, since, f, lang, t),
            vantage.of(f),
            None if f.waiver is None else waivers[_waiver_key(f, f.waiver)],
        )
        for f in report.findings
    ]
    groups = _error_groups(report, owner_index, owner_of, lang, t, vantage)

    by_host: dict[tuple[str, str], list[FindingView]] = defaultdict(list)
    for fv in findings:
        by_host[(fv.system, fv.host)].append(fv)
    groups_by_host: dict[tuple[str, str], list[ErrorGroupView]] = defaultdict(list)
    for g in groups:
        groups_by_host[(g.system, g.host)].append(g)
    addresses: dict[str, dict[str, tuple[str | None, str | None]]] = defaultdict(dict)
    for target in report.targets:
        addresses[target.system.id][target.address] = (target.host.hostname, target.ip)
    for fv in findings:
        addresses[fv.system].setdefault(fv.host, (None, None))
    systems_at: dict[str, set[str]] = defaultdict(set)
    for target in report.targets:
        systems_at[target.address].add(target.system.id)

    entries: list[tuple[str, str, str, int | None, tuple[str, ...]]] = [
        (s.id, s.name, s.owner, s.level, s.tags) for s in registered
    ]
    entries.extend((sid, sid, owner_of[sid], None, ()) for sid in orphans)
    systems_of: dict[str, list[SystemView]] = defaultdict(list)
    decisions = {
        s.id: f"{s.level_decision.number}, {s.level_decision.date}" for s in registered if s.level_decision
    }
    contacts = {o.name: _contact(o.contact) for o in report.run.owners}
    for system_id, name, owner, level, tags in entries:
        hosts = tuple(
            replace(
                _host_view(
                    address,
                    *addresses[system_id][address],
                    by_host.get((system_id, address), []),
                    groups_by_host.get((system_id, address), []),
                ),
                shared_with=tuple(sorted(systems_at[address] - {system_id})),
                vantages=vantage.of_host(system_id, address),
            )
            for address in sorted(addresses[system_id])
        )
        counts = report.summary.systems.get(system_id) or Counts.of(
            f for f in report.findings if f.system == system_id
        )
        systems_of[owner].append(
            SystemView(
                id=system_id,
                name=clean(name),
                level=level,
                owner=clean(owner),
                owner_index=owner_index[owner],
                tags=tags,
                counts=_counts_view(counts, lang, t),
                hosts=hosts,
                level_decision=clean(decisions[system_id]) if system_id in decisions else None,
                judged_by=clean(report.run.judged_by[system_id])
                if system_id in report.run.judged_by
                else None,
            )
        )
    owners = tuple(
        sorted(
            (
                OwnerView(
                    index=owner_index[name],
                    name=clean(name),
                    counts=_counts_view(
                        report.summary.owners.get(name)
                        or Counts.of(f for f in report.findings if owner_of[f.system] == name),
                        lang,
                        t,
                    ),
                    systems=tuple(sorted(systems_of[name], key=_worst_first(lambda s: s.name, by_name))),
                    contact=clean(contacts[name]) if name in contacts else None,
                )
                for name in owner_names
            ),
            key=_worst_first(lambda o: o.name, by_name),
        )
    )
    overall = _counts_view(report.summary.overall, lang, t)
    peak = max(report.summary.overall.by_severity.values(), default=0)
    return ReportView(
        lang=lang,
        medium=medium,
        t=t,
        run=_run_view(report, lang),
        verdict=_verdict(report, context, findings, owner_of, name_of, lang, t),
        overall=overall,
        chart=tuple(
            (sev, n, 0 if peak == 0 else max(1, round(100 * n / peak)) if n else 0)
            for sev in SEVERITIES
            for n in [report.summary.overall.by_severity.get(sev, 0)]
        ),
        owners=owners,
        error_groups=groups,
        waivers=tuple(waivers.values()),
        changes=None if context.baseline is None else _changes(report, context.baseline, lang),
        trends_systems=_trends_of(
            report,
            context.history,
            [(s.id, f"{s.name} ({s.id})") for o in owners for s in o.systems],
            lambda r, sid: r.summary.systems.get(sid),
            lambda f: f.system,
            lang,
            t,
        ),
        trends_owners=_trends_of(
            report,
            context.history,
            [(name, name) for name in owner_names],
            lambda r, name: r.summary.owners.get(name),
            lambda f: owner_of.get(f.system),
            lang,
            t,
        ),
        checked=_checked(report),
        rules=_rules(findings),
        other_rules=_other_rules(findings),
        observation_count=len(report.observations),
        systems=tuple((s.id, s.name) for o in owners for s in o.systems),
        finding_count=sum(1 for fv in findings if fv.status != "error") + len(groups),
    )


def _worst_first(
    name: Callable[[V], str], by_name: Callable[[str], bytes]
) -> Callable[[V], tuple[int, int, float, bytes]]:
    """Most critical failures first, then most high ones, then the lowest score (no score at all
    before any), then by name in the language's order."""

    def key(item: V) -> tuple[int, int, float, bytes]:
        counts = item.counts
        score = -1.0 if counts.score_fraction is None else counts.score_fraction
        return (
            -counts.by_severity.get("critical", 0),
            -counts.by_severity.get("high", 0),
            score,
            by_name(name(item)),
        )

    return key


def _band(fraction: float | None) -> str:
    if fraction is None:
        return "none"
    return next(band for floor, band in BANDS if fraction >= floor)


def _score_text(fraction: float | None, lang: Lang, t: Mapping[str, str]) -> str:
    return t["score_none"] if fraction is None else percent(fraction, lang)


def _contact(contact: Contact) -> str:
    return " · ".join(x for x in (contact.name, contact.email, contact.phone) if x)


def _counts_view(counts: Counts, lang: Lang, t: Mapping[str, str]) -> CountsView:
    # a score over part of the planned scan would read as the score of the whole
    score = t["score_not_finished"] if counts.not_probed else _score_text(counts.score, lang, t)
    return CountsView(
        by_status=counts.by_status,
        by_severity=counts.by_severity,
        score=score,
        score_fraction=counts.score,
        band=_band(counts.score),
    )


def _open_days(
    report: Report, since: Mapping[_trends.FindingKey, datetime], f: Finding, lang: Lang, t: Mapping[str, str]
) -> str | None:
    first = since.get(_trends.finding_key(f))
    if first is None:
        return None
    return t["open_days"].format(date=day(first, lang), days=(report.run.started - first).days)


class _Vantages:
    """Labels saying where something was seen from, by the zone names the run recorded."""

    def __init__(self, report: Report, t: Mapping[str, str]) -> None:
        self._run, self._t = report.run, t
        self._outside = report.run.outside()
        seen: dict[tuple[str, str], set[str | None]] = defaultdict(set)
        for o in report.observations:
            seen[(o.system, o.host)].add(o.zone)
        self._seen = seen

    def _name(self, vantage: str | None) -> str:
        if vantage is None:
            return self._t["vantage_here"]
        name = clean(self._run.zone_name(vantage) or vantage)
        return self._t["vantage_outside"].format(zone=name) if vantage in self._outside else name

    def of(self, f: Finding) -> str | None:
        if f.judged_from_inside:
            return self._t["vantage_inside"].format(zone=self._name(f.vantage))
        return self.seen_from(f.vantage)

    def seen_from(self, vantage: str | None) -> str | None:
        if vantage not in self._outside:
            return None
        return f"{self._t['vantage_from']}: {self._name(vantage)}"

    def of_host(self, system: str, host: str) -> str | None:
        vantages = self._seen.get((system, host), set())
        if len(vantages) < 2:
            return None
        return ", ".join(sorted(self._name(v) for v in vantages))


def _finding_view(
    f: Finding,
    owner_index: int,
    lang: Lang,
    t: Mapping[str, str],
    open_days: str | None,
    vantage: str | None = None,
    waiver: WaiverView | None = None,
) -> FindingView:
    host = clean(f.host)
    # Only a failure or a waiver shows its evidence and its rule's references (these once, in the
    # rules section): a pass's stay in report.json, and a province has tens of thousands of passes.
    full = f.status in _SHOWN
    return FindingView(
        rule_id=f.rule_id,
        title=_clean_policy_text(f.title.get(lang)),
        status=f.status,
        severity=f.severity.value,
        severity_label=t["severity_" + f.severity.value],
        owner_index=owner_index,
        system=f.system,
        host=host,
        port=f.port,
        place=_place(host, f.port),
        check=clean(f.check),
        control=f.control,
        policy=f.policy,
        message=clean(f.message.get(lang)),
        evidence=_evidence_rows(f, lang) if full else (),
        remediation=_clean_policy_text(f.remediation.get(lang)),
        references=tuple(_reference_view(r, lang) for r in f.references) if full else (),
        waiver=waiver,
        open_days=open_days,
        vantage=vantage,
    )


def _evidence_rows(f: Finding, lang: Lang) -> tuple[tuple[str, str], ...]:
    """Observed and expected first, in the report's language, then the rest by name."""
    evidence = dict(f.evidence)
    rows: list[tuple[str, str]] = [
        (key, as_text(evidence_value(evidence.pop(key), lang)))
        for key in ("observed", "expected")
        if key in evidence
    ]
    rows.extend((clean(str(key)), as_text(value)) for key, value in sorted(evidence.items()))
    return tuple(rows)


_WaiverKey = tuple[str, str, str, str, str | None, date, bool]


def _waiver_key(f: Finding, w: WaiverNote) -> _WaiverKey:
    """What makes two findings covered by the same waiver: its rule and system, and its words."""
    return (f.system, f.rule_id, w.reason, w.approved_by, w.decision, w.expires, w.expired)


def _waivers(report: Report, lang: Lang) -> dict[_WaiverKey, WaiverView]:
    """Each waiver once, expired ones last, with the places it covers; in page order."""
    places: dict[_WaiverKey, set[str]] = defaultdict(set)
    for f in report.findings:
        if f.waiver is not None:
            places[_waiver_key(f, f.waiver)].add(_place(clean(f.host), f.port))
    ordered = sorted(places.items(), key=lambda kv: (kv[0][6], kv[0][0], min(kv[1]), kv[0][1]))
    return {
        key: WaiverView(
            anchor=f"w{i}",
            rule_id=rule_id,
            system=system,
            places=tuple(sorted(where)),
            reason=clean(reason),
            approved_by=clean(approved_by),
            decision=None if decision is None else clean(decision),
            expires=day(expires, lang),
            expired=expired,
        )
        for i, (key, where) in enumerate(ordered)
        for system, rule_id, reason, approved_by, decision, expires, expired in [key]
    }


def _place(host: str, port: int | None) -> str:
    return host if port is None else f"{host}:{port}"


_clean_policy_text = lru_cache(maxsize=4096)(clean)
"""Rule texts repeat on every host a rule judged: clean each distinct one once."""


@lru_cache(maxsize=4096)
def _reference_view(r: Reference, lang: Lang) -> ReferenceView:
    return ReferenceView(
        text=clean(reference_text(r, lang)),
        confidence=r.confidence,
        url=r.url if r.url and r.url.startswith(("https://", "http://")) else None,
    )


def _error_groups(
    report: Report,
    owner_index: Mapping[str, int],
    owner_of: Mapping[str, str],
    lang: Lang,
    t: Mapping[str, str],
    vantages: _Vantages,
) -> tuple[ErrorGroupView, ...]:
    """Error findings as one entry per failed probe (or per shared reason), listing the rules.

    A probe that failed leaves its error on the observation: that text is the tool's, kept apart
    from the report's sentence. An error from a probe that completed (a fact it could not
    establish) is grouped by the finding's own message. A failed probe no rule depended on is
    still listed: it is a part of the scan that did not happen.
    """
    failed_probe = {
        (o.system, o.host, o.port, o.check, o.zone): o.error or ""
        for o in report.observations
        if o.status == "error"
    }
    grouped: dict[tuple[str, str, int | None, str, str | None, str, str], list[Finding]] = defaultdict(list)
    for f in report.findings:
        if f.status != "error":
            continue
        where = (f.system, f.host, f.port, f.check, f.vantage)
        tool = failed_probe.get(where)
        if tool is None and f.kind == "probe_error":
            tool = str(f.evidence.get("observed") or "")
        if tool is not None:
            grouped[(*where, tool, "probe")].append(f)
        elif f.kind == "not_probed":
            grouped[(*where, "", "not_probed")].append(f)
        else:
            grouped[(*where, f.message.get(lang), "rule")].append(f)
    for (system, host, port, check, vantage), tool in failed_probe.items():
        grouped.setdefault((system, host, port, check, vantage, tool, "probe"), [])
    views = []
    for (system, host, port, check, vantage, text, cause), members in grouped.items():
        # an entry standing for a failed probe lists the rules it blocked, not its own id
        rules = sorted({r for f in members for r in (f.blocked if f.kind != "rule" else (f.rule_id,))})
        severity = max((f.severity for f in members), key=lambda s: s.rank, default=Severity.INFO).value
        message = {
            "probe": t["probe_failed"].format(check=clean(check)),
            "not_probed": t["not_probed"].format(check=clean(check)),
        }.get(cause, clean(text))
        views.append(
            ErrorGroupView(
                owner_index=owner_index[owner_of.get(system, t["owner_unknown"])],
                system=system,
                host=clean(host),
                port=port,
                place=_place(clean(host), port),
                check=clean(check),
                severity=severity,
                severity_label=t["severity_" + severity],
                message=message,
                tool_said=clean(text) if cause == "probe" else None,
                rules=tuple(rules),
                vantage=vantages.seen_from(vantage),
            )
        )
    return tuple(sorted(views, key=lambda g: (g.system, g.host, g.port or 0, g.check, g.message)))


def _finding_order(fv: FindingView) -> tuple[int, int, str, int]:
    return (_STATUS_RANK[fv.status], SEVERITIES.index(fv.severity), fv.rule_id, fv.port or 0)


def _host_view(
    address: str,
    hostname: str | None,
    ip: str | None,
    findings: Iterable[FindingView],
    errors: Sequence[ErrorGroupView],
) -> HostView:
    ordered = sorted(findings, key=_finding_order)
    return HostView(
        address=clean(address),
        hostname=None if hostname is None else clean(hostname),
        ip=None if ip is None else clean(ip),
        shown=tuple(fv for fv in ordered if fv.status in _SHOWN),
        errors=tuple(errors),
        folded=tuple(fv for fv in ordered if fv.status not in _SHOWN and fv.status != "error"),
    )


def _verdict(
    report: Report,
    context: RenderContext,
    findings: Sequence[FindingView],
    owner_of: Mapping[str, str],
    name_of: Mapping[str, str],
    lang: Lang,
    t: Mapping[str, str],
) -> VerdictView:
    code = exit_code(report.findings, context.fail_on, report.run.status == "complete")
    key = {ExitCode.VIOLATION: "fail", ExitCode.OK: "pass"}.get(code, "incomplete")
    serious = sorted(
        (fv for fv in findings if fv.status == "fail" and fv.severity in ("critical", "high")),
        key=lambda fv: (
            SEVERITIES.index(fv.severity),
            name_key(lang)(name_of[fv.system]),
            fv.rule_id,
            fv.place,
        ),
    )
    return VerdictView(
        key=key,
        fail_on=None if context.fail_on is None else t["severity_" + context.fail_on.value],
        score_formula=clean(report.summary.score_formula.get(lang)),
        top=tuple(
            TopFailureView(
                severity=fv.severity,
                severity_label=fv.severity_label,
                rule_id=fv.rule_id,
                title=fv.title,
                system=fv.system,
                system_name=clean(name_of[fv.system]),
                owner=clean(owner_of[fv.system]),
                place=fv.place,
                open_days=fv.open_days,
            )
            for fv in serious[:COVER_LIMIT]
        ),
        top_more=max(0, len(serious) - COVER_LIMIT),
    )


def _trends_of(
    report: Report,
    history: Sequence[Report],
    subjects: Sequence[tuple[K, str]],
    counts_of: Callable[[Report, K], Counts | None],
    subject_of: Callable[[Finding], K | None],
    lang: Lang,
    t: Mapping[str, str],
) -> tuple[TrendView, ...]:
    """Trends only when there is a past to compare with."""
    if not history:
        return ()
    runs = [*history[-(TREND_RUNS - 1) :], report]
    series = _trends.series(runs, [key for key, _ in subjects], counts_of, subject_of)
    views = []
    for key, label in subjects:
        points = series[key]
        if points:
            views.append(_trend_view(clean(label), points, lang, t))
    return tuple(views)


_TREND_W: Final = 240.0
_TREND_H: Final = 48.0


def _trend_view(name: str, points: Sequence[_trends.Point], lang: Lang, t: Mapping[str, str]) -> TrendView:
    step = _TREND_W / max(1, len(points))
    peak = max((p.open_serious for p in points), default=0) or 1
    line = " ".join(
        f"{step * i + step / 2:.1f},{_TREND_H - p.score * _TREND_H:.1f}"
        for i, p in enumerate(points)
        if p.score is not None
    )
    bars = tuple(
        (step * i + step * 0.2, _TREND_H - h, h, p.open_serious)
        for i, p in enumerate(points)
        for h in [round(p.open_serious / peak * _TREND_H * 0.6, 1)]
    )
    return TrendView(
        name=name,
        line=line,
        bars=bars,
        first=day(points[0].started, lang),
        last=day(points[-1].started, lang),
        score=_score_text(points[-1].score, lang, t),
        open_serious=points[-1].open_serious,
        runs=len(points),
    )


def _rules(findings: Sequence[FindingView]) -> tuple[RuleView, ...]:
    acted = [fv for fv in findings if fv.status in _SHOWN]
    failed: dict[str, int] = defaultdict(int)
    first: dict[str, FindingView] = {}
    for fv in acted:
        first.setdefault(fv.rule_id, fv)
        failed[fv.rule_id] += fv.status == "fail"
    return tuple(
        RuleView(fv.rule_id, fv.title, fv.severity, fv.remediation, fv.references, failed[fv.rule_id])
        for fv in sorted(first.values(), key=lambda fv: (SEVERITIES.index(fv.severity), fv.rule_id))
    )


def _other_rules(findings: Sequence[FindingView]) -> tuple[tuple[str, str], ...]:
    acted = {fv.rule_id for fv in findings if fv.status in _SHOWN}
    titles = {fv.rule_id: fv.title for fv in findings if fv.rule_id not in acted}
    return tuple(sorted(titles.items()))


def _checked(report: Report) -> tuple[CheckedView, ...]:
    probes: dict[tuple[str, str], dict[str, bool]] = defaultdict(dict)
    for o in report.observations:
        done = probes[(o.system, o.host)]
        done[o.check] = done.get(o.check, True) and o.status == "ok"
    statuses: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: dict.fromkeys(STATUSES, 0))
    for f in report.findings:
        statuses[(f.system, f.host)][f.status] += 1
    return tuple(
        CheckedView(
            system=system,
            host=clean(host),
            probes=tuple(sorted((clean(c), ok) for c, ok in probes.get((system, host), {}).items())),
            by_status=statuses.get((system, host)) or dict.fromkeys(STATUSES, 0),
        )
        for system, host in sorted(probes.keys() | statuses.keys())
    )


def _run_view(report: Report, lang: Lang) -> RunView:
    run, t = report.run, strings(lang)
    return RunView(
        province=clean(run.province),
        run_id=clean(run.id),
        started=when(run.started, lang),
        finished=None if run.finished is None else when(run.finished, lang),
        status=run.status,
        tool_version=clean(report.tool_version),
        schema_version=report.schema_version,
        inventory_sha256=run.inventory_sha256,
        policies=tuple(
            PolicyView(
                id=p.id,
                version=clean(p.version),
                sha256=p.sha256,
                sources=tuple((clean(s.path), clean(s.version), s.sha256) for s in p.sources),
            )
            for p in run.policies
        ),
        scope=tuple(clean(s) for s in run.scope),
        checks=tuple(clean(c) for c in run.checks),
        zones=tuple(
            f"{z.id} ({clean(z.name)}{', ' + t['zone_outside'] if z.outside else ''})" for z in run.zones
        ),
    )


def _changes(report: Report, baseline: Comparison, lang: Lang) -> ChangesView:
    t = strings(lang)

    def view(f: Finding, verdicts: str = "") -> ChangeView:
        return ChangeView(
            rule_id=f.rule_id,
            title=clean(f.title.get(lang)),
            severity=f.severity.value,
            system=f.system,
            host=clean(f.host),
            port=f.port,
            verdicts=verdicts,
        )

    def verdict(status: str | None) -> str:
        return t[f"status_{status}"] if status is not None else t["changes_not_judged"]

    reason = clean(baseline.reason.get(lang))
    if baseline.previous is None:
        return ChangesView(None, reason, (), (), (), 0)
    previous = baseline.previous
    changes = compare_runs(*(Side(r.run, r.targets, r.findings) for r in (previous, report)))
    return ChangesView(
        previous_run=clean(previous.run.id),
        reason=reason,
        new=tuple(view(f) for f in changes.new),
        fixed=tuple(view(f) for f in changes.fixed),
        not_rechecked=tuple(view(f) for f in changes.not_rechecked),
        still=len(changes.still),
        first_judged=tuple(view(f) for f in changes.first_judged),
        unverified=len(changes.unverified),
        rejudged=tuple(view(r.finding, f"{verdict(r.was)} → {verdict(r.now)}") for r in changes.rejudged),
        notes=tuple(clean(n.get(lang)) for n in changes.notes),
    )


class HtmlRenderer:
    format: ClassVar[str] = "html"
    filename: ClassVar[str] = "report.html"

    def render(self, report: Report, lang: Lang, context: RenderContext = DEFAULT_CONTEXT) -> bytes:
        return render_html(build_view(report, lang, context))


SECTIONS: Final = frozenset({"front", "details", "rules", "waivers", "appendix"})
"""The page's runs of sections: cover to trends, the details, the rules, the waivers, the appendix."""


def render_html(
    view: ReportView,
    footer: str = "",
    sections: Collection[str] = SECTIONS,
    continued: Collection[int] | None = None,
) -> bytes:
    """The page for a view; `footer` is the PDF's running footer text (empty on screen).

    A long PDF is laid out in parts (`attt.reports.pdf`), each a page of some of the `sections`;
    `continued` marks a part whose details carry on from the part before: the owners (by index)
    whose systems began there are headed as continued, and no anchor is named twice."""
    style, script = _asset("report.css"), _asset("report.js")
    csp = f"default-src 'none'; style-src {style.csp}; script-src {script.csp}; img-src data:"
    template = _ENV.get_template("report.html.j2")
    page = template.render(
        v=view,
        t=view.t,
        style=style.text,
        script=script.text,
        csp=csp,
        severities=SEVERITIES,
        statuses=STATUSES,
        colours=COLOURS,
        footer=footer,
        sections=sections,
        continued=continued,
        large=len(view.systems) >= LARGE_REPORT,
    )
    return page.encode("utf-8")
