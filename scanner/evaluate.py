"""Evaluation: observations + resolved policies -> findings. Pure: no I/O, `now` is passed in."""

from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ValidationError

from attt.scanner.exitcodes import ExitCode
from attt.scanner.models.base import Severity, Text, vietnam_day
from attt.scanner.models.finding import Finding, FindingKind, FindingStatus, WaiverNote
from attt.scanner.models.observation import Observation, ProbeKey, probe_check
from attt.scanner.models.policy import Reference, ResolvedPolicy, ResolvedRule, Waiver
from attt.scanner.models.target import SystemInfo, Target
from attt.scanner.plugin import Verdict, incomplete_steps, step_error
from attt.scanner.registry import Registry

ObservationIndex = Mapping[ProbeKey, Sequence[Observation]]
"""(check, system, host) -> observations."""


def index_observations(observations: Iterable[Observation]) -> ObservationIndex:
    index: dict[ProbeKey, list[Observation]] = defaultdict(list)
    for obs in observations:
        index[(obs.check, obs.system, obs.host)].append(obs)
    return index


def evaluate(
    targets: Sequence[Target],
    observations: Iterable[Observation],
    policies: Mapping[str, Sequence[ResolvedPolicy]],
    registry: Registry,
    checks_run: Collection[str],
    now: datetime,
    probed: Collection[ProbeKey] | None = None,
    outside: Collection[str] = frozenset(),
    reaching: Mapping[str, Collection[str]] | None = None,
    inapplicable: "Inapplicable | None" = None,
    resettled: Mapping[tuple[str, str], Sequence[str]] | None = None,
) -> list[Finding]:
    """Judge every applicable rule of each system's policies on each of its hosts.

    Rules of checks that did not run are left out (the report lists the checks that ran). A
    rule whose check ran but saw no endpoint on the host is `not_applicable`. A probe that
    failed on an endpoint, or never ran (`probed`, the probes that ended, leaves it out; None
    means every planned probe ended), is one `error` entry per endpoint and check listing the
    rules it blocked: never a `pass`, never `not_applicable`. A rule whose control needs a
    probe step that did not complete is `error` naming the step, unless its judge takes partial
    facts (`Control.partial`) and fails on what was observed.

    `outside` names the outside vantages (zones with `vantage: outside`). A rule with `vantage:
    internet` is judged on what was seen from an outside vantage when the host was seen from one,
    else on what was seen from inside, and the finding says so; any other rule is judged on what
    was seen from inside whenever the host was seen from there (`_judged_on`).

    `reaching` is the run's plan of outside probes: zone -> the outside vantages its hosts were
    to be probed from (the runner's `ScanPlan.vantages`; none with the local engine). In a run
    that stopped (`probed` given), a rule asking for the Internet on a host of such a zone waits
    for every planned outside probe of its check: the run meant to see the host from outside,
    so what was seen from inside does not stand in for a probe that never ran.

    `inapplicable` holds the findings of rules on systems they do not apply to, made ahead (the
    scan's judge makes them while the first probes run); without it they are made here.

    `resettled`: (system, check) -> the settings of the check that the judging policies set
    otherwise than the policies the observations were made under (a stored run judged again):
    each of that check's rules on that system is `error`, saying which settings differ.
    """
    index = index_observations(observations)
    findings: list[Finding] = []
    cite = _Citations()
    inapplicable = inapplicable or Inapplicable(policies, checks_run)
    for target in targets:
        # (check, port, vantage) -> the rules a failed or missing probe kept from a verdict.
        blocked: dict[tuple[str, int | None, str | None], _Blocked] = {}
        planned = (reaching or {}).get(target.zone, ()) if target.zone is not None else ()
        for policy, rule, applies in inapplicable.rules(target.system):
            if not applies:
                findings.append(inapplicable.of(rule, target))
                continue
            changed = (resettled or {}).get((target.system.id, rule.check))
            if changed:
                findings.append(_finding(rule, target, None, "error", _resettled(rule.check, changed), cite))
                continue
            key = (rule.check, target.system.id, target.address)
            if probed is not None and not _ended(rule, key, probed, outside, planned):
                slot = blocked.setdefault((rule.check, None, None), _Blocked("not_probed", None))
                slot.rules.append(rule)
                continue
            seen, inside_instead = _judged_on(rule, index.get(key, ()), outside)
            if not seen:
                findings.append(
                    _finding(rule, target, None, "not_applicable", _nothing_to_probe(rule.check), cite)
                )
            for obs in seen:
                if obs.status == "error":
                    where = (rule.check, obs.port, obs.zone)
                    slot = blocked.setdefault(where, _Blocked("probe_error", obs.error, obs.zone))
                    slot.rules.append(rule)
                else:
                    judged = _judge_observation(rule, target, obs, registry, cite)
                    if inside_instead:
                        judged = _from_inside(judged)
                    findings.append(_apply_waivers(judged, policy.waivers, now))
        findings.extend(b.finding(check, target, port) for (check, port, _), b in blocked.items())
    return findings


