"""What changed between runs, and which run a report compares itself with (pure)."""

from datetime import UTC, datetime, timedelta

from attt.scanner.changes import Side, choose_baseline, compare, compare_runs
from attt.scanner.models.report import PolicyRef, RunInfo
from tests import factories as F
from tests.scanner.plugins import target

T0 = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)


def run(run_id: str, hours: int, status: str = "complete", checks: tuple[str, ...] = ("count",)) -> RunInfo:
    return RunInfo(id=run_id, started=T0 + timedelta(hours=hours), status=status,
                   province="Hà Tĩnh", scope=("127.0.0.0/8",), inventory_sha256="a" * 64,
                   policies=(), checks=checks)  # fmt: skip


def test_fixed_means_passing_now_and_an_error_is_not_a_fix():
    before = [
        F.finding("A", "fail"),
        F.finding("B", "fail"),
        F.finding("C", "fail"),
        F.finding("D", "waived"),
    ]
    after = [F.finding("A", "pass"), F.finding("B", "error"), F.finding("D", "fail"), F.finding("E", "fail")]
    changes = compare(before, after)
    assert [f.rule_id for f in changes.fixed] == ["A"]
    # B could not be judged, C was not judged at all (gone): neither is fixed.
    assert [f.rule_id for f in changes.not_rechecked] == ["B", "C"]
    assert [f.rule_id for f in changes.still] == ["D"]
    assert [f.rule_id for f in changes.new] == ["E"]


def test_baseline_is_the_latest_earlier_complete_run_over_the_same_hosts_and_checks():
    a, b = target("127.0.0.4", "sys-a"), target("127.0.0.5", "sys-b")
    current = run("now", 10)
    earlier = [
        (run("old-same", 1), (a, b)),
        (run("partial", 5, status="incomplete"), (a, b)),
        (run("one-system", 6), (a,)),
        (run("other-checks", 7, checks=("count", "ports")), (a, b)),
        (run("later", 11), (a, b)),
    ]
    chosen, why = choose_baseline(current, (a, b), earlier)
    assert chosen == "old-same"
    assert why.en == (
        "the latest earlier complete run over the same 2 host(s) of 2 system(s) with the same checks"
        " (newer runs passed over: 1 incomplete, 1 other checks, 1 other hosts)"
    )
    assert why.vi.startswith("lượt quét hoàn tất gần nhất trước đó trên cùng 2 máy chủ")


def test_no_comparable_run_says_why():
    a = target("127.0.0.4")
    chosen, why = choose_baseline(run("now", 10), (a,), [(run("partial", 5, status="incomplete"), (a,))])
    assert chosen is None
    assert why.en == (
        "no earlier complete run over the same 1 host(s) with the same checks"
        " (newer runs passed over: 1 incomplete)"
    )


def judged(run_id: str, hours: int, sha: str, judged_by: dict[str, str] | None = None) -> RunInfo:
    """A run of system `dichvucong` judged by vn-level-3 whose content hashes to `sha`."""
    ref = PolicyRef(id="vn-level-3", version="1", sha256=sha * 64)
    by = {"dichvucong": "vn-level-3"} if judged_by is None else judged_by
    return run(run_id, hours).model_copy(update={"policies": (ref,), "judged_by": by})


def test_a_policy_that_changed_makes_no_fix_and_no_new_problem_and_says_so():
    # The server did not change: rule A was loosened (passes now), C was added (fails now).
    before = [F.finding("A", "fail"), F.finding("B", "fail"), F.finding("D", "pass")]
    after = [F.finding("A", "pass"), F.finding("B", "fail"), F.finding("C", "fail"), F.finding("D", "pass")]
    changes = compare_runs(Side(judged("old", 1, "a"), (), before), Side(judged("now", 2, "b"), (), after))
    assert changes.new == () and changes.fixed == ()
    assert [(r.finding.rule_id, r.was, r.now) for r in changes.rejudged] == [
        ("A", "fail", "pass"),
        ("C", None, "fail"),
    ]
    assert [f.rule_id for f in changes.still] == ["B"]
    [note] = changes.notes
    assert note.en == f"policy vn-level-3 changed between the runs (sha256 {'a' * 12} → {'b' * 12})"
    assert note.vi.startswith("chính sách vn-level-3 đã thay đổi nội dung")
    # The same policy, the same content: a fix is a fix, with nothing to note.
    same = compare_runs(Side(judged("old", 1, "a"), (), before), Side(judged("now", 2, "a"), (), after))
    assert [f.rule_id for f in same.fixed] == ["A"] and [f.rule_id for f in same.new] == ["C"]
    assert same.rejudged == () and same.notes == ()


