"""Vantage-aware evaluation: a rule asking for the Internet is judged on what an outside vantage
saw, and says so when it had to be judged from inside; other rules keep to the inside view.
Pure: observations are built here, nothing is probed."""

from collections.abc import Collection, Mapping
from datetime import UTC, datetime
from pathlib import Path

from attt.scanner.evaluate import evaluate
from attt.scanner.models.base import Severity, Text
from attt.scanner.models.finding import Finding
from attt.scanner.models.observation import Observation, ProbeKey, probe_check
from attt.scanner.models.policy import AppliesTo, ResolvedPolicy, ResolvedRule, Vantage
from attt.scanner.models.target import Target
from attt.scanner.policy import load_policy
from attt.scanner.registry import Registry
from tests.scanner.plugins import AtMost, CountData, registry, target

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
OUTSIDE = frozenset({"internet"})
HOST = target("127.0.0.5").model_copy(update={"zone": "dmz"})


def rule(vantage: Vantage | None, rule_id: str) -> ResolvedRule:
    return ResolvedRule(
        id=rule_id,
        control="count.at_most",
        check="count",
        params=AtMost(limit=10),
        severity=Severity.HIGH,
        applies_to=AppliesTo(),
        title=Text(vi="Số nhỏ", en="Count is small"),
        remediation=Text(vi="Giảm số", en="Lower it"),
        references=(),
        policy="test",
        vantage=vantage,
    )


EXPOSED = rule("internet", "COUNT-EXPOSED")
"""Asks to be judged from the Internet."""
PLAIN = rule(None, "COUNT-SMALL")


def seen(count: int | None, vantage: str | None, target: Target = HOST) -> Observation:
    obs = (
        Observation.failed("count", target, "connection timed out", 1)
        if count is None
        else Observation.ok("count", target, CountData(count=count), 1)
    )
    return obs.model_copy(update={"zone": vantage})


def judge(
    observations: list[Observation],
    *rules: ResolvedRule,
    probed: Collection[ProbeKey] | None = None,
    outside: Collection[str] = OUTSIDE,
    reaching: Mapping[str, Collection[str]] | None = None,
) -> dict[str, Finding]:
    policy = ResolvedPolicy(
        id="test", title="t", version="1", sha256="0" * 64, sources=(), rules=rules, waivers=(), settings={}
    )
    findings = evaluate(
        [HOST],
        observations,
        {HOST.system.id: [policy]},
        registry(),
        ("count",),
        NOW,
        probed,
        outside,
        reaching,
    )
    by_id = {f.rule_id: f for f in findings}
    assert len(by_id) == len(findings), "one finding per rule: each is judged from one side"
    return by_id


def test_a_rule_asking_for_the_internet_is_judged_on_what_the_outside_saw() -> None:
    # Inside, 30 things answer; from the Internet only 3 do (the firewall does its job).
    found = judge([seen(30, "dmz"), seen(3, "internet")], EXPOSED, PLAIN)
    exposed, plain = found["COUNT-EXPOSED"], found["COUNT-SMALL"]
    assert (exposed.status, exposed.vantage, exposed.judged_from_inside) == ("pass", "internet", False)
    assert exposed.evidence["observed"] == 3
    # Never the reverse: the rule without a vantage keeps to the inside view, which fails.
    assert (plain.status, plain.vantage, plain.evidence["observed"]) == ("fail", "dmz", 30)


def test_without_an_outside_observation_the_finding_says_it_was_judged_from_inside() -> None:
    [finding] = judge([seen(30, "dmz")], EXPOSED).values()
    assert (finding.status, finding.vantage, finding.judged_from_inside) == ("fail", "dmz", True)
    assert "Judged from inside, zone dmz" in finding.message.en
    assert "Đánh giá từ bên trong, vùng dmz" in finding.message.vi
    # A run without zones (vantage None): judged from where attt ran, and said so too.
    [plain_run] = judge([seen(3, None)], EXPOSED, outside=()).values()
    assert (plain_run.status, plain_run.judged_from_inside) == ("pass", True)
    assert "where attt ran" in plain_run.message.en and "nơi chạy attt" in plain_run.message.vi


def test_a_scan_run_from_the_internet_side_judges_every_rule_on_what_it_saw() -> None:
    # `attt scan --vantage internet`: the host was seen from outside only.
    found = judge([seen(3, "internet")], EXPOSED, PLAIN)
    assert {f.vantage for f in found.values()} == {"internet"}
    assert [f.judged_from_inside for f in found.values()] == [False, False]
    assert {f.status for f in found.values()} == {"pass"}


def test_an_outside_probe_that_failed_is_error_for_the_internet_rule_never_a_pass_from_inside() -> None:
    found = judge([seen(3, "dmz"), seen(None, "internet")], EXPOSED, PLAIN)
    blocked = found["COUNT-PROBE-ERROR"]
    assert (blocked.status, blocked.kind, blocked.blocked, blocked.vantage) == (
        "error",
        "probe_error",
        ("COUNT-EXPOSED",),
        "internet",
    )
    assert "connection timed out" in blocked.message.en
    assert found["COUNT-SMALL"].status == "pass"  # judged on the inside probe, which worked


def test_an_inside_probe_that_failed_does_not_block_the_outside_judgement() -> None:
    found = judge([seen(None, "dmz"), seen(3, "internet")], EXPOSED, PLAIN)
    assert found["COUNT-EXPOSED"].status == "pass"
    assert (found["COUNT-PROBE-ERROR"].blocked, found["COUNT-PROBE-ERROR"].vantage) == (
        ("COUNT-SMALL",),
        "dmz",
    )