class Inapplicable:
    """The findings of rules on the systems they do not apply to (level, tags, system list).

    They rest on the inventory and the policies alone, never on a probe: the scan's judge makes
    them while the first probes run (`made`), and `evaluate` takes them from here. More than half of
    a province's findings are of this kind (12,335 of 21,999 for the bench's 1,000 hosts), and all
    those of a rule on the systems of one level are alike but for system and host: each is a copy
    of one made per rule and level."""

    def __init__(self, policies: Mapping[str, Sequence[ResolvedPolicy]], checks_run: Collection[str]) -> None:
        self._policies = policies
        self._checks = checks_run
        self._cite = _Citations()
        self._alike: dict[tuple[int, int], Finding] = {}  # (rule, level) -> the first one made
        self._made: dict[tuple[int, str, str], Finding] = {}  # (rule, system, host) -> its finding
        self._rules: dict[str, list[tuple[ResolvedPolicy, ResolvedRule, bool]]] = {}

    def rules(self, system: SystemInfo) -> list[tuple[ResolvedPolicy, ResolvedRule, bool]]:
        """The rules of `system`'s policies whose check ran, in order, each with whether it applies
        to the system: worked out once per system, for `made` and `evaluate` alike."""
        known = self._rules.get(system.id)
        if known is None:
            known = self._rules[system.id] = [
                (policy, rule, rule.applies(system))
                for policy in self._policies.get(system.id, ())
                for rule in policy.rules
                if rule.check in self._checks
            ]
        return known

    def made(self, targets: Iterable[Target]) -> list[tuple[Finding, list[Finding]]]:
        """Make every one of `targets`' findings of this kind; each with those it is alike, as
        (the first made of them, all of them)."""
        alike: dict[tuple[int, int], list[Finding]] = {}
        for target in targets:
            for _, rule, applies in self.rules(target.system):
                if not applies:
                    alike.setdefault((id(rule), target.system.level), []).append(self.of(rule, target))
        return [(self._alike[key], findings) for key, findings in alike.items()]

    def of(self, rule: ResolvedRule, target: Target) -> Finding:
        # The rules live in the policies as long as this does: their identity is their key.
        key = (id(rule), *target.key)
        found = self._made.get(key)
        if found is not None:
            return found
        alike = self._alike.get((id(rule), target.system.level))
        if alike is None:
            found = _finding(rule, target, None, "not_applicable", _NOT_THIS_SYSTEM, self._cite)
            self._alike[(id(rule), target.system.level)] = found
        else:
            found = alike.placed(target.system.id, target.address)
        self._made[key] = found
        return found


