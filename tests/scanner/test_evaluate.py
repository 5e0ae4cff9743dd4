"""Evaluation is pure: table-driven over hand-built observations, policies and `now`."""

from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel

from attt.scanner.evaluate import Inapplicable, evaluate, exit_code
from attt.scanner.exitcodes import ExitCode
from attt.scanner.models.base import Frozen, Severity, Text
from attt.scanner.models.finding import Finding
from attt.scanner.models.observation import Observation
from attt.scanner.models.policy import AppliesTo, ResolvedPolicy, ResolvedRule, Waiver
from attt.scanner.models.target import Target
from attt.scanner.plugin import API_VERSION, Control, Controls, NoSettings, ProbeContext, Verdict
from attt.scanner.registry import RegisteredCheck, Registry
from tests.scanner.plugins import AtMost, CountData, registry, target

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def rule(limit: int = 10, applies_to: AppliesTo | None = None, rule_id: str = "COUNT-SMALL") -> ResolvedRule:
    return ResolvedRule(
        id=rule_id,
        control="count.at_most",
        check="count",
        params=AtMost(limit=limit),
        severity=Severity.HIGH,
        applies_to=applies_to or AppliesTo(),
        title=Text(vi="Số nhỏ", en="Count is small"),
        remediation=Text(vi="Giảm số", en="Lower it"),
        references=(),
        policy="test",
    )


def policy(*rules: ResolvedRule, waivers: tuple[Waiver, ...] = ()) -> ResolvedPolicy:
    return ResolvedPolicy(
        id="test",
        title="t",
        version="1",
        sha256="0" * 64,
        sources=(),
        rules=rules,
        waivers=waivers,
        settings={},
    )


def observe(address: str, count: int | None, system: str = "sys-a") -> Observation:
    t = target(address, system)
    if count is None:
        return Observation.failed("count", t, "connection refused", 1)
    return Observation.ok("count", t, CountData(count=count), 1)


def judge(
    observations: list[Observation],
    policies: list[ResolvedPolicy],
    targets: list[Target] | None = None,
    checks: tuple[str, ...] = ("count",),
) -> list[Finding]:
    targets = targets or [target("127.0.0.5")]
    return evaluate(targets, observations, {t.system.id: policies for t in targets}, registry(), checks, NOW)


def test_pass_and_fail_carry_observed_and_expected() -> None:
    [passed] = judge([observe("127.0.0.5", 3)], [policy(rule(limit=10))])
    [failed] = judge([observe("127.0.0.5", 30)], [policy(rule(limit=10))])
    assert (passed.status, failed.status) == ("pass", "fail")
    assert failed.evidence == {"observed": 30, "expected": 10}
    assert failed.port == 1 and failed.severity is Severity.HIGH


def test_error_observation_gives_error_finding_never_pass() -> None:
    [finding] = judge([observe("127.0.0.5", None)], [policy(rule())])
    assert finding.status == "error"
    assert "connection refused" in finding.message.en
    assert finding.message.vi.startswith("Chưa đánh giá được")


def test_missing_observation_is_not_a_pass() -> None:
    [finding] = judge([], [policy(rule())])
    assert finding.status == "not_applicable"


def test_rules_of_checks_that_did_not_run_are_left_out() -> None:
    assert judge([observe("127.0.0.5", 3)], [policy(rule())], checks=("echo",)) == []


@pytest.mark.parametrize(
    ("applies_to", "status"),
    [
        (AppliesTo(levels=(3,)), "pass"),
        (AppliesTo(levels=(4, 5)), "not_applicable"),
        (AppliesTo(tags=("internet-facing",)), "not_applicable"),
        (AppliesTo(systems=("sys-a",)), "pass"),
        (AppliesTo(systems=("other",)), "not_applicable"),
    ],
)
def test_applies_to(applies_to: AppliesTo, status: str) -> None:
    [finding] = judge([observe("127.0.0.5", 3)], [policy(rule(applies_to=applies_to))])
    assert finding.status == status


