"""What changed between runs, and which run a report compares itself with (pure)."""

from datetime import UTC, datetime, timedelta

from attt.scanner.changes import choose_baseline, compare
from attt.scanner.models.report import RunInfo
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