def _ended(
    rule: ResolvedRule,
    key: ProbeKey,
    probed: Collection[ProbeKey],
    outside: Collection[str],
    planned: Collection[str],
) -> bool:
    """Whether the probes the rule is to be judged on ended. Any rule may be judged on the host's
    own probe (the bare key); a rule asking for the Internet also on a probe from an outside
    vantage, and only on those when the plan probed the host from outside vantages (`planned`):
    then each of them must have ended, or the verdict would stand on a view the run meant to
    replace (judged from inside) or on one vantage's view where another's was planned too."""
    check, system, host = key
    if rule.vantage == "internet" and planned:
        return all((probe_check(check, v), system, host) in probed for v in planned)
    if key in probed:
        return True
    return rule.vantage == "internet" and any(
        (probe_check(check, v), system, host) in probed for v in outside
    )


def _judged_on(
    rule: ResolvedRule, seen: Sequence[Observation], outside: Collection[str]
) -> tuple[Sequence[Observation], bool]:
    """The observations a rule is judged on, and whether a rule asking for the Internet is judged
    from inside for want of an outside observation. Never the reverse: a rule without a vantage
    judges what was seen from outside only when the host was not seen from inside at all (a local
    scan run from the Internet side), since a firewall hides from outside what is open inside."""
    out = [o for o in seen if o.zone in outside]
    inside = [o for o in seen if o.zone not in outside]
    if rule.vantage == "internet":
        return (out, False) if out else (inside, bool(inside))
    return (inside, False) if inside else (out, False)


def _from_inside(finding: Finding) -> Finding:
    where_vi = f"vùng {finding.vantage}" if finding.vantage else "nơi chạy attt"
    where_en = f"zone {finding.vantage}" if finding.vantage else "where attt ran"
    message = Text(
        vi=f"{finding.message.vi} (Đánh giá từ bên trong, {where_vi}: lượt quét không có quan sát"
        " nào từ Internet đối với máy chủ này)",
        en=f"{finding.message.en} (Judged from inside, {where_en}: this run did not see the host"
        " from the Internet)",
    )
    return finding.model_copy(update={"message": message, "judged_from_inside": True})


def _resettled(check: str, settings: Sequence[str]) -> Text:
    listed = ", ".join(settings)
    return Text(
        vi=f"Chưa đánh giá được: chính sách đánh giá lại đặt {listed} của kiểm tra {check} khác với lúc"
        " thăm dò, nên các quan sát đã lưu không phải là sự thật theo chính sách này; hãy quét lại theo"
        " chính sách này (attt scan -p ...)",
        en=f"Not evaluated: the policy judging the run again sets the {check} check's {listed} otherwise"
        " than the probe ran with, so the stored observations are not facts under it; scan again with"
        " this policy (attt scan -p ...)",
    )


def _nothing_to_probe(check: str) -> Text:
    return Text(
        vi=f"Kiểm tra {check} không tìm thấy dịch vụ nào để kiểm tra trên máy chủ này.",
        en=f"The {check} check found nothing to probe on this host.",
    )


_NOT_THIS_SYSTEM = Text(
    vi="Quy tắc không áp dụng cho hệ thống này (cấp độ, nhãn hoặc danh sách hệ thống).",
    en="The rule does not apply to this system (level, tags or system list).",
)


def _error(vi: str, en: str, detail: str) -> Text:
    # The detail is a library's or the tool's own words: the Vietnamese sentence labels it as such.
    return Text(vi=f"{vi} (công cụ báo: {detail})", en=f"{en}: {detail}")


_CAUSE_IDS: dict[str, str] = {"not_probed": "NOT-PROBED", "probe_error": "PROBE-ERROR"}
"""The rule id of an entry standing for blocked rules is `<CHECK>-<cause>` (`TLS-PROBE-ERROR`): one
id per check and cause, so SARIF's rule list and a diff keep them apart."""


