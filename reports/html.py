"""`report.html`: the auditor's report, one self-contained file in Vietnamese or English.

Python builds a view model of plain, already-cleaned values (`build_view`); the templates only
lay it out. One autoescaping environment renders everything, so a value a target sent can only
ever reach the page as escaped text. The page's own CSS and script are the only markup marked
safe, and a Content-Security-Policy pins them by hash: nothing else may run or load.
"""

import base64
import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from functools import cache, lru_cache
from importlib.resources import files
from typing import ClassVar, Final

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from attt.reports._i18n import strings
from attt.reports._reference import reference_text
from attt.reports._text import as_text
from attt.reports.base import Lang
from attt.scanner.changes import Comparison, compare
from attt.scanner.models.base import Severity
from attt.scanner.models.finding import Finding, FindingStatus
from attt.scanner.models.observation import Observation
from attt.scanner.models.policy import Reference
from attt.scanner.models.report import Counts, Report
from attt.scanner.models.target import Contact
from attt.scanner.text import clean

SEVERITIES: Final = tuple(s.value for s in reversed(Severity))
"""Most severe first, the order a reader wants."""
STATUSES: Final[tuple[FindingStatus, ...]] = ("fail", "error", "waived", "pass", "not_applicable")
_STATUS_RANK: Final[dict[str, int]] = {s: i for i, s in enumerate(STATUSES)}
_SHOWN: Final = frozenset({"fail", "error", "waived"})
"""Statuses listed openly per host; the others are folded away."""