def test_a_rule_that_does_not_apply_names_each_system_and_host_made_ahead_or_not() -> None:
    """Such findings are copies of one made per rule and level: each still names its own system
    and host, and the findings made ahead (the scan's judge) are those `evaluate` gives."""
    inapplicable_rule = rule(applies_to=AppliesTo(levels=(4, 5)))
    targets = [
        target("127.0.0.5", "sys-a"),
        target("127.0.0.6", "sys-b"),
        target("127.0.0.7", "sys-c", level=2),
    ]
    policies = {t.system.id: [policy(inapplicable_rule)] for t in targets}
    fresh = evaluate(targets, [], policies, registry(), ("count",), NOW)
    assert [(f.system, f.host, f.status) for f in fresh] == [
        ("sys-a", "127.0.0.5", "not_applicable"),
        ("sys-b", "127.0.0.6", "not_applicable"),
        ("sys-c", "127.0.0.7", "not_applicable"),
    ]
    ahead = Inapplicable(policies, ("count",))
    (level_3, at_3), (level_2, at_2) = ahead.made(targets)  # alike: a rule's findings on one level
    assert (level_3, level_2) == (at_3[0], at_2[0]) and len(at_3) == 2 and len(at_2) == 1
    again = evaluate(targets, [], policies, registry(), ("count",), NOW, inapplicable=ahead)
    assert [*at_3, *at_2] == fresh == again
    assert all(a is b for a, b in zip([*at_3, *at_2], again, strict=True))  # not made twice
    assert Inapplicable(policies, ("echo",)).made(targets) == []


def waiver(expires: date, host: str | None = None) -> Waiver:
    return Waiver(
        rule="COUNT-SMALL",
        system="sys-a",
        host=host,
        reason="legacy job",
        approved_by="Giám đốc Trung tâm CNTT",
        expires=expires,
    )


def test_valid_waiver_marks_failure_waived_and_keeps_it() -> None:
    [finding] = judge([observe("127.0.0.5", 30)], [policy(rule(), waivers=(waiver(date(2027, 3, 31)),))])
    assert finding.status == "waived"
    assert finding.waiver is not None and not finding.waiver.expired
    assert finding.evidence["observed"] == 30  # the waived failure keeps its evidence


def test_expired_waiver_no_longer_applies_and_is_reported() -> None:
    [finding] = judge([observe("127.0.0.5", 30)], [policy(rule(), waivers=(waiver(date(2026, 11, 26)),))])
    assert finding.status == "fail"
    assert finding.waiver is not None and finding.waiver.expired


@pytest.mark.parametrize(
    ("now", "expired"),
    [
        (datetime(2027, 3, 31, 16, 59, tzinfo=UTC), False),  # 23:59 on 31 March in Hà Tĩnh
        (datetime(2027, 3, 31, 17, 0, tzinfo=UTC), True),  # 00:00 on 1 April there, still 31 March in UTC
        (datetime(2027, 3, 31, 19, 0, tzinfo=UTC), True),  # a nightly 02:00 scan on 1 April
    ],
)
def test_a_waiver_expires_at_the_end_of_its_day_in_vietnam_not_in_utc(now: datetime, expired: bool) -> None:
    # The approving decision's date is a Vietnamese date: a scan at 02:00 on 1 April (19:00 UTC
    # on 31 March) no longer accepts a failure whose waiver ended on 31 March.
    pol = policy(rule(), waivers=(waiver(date(2027, 3, 31)),))
    targets = [target("127.0.0.5")]
    [finding] = evaluate(targets, [observe("127.0.0.5", 30)], {"sys-a": [pol]}, registry(), ("count",), now)
    assert (finding.status, finding.waiver and finding.waiver.expired) == (
        "fail" if expired else "waived",
        expired,
    )