@dataclass
class _Blocked:
    """The rules one failed (or never run) probe of one endpoint kept from a verdict."""

    kind: FindingKind
    error: str | None
    vantage: str | None = None
    rules: list[ResolvedRule] = field(default_factory=list)

    def finding(self, check: str, target: Target, port: int | None) -> Finding:
        ids = list(dict.fromkeys(r.id for r in self.rules))
        listed = f"{', '.join(ids)} ({len(ids)})"
        if self.kind == "not_probed":
            title = Text(
                vi=f"Chưa quét: lượt quét dừng trước khi kiểm tra {check} chạy trên máy chủ này",
                en=f"Not probed: the run stopped before the {check} check ran on this host",
            )
            message = Text(
                vi=f"Kiểm tra {check} chưa chạy; các quy tắc chưa được đánh giá: {listed}",
                en=f"The {check} check never ran; rules not evaluated: {listed}",
            )
            remediation = Text(
                vi="Chạy tiếp lượt quét (attt scan --resume RUN) hoặc quét lại.",
                en="Finish the run (attt scan --resume RUN) or scan again.",
            )
        else:
            title = Text(
                vi=f"Kiểm tra {check} không quan sát được điểm dịch vụ này",
                en=f"The {check} check could not observe this endpoint",
            )
            message = Text(
                vi="Chưa đánh giá được, lần thăm dò không hoàn tất"
                f" (công cụ báo: {self.error or 'không rõ'}); các quy tắc bị chặn: {listed}",
                en=f"Not evaluated: {self.error or 'unknown error'}; rules it blocked: {listed}",
            )
            remediation = Text(
                vi="Kiểm tra máy chủ còn hoạt động và cho phép kết nối từ nơi quét, rồi quét lại.",
                en="Check that the host is in service and reachable from the scanner, then scan again.",
            )
        first = self.rules[0]
        return Finding(
            rule_id=f"{check.upper().replace('_', '-')}-{_CAUSE_IDS[self.kind]}",
            control=f"{check}.probe",
            check=check,
            policy=first.policy,
            system=target.system.id,
            host=target.address,
            port=port,
            status="error",
            severity=max((r.severity for r in self.rules), key=lambda s: s.rank),
            title=title,
            message=message,
            evidence={"observed": self.error, "expected": "a completed probe"},
            references=(),
            remediation=remediation,
            kind=self.kind,
            blocked=tuple(ids),
            vantage=self.vantage,
        )


def _judge_observation(
    rule: ResolvedRule, target: Target, obs: Observation, registry: Registry, cite: "_Citations"
) -> Finding:
    port, vantage = obs.port, obs.zone
    found = registry.control(rule.control)
    if found is None:
        missing = _error("Không có kiểm tra nào cung cấp", "No loaded check provides", rule.control)
        return _finding(rule, target, port, "error", missing, cite, vantage=vantage)
    _, control = found
    model = registry.check(rule.check).data_model
    try:
        # Data read back without its check's model (OpaqueData) is typed here, or refused.
        data = obs.data if isinstance(obs.data, model) else model.model_validate(_fields(obs.data))
    except ValidationError as exc:
        unfit = _error("Quan sát đã lưu không khớp mô hình dữ liệu của kiểm tra",
                       "Stored observation does not fit the check's model", str(exc))  # fmt: skip
        return _finding(rule, target, port, "error", unfit, cite, vantage=vantage)
    try:
        unfinished = [s for s in control.steps_needed(rule.params, target) if s in incomplete_steps(data)]
        if unfinished and not control.partial:
            return _finding(
                rule, target, port, "error", _steps_incomplete(data, unfinished), cite, vantage=vantage
            )
        verdict = control.judge(data, rule.params, target)
        if unfinished and verdict.status not in ("fail", "error"):
            # Held by the engine, not left to each partial judge: facts were missing, so only a
            # failure on what was seen stands.
            return _finding(
                rule, target, port, "error", _steps_incomplete(data, unfinished), cite, vantage=vantage
            )
    except Exception as exc:  # a buggy control must not pass or crash the run: fail closed
        crashed = _error("Kiểm soát bị lỗi", "Control failed", f"{type(exc).__name__}: {exc}")
        return _finding(rule, target, port, "error", crashed, cite, vantage=vantage)
    return _finding(rule, target, port, verdict.status, verdict.text, cite, verdict, vantage=vantage)


