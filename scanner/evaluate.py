"""Evaluation: observations + resolved policies -> findings. Pure: no I/O, `now` is passed in."""

from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ValidationError

from attt.scanner.exitcodes import ExitCode
from attt.scanner.models.base import Severity, Text
from attt.scanner.models.finding import Finding, FindingStatus, WaiverNote
from attt.scanner.models.observation import Observation, ProbeKey
from attt.scanner.models.policy import ResolvedPolicy, ResolvedRule, Waiver
from attt.scanner.models.target import Target
from attt.scanner.plugin import Verdict
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
) -> list[Finding]:
    """Judge every applicable rule of each system's policies on each of its hosts.

    Rules of checks that did not run are left out (the report lists the checks that ran); a
    rule whose check ran but saw no endpoint on the host is `not_applicable`; an `error`
    observation gives an `error` finding, never a `pass`.
    """
    index = index_observations(observations)
    findings: list[Finding] = []
    for target in targets:
        for policy in policies.get(target.system.id, ()):
            for rule in policy.rules:
                if rule.check not in checks_run:
                    continue
                judged = _judge_rule(rule, target, index, registry)
                findings.extend(_apply_waivers(f, policy.waivers, now) for f in judged)
    return findings


def _judge_rule(
    rule: ResolvedRule, target: Target, index: ObservationIndex, registry: Registry
) -> list[Finding]:
    if not rule.applies(target.system):
        return [_finding(rule, target, None, "not_applicable", _NOT_THIS_SYSTEM)]
    observations = index.get((rule.check, target.system.id, target.address), ())
    if not observations:
        message = Text(
            vi=f"Kiểm tra {rule.check} không tìm thấy dịch vụ nào để kiểm tra trên máy chủ này.",
            en=f"The {rule.check} check found nothing to probe on this host.",
        )
        return [_finding(rule, target, None, "not_applicable", message)]
    return [_judge_observation(rule, target, obs, registry) for obs in observations]


_NOT_THIS_SYSTEM = Text(
    vi="Quy tắc không áp dụng cho hệ thống này (cấp độ, nhãn hoặc danh sách hệ thống).",
    en="The rule does not apply to this system (level, tags or system list).",
)


def _error(vi: str, en: str, detail: str) -> Text:
    return Text(vi=f"{vi}: {detail}", en=f"{en}: {detail}")


def _judge_observation(rule: ResolvedRule, target: Target, obs: Observation, registry: Registry) -> Finding:
    port = obs.port
    if obs.status == "error":
        return _finding(
            rule, target, port, "error", _error("Chưa đánh giá được", "Not evaluated", obs.error or "")
        )
    found = registry.control(rule.control)
    if found is None:
        missing = _error("Không có kiểm tra nào cung cấp", "No loaded check provides", rule.control)
        return _finding(rule, target, port, "error", missing)
    _, control = found
    model = registry.check(rule.check).data_model
    try:
        # Data read back without its check's model (OpaqueData) is typed here, or refused.
        data = obs.data if isinstance(obs.data, model) else model.model_validate(_fields(obs.data))
    except ValidationError as exc:
        unfit = _error("Quan sát đã lưu không khớp mô hình dữ liệu của kiểm tra",
                       "Stored observation does not fit the check's model", str(exc))  # fmt: skip
        return _finding(rule, target, port, "error", unfit)
    try:
        verdict = control.judge(data, rule.params, target)
    except Exception as exc:  # a buggy control must not pass or crash the run: fail closed
        crashed = _error("Kiểm soát bị lỗi", "Control failed", f"{type(exc).__name__}: {exc}")
        return _finding(rule, target, port, "error", crashed)
    return _finding(rule, target, port, verdict.status, verdict.text, verdict)


def _fields(data: BaseModel | None) -> dict[str, Any]:
    return {} if data is None else data.model_dump()


def _finding(
    rule: ResolvedRule,
    target: Target,
    port: int | None,
    status: FindingStatus,
    message: Text,
    verdict: Verdict | None = None,
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
        references=rule.references,
        remediation=rule.remediation,
    )


def _apply_waivers(finding: Finding, waivers: Sequence[Waiver], now: datetime) -> Finding:
    """A valid waiver turns a failure into `waived`; an expired one is attached but changes nothing."""
    if finding.status != "fail":
        return finding
    matching = [w for w in waivers if _waiver_matches(w, finding)]
    if not matching:
        return finding
    best = max(matching, key=lambda w: w.expires)
    expired = best.expires < now.date()
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
