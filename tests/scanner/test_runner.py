"""The runner's guarantees: concurrency, timeouts and crashes cost only their own probe."""

import time

from pydantic import SecretStr

from attt.scanner.models.observation import Observation
from attt.scanner.plugin import Credential, NoSettings, ProbeContext, batch_budget, batch_groups
from attt.scanner.runner import Runner, ScanPlan
from tests.scanner.plugins import CountCheck, CountData, EchoData, StreamCheck, TallyCheck, registry, target


def run(
    addresses: list[str],
    behaviour: dict[str, str] | None = None,
    timeout: float = 2.0,
    checks: tuple[str, ...] = ("count", "echo"),
    concurrency: int = 8,
    done: dict[tuple[str, str, str], tuple[Observation, ...]] | None = None,
) -> tuple[bool, list[Observation]]:
    CountCheck.behaviour = behaviour or {}
    seen: list[Observation] = []
    runner = Runner(registry(), lambda _target, _check, observations: seen.extend(observations))
    plan = ScanPlan(targets=[target(a) for a in addresses], checks=checks, policies={},
                    timeout=timeout, concurrency=concurrency, done=done or {})  # fmt: skip
    try:
        complete = runner.run(plan)
    finally:
        CountCheck.behaviour = {}
    return complete, seen


def by_host(observations: list[Observation], check: str = "count") -> dict[str, Observation]:
    return {o.host: o for o in observations if o.check == check}


def test_every_target_is_observed_and_dependents_read_prior() -> None:
    complete, seen = run(["127.0.0.1", "127.0.0.2", "127.0.0.3"])
    assert complete
    assert {h: o.data for h, o in by_host(seen).items()} == {
        "127.0.0.1": CountData(count=1), "127.0.0.2": CountData(count=2), "127.0.0.3": CountData(count=3)
    }  # fmt: skip
    assert by_host(seen, "echo")["127.0.0.2"].data == EchoData(saw=(2,))


def test_hanging_probe_times_out_as_error_without_holding_up_the_others() -> None:
    started = time.monotonic()
    complete, seen = run(["127.0.0.1", "127.0.0.2"], {"127.0.0.1": "hang"}, timeout=1.0)
    elapsed = time.monotonic() - started
    hung = by_host(seen)["127.0.0.1"]
    assert hung.status == "error" and "timed out after 1 s" in (hung.error or "")
    assert by_host(seen)["127.0.0.2"].status == "ok"
    assert elapsed < 1.0 + 5.0 + 2.0  # budget + grace + slack
    assert complete


def test_crashing_probe_is_an_error_observation() -> None:
    _, seen = run(["127.0.0.1", "127.0.0.2"], {"127.0.0.1": "crash"})
    crashed = by_host(seen)["127.0.0.1"]
    assert crashed.status == "error" and "RuntimeError: plugin bug" in (crashed.error or "")
    assert by_host(seen)["127.0.0.2"].status == "ok"


def test_dependent_check_reports_error_when_its_source_failed() -> None:
    _, seen = run(["127.0.0.1"], {"127.0.0.1": "error"})
    echo = by_host(seen, "echo")["127.0.0.1"]
    assert echo.status == "error" and "count check failed" in (echo.error or "")


def test_observations_are_timed() -> None:
    _, seen = run(["127.0.0.1"])
    assert all(o.started is not None and o.finished is not None and o.started <= o.finished for o in seen)


def test_stop_abandons_remaining_work_and_reports_incomplete() -> None:
    CountCheck.behaviour = {"127.0.0.1": "hang"}
    runner = Runner(registry(), lambda _target, _check, _observations: None)
    plan = ScanPlan(targets=[target("127.0.0.1")], checks=("count",), policies={}, timeout=30, concurrency=1)
    runner.stop.set()
    try:
        assert runner.run(plan) is False
    finally:
        CountCheck.behaviour = {}


def test_probes_an_earlier_attempt_finished_are_not_repeated_and_feed_dependents() -> None:
    t = target("127.0.0.1")
    earlier = Observation.ok("count", t, CountData(count=41))
    # The count probe would hang now; it must not run again.
    _, seen = run(["127.0.0.1"], {"127.0.0.1": "hang"}, done={("count", *t.key): (earlier,)})
    assert [o.check for o in seen] == ["echo"]
    assert seen[0].data == EchoData(saw=(41,))


def run_tally(addresses: list[str], behaviour: dict[str, str], concurrency: int = 2) -> list[Observation]:
    TallyCheck.batches, TallyCheck.behaviour, TallyCheck.at_once = [], behaviour, set()
    try:
        _, seen = run(addresses, checks=("tally", "count"), concurrency=concurrency)
        return seen
    finally:
        TallyCheck.behaviour = {}