def test_a_system_judged_by_another_policy_keeps_its_rules_matched():
    # Its level went from 2 to 3: the same rule under the other policy id is the same rule.
    level2 = judged("old", 1, "a", {"dichvucong": "vn-level-2"}).model_copy(
        update={"policies": (PolicyRef(id="vn-level-2", version="1", sha256="c" * 64),)}
    )
    before = [F.finding(r, "fail", policy="vn-level-2") for r in ("A", "B", "GONE")]
    after = [F.finding("A", "fail"), F.finding("B", "pass"), F.finding("NEW", "fail")]
    changes = compare_runs(Side(level2, (), before), Side(judged("now", 2, "a"), (), after))
    assert [f.rule_id for f in changes.still] == ["A"]
    assert (changes.new, changes.fixed, changes.not_rechecked) == ((), (), ())
    assert [(r.finding.rule_id, r.was, r.now) for r in changes.rejudged] == [
        ("B", "fail", "pass"),
        ("GONE", "fail", None),
        ("NEW", None, "fail"),
    ]
    [note] = changes.notes
    assert note.en == "system dichvucong: judged by vn-level-2 before, by vn-level-3 now"


def test_runs_that_do_not_say_which_policy_judged_which_system_are_judged_otherwise_everywhere():
    old = judged("old", 1, "a", {})
    new = judged("now", 2, "a", {}).model_copy(
        update={"policies": (PolicyRef(id="hatinh", version="1", sha256="d" * 64),)}
    )
    changes = compare_runs(
        Side(old, (), [F.finding("A", "fail")]), Side(new, (), [F.finding("A", "pass", policy="hatinh")])
    )
    assert changes.fixed == () and [r.now for r in changes.rejudged] == ["pass"]
    assert [n.en for n in changes.notes] == ["judged by vn-level-3 before, by hatinh now"]


def test_a_rule_still_failing_from_one_vantage_is_not_fixed():
    before = [F.finding("A", "fail", vantage="dmz")]
    after = [F.finding("A", "fail", vantage="dmz"), F.finding("A", "pass", vantage="internal")]
    changes = compare(before, after)
    assert changes.fixed == () and [f.rule_id for f in changes.still] == ["A"]
    # Passing from one vantage and not judged from the other is not a fix either.
    after = [F.finding("A", "error", vantage="dmz"), F.finding("A", "pass", vantage="internal")]
    assert compare(before, after).fixed == ()


def test_entries_standing_for_blocked_rules_are_no_verdict_and_an_error_is_never_a_fix():
    blocked = F.finding("TLS-PROBE-ERROR", "error", kind="probe_error", blocked=("A",))
    changes = compare([F.finding("A", "fail"), F.finding("E", "error")], [blocked, F.finding("E", "pass")])
    assert [f.rule_id for f in changes.not_rechecked] == ["A"]
    # error -> pass: nothing failed before, so nothing is fixed; pass -> error is no new failure.
    assert changes.fixed == () and changes.new == ()
    lost = compare([F.finding("E", "pass")], [F.finding("E", "error")])
    assert (lost.new, lost.fixed, lost.not_rechecked) == ((), (), ())
    assert [f.rule_id for f in lost.unverified] == ["E"]  # compliant before, not shown compliant now