_ENV: Final = Environment(
    loader=PackageLoader("attt.reports"),
    autoescape=select_autoescape(enabled_extensions=("html", "j2"), default_for_string=True, default=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


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


@dataclass(frozen=True, slots=True)
class ReferenceView:
    text: str
    """`reference_text`: standard, clause and confidence, the way every format cites them."""
    confidence: str
    url: str | None


@dataclass(frozen=True, slots=True)
class WaiverView:
    rule_id: str
    system: str
    host: str
    port: int | None
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
    status_label: str
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
    remediation: str
    references: tuple[ReferenceView, ...]
    waiver: WaiverView | None


@dataclass(frozen=True, slots=True)
class HostView:
    address: str
    hostname: str | None
    ip: str | None
    shown: tuple[FindingView, ...]
    folded: tuple[FindingView, ...]
    shared_with: tuple[str, ...] = ()
    """Other systems that register the same host: it was probed once and judged by each."""


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
class ProbeErrorView:
    system: str
    host: str
    port: int | None
    check: str
    error: str


@dataclass(frozen=True, slots=True)
class ObservationView:
    system: str
    host: str
    port: int | None
    check: str
    status: str
    error: str | None
    data: str


@dataclass(frozen=True, slots=True)
class ChangeView:
    rule_id: str
    title: str
    severity: str
    system: str
    host: str
    port: int | None


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


@dataclass(frozen=True, slots=True)
class PolicyView:
    id: str
    version: str
    sha256: str
    sources: tuple[tuple[str, str, str], ...]
    """(path, version, sha256) of every file the policy was resolved from."""


@dataclass(frozen=True, slots=True)
class CoverView:
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


@dataclass(frozen=True, slots=True)
class ReportView:
    lang: Lang
    t: Mapping[str, str]
    cover: CoverView
    overall: CountsView
    chart: tuple[tuple[str, int, int], ...]
    """(severity, failed count, bar width 0..100) for the summary chart."""
    owners: tuple[OwnerView, ...]
    probe_errors: tuple[ProbeErrorView, ...]
    evaluation_errors: tuple[FindingView, ...]
    waivers: tuple[WaiverView, ...]
    changes: ChangesView | None
    score_formula: str
    observations: tuple[ObservationView, ...]
    systems: tuple[tuple[str, str], ...]
    """(id, name) of every system, for the filter."""
    finding_count: int


def build_view(report: Report, lang: Lang, baseline: Comparison | None = None) -> ReportView:
    """Everything the templates show, cleaned and ordered; `baseline` adds the change section."""
    t = strings(lang)
    # A finding of a system the report does not register still shows, under an unknown owner:
    # nothing is dropped from the report for lack of metadata.
    registered = list(report.systems)
    orphans = sorted({f.system for f in report.findings} - {s.id for s in registered})
    owner_of = {s.id: s.owner for s in registered} | dict.fromkeys(orphans, t["owner_unknown"])
    owner_names = sorted(set(owner_of.values()) | set(report.summary.owners))
    owner_index = {name: i for i, name in enumerate(owner_names)}
    findings = [_finding_view(f, owner_index[owner_of[f.system]], lang, t) for f in report.findings]

    by_host: dict[tuple[str, str], list[FindingView]] = defaultdict(list)
    for fv in findings:
        by_host[(fv.system, fv.host)].append(fv)
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
    for system_id, name, owner, level, tags in sorted(entries):
        hosts = tuple(
            replace(
                _host_view(address, *addresses[system_id][address], by_host.get((system_id, address), [])),
                shared_with=tuple(sorted(systems_at[address] - {system_id})),
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
        OwnerView(
            index=owner_index[name],
            name=clean(name),
            counts=_counts_view(
                report.summary.owners.get(name)
                or Counts.of(f for f in report.findings if owner_of[f.system] == name),
                lang,
                t,
            ),
            systems=tuple(systems_of[name]),
            contact=clean(contacts[name]) if name in contacts else None,
        )
        for name in owner_names
    )
    overall = _counts_view(report.summary.overall, lang, t)
    entries_of_probes = {
        (f.check, f.system, f.host, f.port) for f in report.findings if f.kind == "probe_error"
    }
    peak = max(report.summary.overall.by_severity.values(), default=0)
    return ReportView(
        lang=lang,
        t=t,
        cover=_cover_view(report),
        overall=overall,
        chart=tuple(
            (sev, n, 0 if peak == 0 else max(1, round(100 * n / peak)) if n else 0)
            for sev in SEVERITIES
            for n in [report.summary.overall.by_severity.get(sev, 0)]
        ),
        owners=owners,
        probe_errors=tuple(
            ProbeErrorView(
                system=o.system, host=clean(o.host), port=o.port, check=o.check, error=clean(o.error or "")
            )
            for o in sorted(report.observations, key=_observation_key)
            # A failed probe that blocked rules is listed once, with them, among the findings.
            if o.status == "error" and (o.check, o.system, o.host, o.port) not in entries_of_probes
        ),
        evaluation_errors=tuple(sorted((fv for fv in findings if fv.status == "error"), key=_finding_place)),
        waivers=tuple(
            sorted(
                (fv.waiver for fv in findings if fv.waiver is not None),
                key=lambda w: (w.expired, w.system, w.host, w.rule_id, w.port or 0),
            )
        ),
        changes=None if baseline is None else _changes(report, baseline, lang),
        score_formula=clean(report.summary.score_formula.get(lang)),
        observations=tuple(_observation_view(o) for o in sorted(report.observations, key=_observation_key)),
        systems=tuple((s.id, s.name) for o in owners for s in o.systems),
        finding_count=len(findings),
    )


def _contact(contact: Contact) -> str:
    return " · ".join(x for x in (contact.name, contact.email, contact.phone) if x)


def _counts_view(counts: Counts, lang: Lang, t: Mapping[str, str]) -> CountsView:
    if counts.not_probed:
        score = t["score_not_finished"]
    elif counts.score is None:
        score = t["score_none"]
    else:
        score = f"{counts.score * 100:.1f} %"
        if lang == "vi":
            score = score.replace(".", ",")
    return CountsView(
        by_status=counts.by_status,
        by_severity=counts.by_severity,
        score=score,
        score_fraction=counts.score,
    )


def _finding_view(f: Finding, owner_index: int, lang: Lang, t: Mapping[str, str]) -> FindingView:
    evidence = dict(f.evidence)
    rows: list[tuple[str, str]] = [
        (key, as_text(evidence.pop(key))) for key in ("observed", "expected") if key in evidence
    ]
    rows.extend((clean(str(key)), as_text(value)) for key, value in sorted(evidence.items()))
    host = clean(f.host)
    return FindingView(
        rule_id=f.rule_id,
        title=_clean_policy_text(f.title.get(lang)),
        status=f.status,
        status_label=t["status_" + f.status],
        severity=f.severity.value,
        severity_label=t["severity_" + f.severity.value],
        owner_index=owner_index,
        system=f.system,
        host=host,
        port=f.port,
        place=host if f.port is None else f"{host}:{f.port}",
        check=clean(f.check),
        control=f.control,
        policy=f.policy,
        message=clean(f.message.get(lang)),
        evidence=tuple(rows),
        remediation=_clean_policy_text(f.remediation.get(lang)),
        references=tuple(_reference_view(r, lang) for r in f.references),
        waiver=None
        if f.waiver is None
        else WaiverView(
            rule_id=f.rule_id,
            system=f.system,
            host=clean(f.host),
            port=f.port,
            reason=clean(f.waiver.reason),
            approved_by=clean(f.waiver.approved_by),
            decision=None if f.waiver.decision is None else clean(f.waiver.decision),
            expires=f.waiver.expires.isoformat(),
            expired=f.waiver.expired,
        ),
    )


_clean_policy_text = lru_cache(maxsize=4096)(clean)
"""Rule texts repeat on every host a rule judged: clean each distinct one once."""


@lru_cache(maxsize=4096)
def _reference_view(r: Reference, lang: Lang) -> ReferenceView:
    return ReferenceView(
        text=clean(reference_text(r, lang)),
        confidence=r.confidence,
        url=r.url if r.url and r.url.startswith(("https://", "http://")) else None,
    )


def _finding_place(fv: FindingView) -> tuple[str, str, int, str]:
    return (fv.system, fv.host, fv.port or 0, fv.rule_id)


def _finding_order(fv: FindingView) -> tuple[int, int, str, int]:
    return (_STATUS_RANK[fv.status], SEVERITIES.index(fv.severity), fv.rule_id, fv.port or 0)


def _host_view(
    address: str, hostname: str | None, ip: str | None, findings: Iterable[FindingView]
) -> HostView:
    ordered = sorted(findings, key=_finding_order)
    return HostView(
        address=clean(address),
        hostname=None if hostname is None else clean(hostname),
        ip=None if ip is None else clean(ip),
        shown=tuple(fv for fv in ordered if fv.status in _SHOWN),
        folded=tuple(fv for fv in ordered if fv.status not in _SHOWN),
    )


def _observation_key(o: Observation) -> tuple[str, str, str, int]:
    return (o.system, o.host, o.check, o.port or 0)


def _observation_view(o: Observation) -> ObservationView:
    return ObservationView(
        system=o.system,
        host=clean(o.host),
        port=o.port,
        check=clean(o.check),
        status=o.status,
        error=None if o.error is None else clean(o.error),
        data=clean(
            json.dumps(
                o.data.model_dump(mode="json") if o.data else None,
                ensure_ascii=False,
                sort_keys=True,
                indent=1,
            )
        ),
    )


def _time(moment: datetime) -> str:
    return moment.isoformat(sep=" ", timespec="seconds")


def _cover_view(report: Report) -> CoverView:
    run = report.run
    return CoverView(
        province=clean(run.province),
        run_id=clean(run.id),
        started=_time(run.started),
        finished=None if run.finished is None else _time(run.finished),
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
    )


def _changes(report: Report, baseline: Comparison, lang: Lang) -> ChangesView:
    def view(f: Finding) -> ChangeView:
        return ChangeView(
            rule_id=f.rule_id,
            title=clean(f.title.get(lang)),
            severity=f.severity.value,
            system=f.system,
            host=clean(f.host),
            port=f.port,
        )

    reason = clean(baseline.reason.get(lang))
    if baseline.previous is None:
        return ChangesView(None, reason, (), (), (), 0)
    changes = compare(baseline.previous.findings, report.findings)
    return ChangesView(
        previous_run=clean(baseline.previous.run.id),
        reason=reason,
        new=tuple(view(f) for f in changes.new),
        fixed=tuple(view(f) for f in changes.fixed),
        not_rechecked=tuple(view(f) for f in changes.not_rechecked),
        still=len(changes.still),
    )


class HtmlRenderer:
    format: ClassVar[str] = "html"
    filename: ClassVar[str] = "report.html"

    def __init__(self, baseline: Comparison | None = None) -> None:
        self.baseline = baseline
        """The run to compare with (or why there is none), for the change section."""

    def render(self, report: Report, lang: Lang) -> bytes:
        return render_html(build_view(report, lang, self.baseline))


def render_html(view: ReportView) -> bytes:
    """The page for a view."""
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
    )
    return page.encode("utf-8")