def _steps_incomplete(data: BaseModel, steps: Sequence[str]) -> Text:
    """Which needed steps did not complete, and why when the data says."""
    why = {s: step_error(data, s) for s in steps}
    listed = "; ".join(f"{s} ({why[s]})" if why[s] else s for s in steps)
    listed_vi = "; ".join(f"{s} (công cụ báo: {why[s]})" if why[s] else s for s in steps)
    return Text(
        vi=f"Chưa đánh giá được: bước thăm dò cần thiết không hoàn tất: {listed_vi}",
        en=f"Not evaluated: a probe step this rule needs did not complete: {listed}",
    )


def _fields(data: BaseModel | None) -> dict[str, Any]:
    return {} if data is None else data.model_dump()


class _Citations(dict[tuple[int, int], tuple[Reference, ...]]):
    """A rule's references cited for a level, worked out once per rule and level: every finding
    of the rule on a system of that level shares them (`store._compact` keeps one copy)."""

    def of(self, rule: ResolvedRule, level: int) -> tuple[Reference, ...]:
        key = (id(rule), level)  # the rules live in the policies for the whole evaluation
        cited = self.get(key)
        if cited is None:
            cited = self[key] = tuple(r for r in rule.references if r.cited_for(level))
        return cited


def _finding(
    rule: ResolvedRule,
    target: Target,
    port: int | None,
    status: FindingStatus,
    message: Text,
    cite: _Citations,
    verdict: Verdict | None = None,
    vantage: str | None = None,
) -> Finding:
    evidence: dict[str, Any] = {}
    if verdict is not None and (verdict.observed is not None or verdict.expected is not None):
        evidence = {"observed": verdict.observed, "expected": verdict.expected}
    return Finding(
        rule_id=rule.id,
        control=rule.control,
        check=rule.check,
        policy=rule.policy,
        system=target.system.id,
        host=target.address,
        port=port,
        status=status,
        severity=rule.severity,
        title=rule.title,
        message=message,
        evidence=evidence,
        references=cite.of(rule, target.system.level),
        remediation=rule.remediation,
        vantage=vantage,
    )


def _apply_waivers(finding: Finding, waivers: Sequence[Waiver], now: datetime) -> Finding:
    """A valid waiver turns a failure into `waived`; an expired one is attached but changes nothing."""
    if finding.status != "fail":
        return finding
    matching = [w for w in waivers if _waiver_matches(w, finding)]
    if not matching:
        return finding
    best = max(matching, key=lambda w: w.expires)
    expired = best.expires < vietnam_day(now)
    note = WaiverNote(
        reason=best.reason,
        approved_by=best.approved_by,
        decision=best.decision,
        expires=best.expires,
        expired=expired,
    )
    return finding.model_copy(update={"status": "fail" if expired else "waived", "waiver": note})


def _waiver_matches(waiver: Waiver, finding: Finding) -> bool:
    return (
        waiver.rule == finding.rule_id
        and waiver.system == finding.system
        and waiver.host in (None, finding.host)
        and waiver.port in (None, finding.port)
    )


def exit_code(findings: Iterable[Finding], fail_on: Severity | None, complete: bool) -> ExitCode:
    """The exit code of a scan: violations first, then anything that could not be evaluated."""
    items = list(findings)
    if fail_on is not None and any(f.status == "fail" and f.severity.rank >= fail_on.rank for f in items):
        return ExitCode.VIOLATION
    if not complete or any(f.status == "error" for f in items):
        return ExitCode.INCOMPLETE
    if not any(f.status in ("pass", "fail", "waived") for f in items):
        return ExitCode.INCOMPLETE  # nothing was judged: that is not compliance
    return ExitCode.OK