def test_a_batched_check_gets_the_targets_in_order_a_batch_at_a_time() -> None:
    addresses = ["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"]
    seen = run_tally(addresses, {})
    # Two batches run at a time, so the last two may start in either order.
    assert sorted(TallyCheck.batches) == [
        ("127.0.0.1", "127.0.0.2"),
        ("127.0.0.3", "127.0.0.4"),
        ("127.0.0.5",),
    ]
    tallies = by_host(seen, "tally")
    assert {h: o.data for h, o in tallies.items()} == {
        "127.0.0.1": CountData(count=2), "127.0.0.2": CountData(count=2), "127.0.0.3": CountData(count=2),
        "127.0.0.4": CountData(count=2), "127.0.0.5": CountData(count=1),
    }  # fmt: skip
    assert all(o.started and o.finished for o in tallies.values())
    assert set(by_host(seen, "count")) == set(addresses)
    # Two batches at a time share --concurrency 2: each probes one host at a time.
    assert TallyCheck.at_once == {1}


def test_batches_running_at_the_same_time_share_the_concurrency() -> None:
    run_tally([f"127.0.0.{i}" for i in range(1, 6)], {}, concurrency=8)
    assert TallyCheck.at_once == {4}
    run_tally(["127.0.0.1", "127.0.0.2"], {}, concurrency=8)  # one batch: all of it
    assert TallyCheck.at_once == {8}


def test_a_target_the_check_will_not_batch_is_probed_alone() -> None:
    seen = by_host(run_tally(["127.0.0.1", "127.0.0.2", "127.0.0.3"], {"127.0.0.2": "alone"}), "tally")
    assert ("alone 127.0.0.2",) in TallyCheck.batches
    assert ("127.0.0.1", "127.0.0.3") in TallyCheck.batches
    assert {h: o.status for h, o in seen.items()} == {"127.0.0.1": "ok", "127.0.0.2": "ok", "127.0.0.3": "ok"}


def test_a_batch_is_told_how_many_hosts_it_may_probe_at_once_and_budgeted_per_group() -> None:
    run_tally(["127.0.0.1", "127.0.0.2", "127.0.0.3"], {}, concurrency=1)
    # batches of batch_size, each told to probe its hosts one at a time (TallyCheck records it)
    assert sorted(TallyCheck.batches) == [("127.0.0.1", "127.0.0.2"), ("127.0.0.3",)]
    assert TallyCheck.at_once == {1}
    jobs = [
        (target(f"127.0.0.{i}"), ProbeContext(timeout=10, settings=NoSettings(), concurrency=2))
        for i in (1, 2, 3)
    ]
    assert batch_groups(jobs) == 2 and batch_budget(jobs) == 20


def test_a_crashing_batch_is_an_error_for_each_of_its_hosts_and_no_other() -> None:
    seen = by_host(run_tally(["127.0.0.1", "127.0.0.2", "127.0.0.3"], {"127.0.0.2": "crash"}), "tally")
    assert {h: o.status for h, o in seen.items()} == {
        "127.0.0.1": "error",
        "127.0.0.2": "error",
        "127.0.0.3": "ok",
    }
    assert "RuntimeError: batch bug" in (seen["127.0.0.1"].error or "")


def test_a_host_the_batch_says_nothing_about_is_an_error_not_an_empty_result() -> None:
    seen = by_host(run_tally(["127.0.0.1", "127.0.0.2"], {"127.0.0.2": "skip"}), "tally")
    assert seen["127.0.0.1"].status == "ok"
    assert seen["127.0.0.2"].status == "error" and "returned nothing" in (seen["127.0.0.2"].error or "")


def test_a_batched_check_done_by_an_earlier_attempt_is_not_repeated() -> None:
    TallyCheck.batches = []
    earlier = Observation.ok("tally", target("127.0.0.1"), CountData(count=9))
    _, seen = run(
        ["127.0.0.1", "127.0.0.2"], checks=("tally",), done={("tally", "sys-a", "127.0.0.1"): (earlier,)}
    )
    assert TallyCheck.batches == [("127.0.0.2",)]
    assert [o.host for o in seen] == ["127.0.0.2"]


def run_stream(behaviour: str = "") -> dict[str, list[Observation]]:
    """Three hosts through `StreamCheck`; the sink lets the check go on once it has the first."""
    StreamCheck.behaviour, StreamCheck.waited = behaviour, []
    StreamCheck.handed.clear()
    seen: dict[str, list[Observation]] = {}

    def sink(target: object, check: str, observations: list[Observation]) -> None:
        for obs in observations:
            seen.setdefault(obs.host, []).append(obs)
        if "127.0.0.1" in seen:
            StreamCheck.handed.set()

    runner = Runner(registry(), sink)  # type: ignore[arg-type]
    plan = ScanPlan(targets=[target(f"127.0.0.{i}") for i in (1, 2, 3)], checks=("stream",), policies={},
                    timeout=10, concurrency=8)  # fmt: skip
    try:
        runner.run(plan)
    finally:
        StreamCheck.behaviour = ""
    return seen