def test_a_host_that_answered_elsewhere_or_was_registered_otherwise_is_judged_otherwise():
    # The inventory's DNS name now resolves to another machine; the other system may open 2323 now.
    web, ports = target("127.0.0.4", "dichvucong"), target("127.0.0.5", "qlvb")
    moved = web.model_copy(update={"ip": "127.0.0.9"})
    allowed = ports.model_copy(update={"system": ports.system.model_copy(update={"allowed_ports": (2323,)})})
    before = [F.finding("A", "fail", host="127.0.0.4"), F.finding("P", "fail", sys="qlvb", host="127.0.0.5")]
    after = [F.finding("A", "pass", host="127.0.0.4"), F.finding("P", "pass", sys="qlvb", host="127.0.0.5")]
    info = judged("old", 1, "a", {"dichvucong": "vn-level-3", "qlvb": "vn-level-3"})
    changes = compare_runs(Side(info, (web, ports), before), Side(info, (moved, allowed), after))
    assert changes.fixed == ()
    assert [r.finding.rule_id for r in changes.rejudged] == ["A", "P"]
    assert [n.en for n in changes.notes] == [
        "host 127.0.0.4 (dichvucong) answered at 127.0.0.4 before, at 127.0.0.9 now",
        "system qlvb is registered otherwise (level, tags, role or allowed ports)",
    ]
    # Registered alike: the same findings are a fix.
    alike = compare_runs(Side(info, (web, ports), before), Side(info, (web, ports), after))
    assert [f.rule_id for f in alike.fixed] == ["A", "P"] and alike.notes == ()


def test_what_was_seen_from_another_vantage_is_neither_new_nor_fixed():
    # A firewall shows the inside more: the same server passes from outside.
    changes = compare([F.finding("A", "fail")], [F.finding("A", "pass", vantage="internet")])
    assert changes.fixed == () and [(r.was, r.now) for r in changes.rejudged] == [("fail", "pass")]
    assert (
        changes.notes[0].en == "1 verdict(s) rest on what was seen from another vantage than in the baseline"
    )
    inside, outside = judged("old", 1, "a"), judged("now", 2, "a").model_copy(update={"vantage": "internet"})
    changes = compare_runs(
        Side(inside, (), [F.finding("B", "pass")]), Side(outside, (), [F.finding("B", "fail")])
    )
    assert changes.new == () and [r.now for r in changes.rejudged] == ["fail"]
    assert changes.notes[0].en == "the runs probed from other vantages (before: —, now: internet)"


def test_a_run_probed_from_another_vantage_is_no_baseline():
    a = target("127.0.0.4")
    outside = run("outside", 5).model_copy(update={"vantage": "internet"})
    chosen, why = choose_baseline(run("now", 10), (a,), [(run("inside", 1), (a,)), (outside, (a,))])
    assert chosen == "inside"
    assert why.en.endswith("(newer runs passed over: 1 probed from other vantages)")
    assert why.vi.endswith("(bỏ qua các lượt mới hơn: 1 lượt thăm dò từ vùng khác)")


def test_a_failure_the_baseline_could_not_judge_is_first_judged_not_new():
    blocked = F.finding("TLS-PROBE-ERROR", "error", kind="probe_error", blocked=("A",), port=None)
    cases = {
        "probe failed": [blocked],
        "rule error": [F.finding("A", "error")],
        "host not scanned": [F.finding("B", "pass", host="127.0.0.2")],
        "check did not run": [F.finding("B", "pass", check="ssh", port=22)],
    }
    for why, before in cases.items():
        changes = compare(before, [F.finding("A", "fail")])
        assert changes.new == (), why
        assert [f.rule_id for f in changes.first_judged] == ["A"], why
    # The baseline judged it and it passed, or its check saw the host without this endpoint: new.
    for before in ([F.finding("A", "pass")], [F.finding("B", "pass", port=8443)]):
        changes = compare(before, [F.finding("A", "fail")])
        assert [f.rule_id for f in changes.new] == ["A"] and changes.first_judged == ()


def test_a_waiver_added_or_ended_is_still_failing_never_fixed_or_new():
    waived, failing = F.finding("A", "waived"), F.finding("A", "fail")
    for before, after in ((failing, waived), (waived, failing)):
        changes = compare([before], [after])
        assert (changes.new, changes.fixed) == ((), ()) and [f.status for f in changes.still] == [
            after.status
        ]
    # The rule passes under its waiver: the server was mended, a fix.
    assert [f.rule_id for f in compare([waived], [F.finding("A", "pass")]).fixed] == ["A"]


def test_a_service_that_moved_port_leaves_its_old_failure_not_rechecked():
    changes = compare([F.finding("A", "fail", port=443)], [F.finding("A", "pass", port=8443)])
    assert changes.fixed == () and [f.port for f in changes.not_rechecked] == [443]