def test_a_stopped_run_leaves_unjudged_what_its_ended_probes_cannot_speak_for() -> None:
    bare: ProbeKey = ("count", *HOST.key)
    outside: ProbeKey = (probe_check("count", "internet"), *HOST.key)
    # Only the outside probe ended: the rule asking for the Internet is judged on it; the
    # other waits for the inside probe, never judged on what the firewall let through.
    found = judge([seen(3, "internet")], EXPOSED, PLAIN, probed={outside})
    assert found["COUNT-EXPOSED"].status == "pass"
    assert (found["COUNT-NOT-PROBED"].kind, found["COUNT-NOT-PROBED"].blocked) == (
        "not_probed",
        ("COUNT-SMALL",),
    )
    # Nothing ended: neither is judged.
    [never] = judge([], EXPOSED, PLAIN, probed=set()).values()
    assert (never.status, never.blocked) == ("error", ("COUNT-EXPOSED", "COUNT-SMALL"))
    # Only the inside probe ended, and no outside probe of the host was planned (the local
    # engine): the Internet rule is judged from inside, and says so.
    found = judge([seen(3, "dmz")], EXPOSED, probed={bare})
    assert found["COUNT-EXPOSED"].judged_from_inside


BARE: ProbeKey = ("count", *HOST.key)
FROM_INTERNET: ProbeKey = (probe_check("count", "internet"), *HOST.key)
FROM_ISP: ProbeKey = (probe_check("count", "isp"), *HOST.key)
PLANNED = {"dmz": ("internet",)}
"""The celery engine's plan: the Internet vantage reaches the DMZ, so the host is probed from there."""


def test_a_planned_outside_probe_that_never_ran_leaves_the_internet_rule_unjudged() -> None:
    # The run stopped after the inside probe; the outside one was planned but never ran.
    found = judge([seen(3, "dmz")], EXPOSED, PLAIN, probed={BARE}, reaching=PLANNED)
    blocked = found["COUNT-NOT-PROBED"]
    assert (blocked.status, blocked.kind, blocked.blocked) == ("error", "not_probed", ("COUNT-EXPOSED",))
    assert "COUNT-EXPOSED" not in found  # no verdict from inside standing in for the Internet's
    assert (found["COUNT-SMALL"].status, found["COUNT-SMALL"].vantage) == ("pass", "dmz")
    # Two vantages planned, one ran: the other's view is missing too, so still no verdict.
    two, outside = {"dmz": ("internet", "isp")}, {"internet", "isp"}
    observed = [seen(30, "dmz"), seen(3, "internet")]
    found = judge(observed, EXPOSED, probed={BARE, FROM_INTERNET}, reaching=two, outside=outside)
    assert (found["COUNT-NOT-PROBED"].blocked, set(found)) == (("COUNT-EXPOSED",), {"COUNT-NOT-PROBED"})
    # Once the other ended too (it saw nothing from there), the rule is judged on what was seen.
    found = judge(observed, EXPOSED, probed={BARE, FROM_INTERNET, FROM_ISP}, reaching=two, outside=outside)
    assert (set(found), found["COUNT-EXPOSED"].vantage) == ({"COUNT-EXPOSED"}, "internet")


def test_a_planned_outside_probe_that_ran_judges_the_internet_rule_on_what_it_saw() -> None:
    # Inside 30 answer, from the Internet 3: the rule passes on the outside view, not from inside.
    found = judge(
        [seen(30, "dmz"), seen(3, "internet")], EXPOSED, probed={BARE, FROM_INTERNET}, reaching=PLANNED
    )
    [exposed] = found.values()
    assert (exposed.status, exposed.vantage, exposed.judged_from_inside) == ("pass", "internet", False)
    assert exposed.evidence["observed"] == 3
    # The inside probe need not have ended: the rule is not judged on it.
    found = judge([seen(3, "internet")], EXPOSED, probed={FROM_INTERNET}, reaching=PLANNED)
    assert (found["COUNT-EXPOSED"].status, found["COUNT-EXPOSED"].vantage) == ("pass", "internet")


def test_a_host_no_outside_vantage_reaches_is_judged_from_inside_and_says_so() -> None:
    # The Internet reaches another zone, not the DMZ: no outside probe of this host was planned.
    elsewhere = {"servers": ("internet",)}
    [finding] = judge([seen(30, "dmz")], EXPOSED, probed={BARE}, reaching=elsewhere).values()
    assert (finding.status, finding.vantage, finding.judged_from_inside) == ("fail", "dmz", True)
    assert "Judged from inside, zone dmz" in finding.message.en
    # A complete run (every planned probe ended) is judged as before, whatever was planned.
    [complete] = judge([seen(30, "dmz")], EXPOSED, reaching=PLANNED).values()
    assert (complete.status, complete.judged_from_inside) == ("fail", True)


def test_probe_keys_of_another_vantage_name_it() -> None:
    assert probe_check("tls", None) == "tls"
    assert probe_check("tls", "internet") == "tls@internet"


def test_an_override_sets_or_takes_away_a_rules_vantage(tmp_path: Path) -> None:
    policy = tmp_path / "province.yaml"
    policy.write_text(
        "id: province\ntitle: Province\nextends: [vn-level-1]\noverrides:\n"
        "  - {rule: VN-SSH-INTERNET, vantage: inside}\n  - {rule: PORT-TELNET, vantage: internet}\n",
        encoding="utf-8",
    )
    base = {r.id: r.vantage for r in load_policy("vn-level-1", Registry.load()).rules}
    assert (base["VN-SSH-INTERNET"], base["PORT-TELNET"], base["PORT-RDP"]) == ("internet", None, "internet")
    rules = {r.id: r.vantage for r in load_policy(str(policy), Registry.load()).rules}
    assert (rules["VN-SSH-INTERNET"], rules["PORT-TELNET"], rules["PORT-RDP"]) == (
        None,
        "internet",
        "internet",
    )