def test_a_streaming_batch_hands_each_target_over_before_the_batch_ends() -> None:
    seen = run_stream()
    assert StreamCheck.waited == [True]  # the first host was handed over while the batch ran on
    assert {h: [o.data.count for o in obs] for h, obs in seen.items()} == {  # type: ignore[union-attr]
        "127.0.0.1": [1], "127.0.0.2": [2], "127.0.0.3": [3]
    }  # fmt: skip
    assert all(o.started and o.finished for obs in seen.values() for o in obs)


def test_a_streaming_batch_that_fails_midway_keeps_what_it_handed_over() -> None:
    seen = run_stream("crash")
    assert [(o.status, o.data) for o in seen["127.0.0.1"]] == [("ok", CountData(count=1))]
    for host in ("127.0.0.2", "127.0.0.3"):
        (failed,) = seen[host]
        assert failed.status == "error" and "RuntimeError: batch bug" in (failed.error or "")


def test_observations_of_a_target_already_handed_over_are_dropped_not_given_to_another() -> None:
    seen = run_stream("apart")
    assert [o.data for o in seen["127.0.0.1"]] == [CountData(count=1)]
    assert [o.data for o in seen["127.0.0.3"]] == [CountData(count=3)]


def test_a_host_in_two_systems_is_probed_once_and_each_system_gets_its_facts() -> None:
    CountCheck.probed.clear()
    seen: list[Observation] = []
    runner = Runner(registry(), lambda _target, _check, observations: seen.extend(observations))
    shared = [target("127.0.0.7", "sys-a"), target("127.0.0.7", "sys-b"), target("127.0.0.8", "sys-b")]
    plan = ScanPlan(targets=shared, checks=("count", "echo"), policies={}, timeout=5, concurrency=4)
    assert runner.run(plan)
    assert sorted(CountCheck.probed) == [("sys-a", "127.0.0.7"), ("sys-b", "127.0.0.8")]
    counts = {(o.system, o.host): o.data for o in seen if o.check == "count"}
    assert counts == {
        ("sys-a", "127.0.0.7"): CountData(count=7),
        ("sys-b", "127.0.0.7"): CountData(count=7),
        ("sys-b", "127.0.0.8"): CountData(count=8),
    }
    echoes = {(o.system, o.host) for o in seen if o.check == "echo"}
    assert echoes == set(counts)  # each system's dependent check read its own copy


def test_a_host_judged_differently_by_two_systems_is_probed_for_each() -> None:
    CountCheck.probed.clear()
    runner = Runner(registry(), lambda _target, _check, _observations: None)
    shared = [target("127.0.0.7", "sys-a"), target("127.0.0.7", "sys-b")]
    # sys-b logs in to the host, sys-a does not: one probe cannot serve both.
    login = Credential(user="audit", password=SecretStr("not-used"))
    plan = ScanPlan(targets=shared, checks=("count",), policies={}, timeout=5, concurrency=4,
                    credentials=lambda t: login if t.system.id == "sys-b" else None)  # fmt: skip
    assert runner.run(plan)
    assert sorted(CountCheck.probed) == [("sys-a", "127.0.0.7"), ("sys-b", "127.0.0.7")]


def test_a_host_two_systems_register_differently_is_probed_as_each_registers_it() -> None:
    CountCheck.probed.clear()
    runner = Runner(registry(), lambda _target, _check, _observations: None)
    plain = target("127.0.0.7", "sys-a")
    named = target("127.0.0.7", "sys-b")
    named = named.model_copy(update={"host": named.host.model_copy(update={"hostname": "b.attt.test"})})
    tagged = target("127.0.0.7", "sys-c", tags=("portal",))
    # Another agency's system, registering the host exactly as sys-a does: one probe serves both.
    alike = target("127.0.0.7", "sys-d")
    alike = alike.model_copy(update={"system": alike.system.model_copy(update={"owner": "UBND xã Thạch Hà"})})
    plan = ScanPlan(
        targets=[plain, named, tagged, alike], checks=("count",), policies={}, timeout=5, concurrency=4
    )
    assert runner.run(plan)
    assert sorted(CountCheck.probed) == [
        ("sys-a", "127.0.0.7"),
        ("sys-b", "127.0.0.7"),
        ("sys-c", "127.0.0.7"),
    ]