def test_waiver_for_another_host_does_not_apply() -> None:
    pol = policy(rule(), waivers=(waiver(date(2027, 1, 1), host="127.0.0.9"),))
    [finding] = judge([observe("127.0.0.5", 30)], [pol])
    assert finding.status == "fail" and finding.waiver is None


def test_waiver_never_hides_an_error() -> None:
    [finding] = judge([observe("127.0.0.5", None)], [policy(rule(), waivers=(waiver(date(2027, 1, 1)),))])
    assert finding.status == "error"


def test_evaluation_is_deterministic() -> None:
    targets = [target("127.0.0.5"), target("127.0.0.7", "sys-b")]
    obs = [observe("127.0.0.5", 3), observe("127.0.0.7", 30, "sys-b")]
    assert judge(obs, [policy(rule())], targets) == judge(list(reversed(obs)), [policy(rule())], targets)


def finding(status: str, severity: Severity = Severity.HIGH) -> Finding:
    text = Text(vi="t", en="t")
    return Finding(rule_id="R1", control="count.at_most", check="count", policy="p", system="s", host="h",
                   status=status, severity=severity, title=text, message=text, evidence={}, references=(),
                   remediation=text)  # fmt: skip


@pytest.mark.parametrize(
    ("statuses", "fail_on", "complete", "code"),
    [
        (["pass", "waived"], Severity.LOW, True, ExitCode.OK),
        (["pass", "fail"], Severity.LOW, True, ExitCode.VIOLATION),
        (["pass", "fail"], Severity.CRITICAL, True, ExitCode.OK),
        (["pass", "fail"], None, True, ExitCode.OK),
        (["pass", "error"], Severity.LOW, True, ExitCode.INCOMPLETE),
        (["fail", "error"], Severity.LOW, True, ExitCode.VIOLATION),
        (["pass"], Severity.LOW, False, ExitCode.INCOMPLETE),
        (["not_applicable"], Severity.LOW, True, ExitCode.INCOMPLETE),
        ([], Severity.LOW, True, ExitCode.INCOMPLETE),
    ],
)
def test_exit_code(statuses, fail_on, complete, code) -> None:
    assert exit_code([finding(s) for s in statuses], fail_on, complete) is code


class _StepsData(Frozen):
    count: int
    incomplete: tuple[str, ...] = ()


_PARTIAL = Controls("steps")


@_PARTIAL.control("steps.claims", AtMost, needs=("detail",), partial=True)
def _claims(data: _StepsData, params: AtMost, target: Target) -> Verdict:
    """A partial judge with a bug: it passes or fails on the count alone, whatever `detail` saw."""
    if data.count <= params.limit:
        return Verdict.passed("small", data.count, params.limit)
    return Verdict.failed("large", data.count, params.limit)


class _StepsCheck:
    name: ClassVar[str] = "steps"
    api_version: ClassVar[int] = API_VERSION
    data_model: ClassVar[type[BaseModel]] = _StepsData
    settings_model: ClassVar[type[BaseModel]] = NoSettings
    after: ClassVar[tuple[str, ...]] = ()
    controls: ClassVar[Mapping[str, Control[Any, Any]]] = _PARTIAL

    def probe(self, target: Target, ctx: ProbeContext[Any]) -> Iterable[Observation]:
        return ()


@pytest.mark.parametrize(("count", "status"), [(1, "error"), (99, "fail")])
def test_a_partial_judge_missing_a_step_may_fail_on_what_was_seen_but_never_pass(
    count: int, status: str
) -> None:
    host = target("127.0.0.1")
    claims = rule(limit=10).model_copy(update={"control": "steps.claims", "check": "steps"})
    seen = Observation.ok("steps", host, _StepsData(count=count, incomplete=("detail",)), 1)
    checks = Registry.of({"steps": RegisteredCheck(_StepsCheck(), "tests")})
    [finding] = evaluate([host], [seen], {"sys-a": (policy(claims),)}, checks, ["steps"], NOW)
    assert finding.status == status
    if status == "error":
        assert "detail" in finding.message.en
