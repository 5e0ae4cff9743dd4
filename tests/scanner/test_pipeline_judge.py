"""A scan judges each host as soon as its probes end (`pipeline._Judge`): the findings must be
exactly those one evaluation of every host at the end gives, in the same order, whatever ended
early, failed, or was done by an earlier attempt; and a run that ends on another day than it
began judges waivers as of its end."""

import os
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from attt.scanner import pipeline
from attt.scanner.evaluate import evaluate
from attt.scanner.models.finding import FindingCodec
from attt.scanner.models.observation import Observation
from attt.scanner.models.policy import Waiver
from attt.scanner.models.report import RunInfo
from attt.scanner.models.target import Target
from attt.scanner.pipeline import PreparedScan, ScanOptions, _merged, run_scan
from attt.scanner.store import Store
from attt.scanner.stored import EndedProbe
from tests.scanner.plugins import CountCheck, CountData, registry, target
from tests.scanner.test_evaluate import policy, rule

DAY = datetime(2026, 11, 27, 16, 59, 59, tzinfo=UTC)
"""23:59:59 in Hà Tĩnh: waivers expire by the Vietnamese day (UTC+7), whatever zone attt runs in."""


def prepared(
    targets: list[Target], *, waiver_expires: date | None = None, done: bool = False
) -> PreparedScan:
    waivers: tuple[Waiver, ...] = ()
    if waiver_expires is not None:
        waivers = (
            Waiver(rule="COUNT-SMALL", system="sys-a", reason="r", approved_by="a", expires=waiver_expires),
        )
    judged_by = policy(rule(limit=3), rule(limit=3, rule_id="COUNT-NEVER"), waivers=waivers)
    info = RunInfo(
        id="20261127T165959Z-abcdef", started=DAY, status="running", province="p", scope=("127.0.0.0/8",),
        inventory_sha256="0" * 64, policies=(), checks=("count", "echo"),
    )  # fmt: skip
    first = targets[0]
    earlier = (
        {("count", *first.key): (Observation.ok("count", first, CountData(count=9), 1),)} if done else {}
    )
    return PreparedScan(
        run=info,
        targets=tuple(targets),
        systems=tuple(dict.fromkeys(t.system for t in targets)),
        policies={t.system.id: (judged_by,) for t in targets},
        done=earlier,
    )


@pytest.fixture
def hosts() -> Iterator[list[Target]]:
    CountCheck.behaviour = {"127.0.0.3": "error", "127.0.0.4": "none"}
    yield [target(f"127.0.0.{i}", system="sys-a" if i % 2 else "sys-b") for i in range(1, 9)]
    CountCheck.behaviour = {}


@pytest.mark.parametrize("done", [False, True], ids=["fresh", "resumed"])
def test_hosts_judged_as_they_end_are_judged_as_at_the_end(
    hosts: list[Target], tmp_path: Path, done: bool
) -> None:
    scan = prepared(hosts, done=done)
    outcome = run_scan(scan, ScanOptions(timeout=5, concurrency=3), Store(tmp_path / "s.db"), registry())
    stored = outcome.run
    finished = stored.info.finished or DAY
    again = evaluate(
        scan.targets, stored.observations, scan.policies, registry(), scan.run.checks, finished,
        stored.probes, scan.run.outside(),
    )  # fmt: skip
    assert [f.model_dump() for f in stored.findings] == [f.model_dump() for f in again]
    assert {f.status for f in stored.findings} >= {"pass", "fail", "error", "not_applicable"}


def test_a_run_ending_on_the_next_day_judges_waivers_as_of_its_end(
    hosts: list[Target], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The waiver holds on the day the hosts ended and expired by the day the run ended (in
    Vietnam; it is still the same day in UTC): the failure it waived is a failure again."""
    later = DAY + timedelta(seconds=2)
    times = [DAY]  # the scan's start; every later reading is the next day
    monkeypatch.setattr(pipeline, "utcnow", lambda: times.pop() if times else later)
    CountCheck.behaviour = {}
    scan = prepared([target("127.0.0.5")], waiver_expires=DAY.date())  # counts 5: over the limit of 3
    stored = run_scan(scan, ScanOptions(timeout=5, concurrency=1), Store(tmp_path / "s.db"), registry()).run
    small = [f for f in stored.findings if f.rule_id == "COUNT-SMALL"]
    assert [(f.status, f.waiver.expired if f.waiver else None) for f in small] == [("fail", True)]
    assert stored.info.finished == later


def test_every_finding_is_serialised_before_the_report_and_the_store_read_them_at_once(
    hosts: list[Target], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`attt scan` renders the report while another thread closes the run in the store, both
    reading the judge's codec: nothing may be left to encode then, judged late included (here
    every host, the run ending on the next day)."""
    later = DAY + timedelta(seconds=2)
    times = [DAY]
    monkeypatch.setattr(pipeline, "utcnow", lambda: times.pop() if times else later)
    outcome = run_scan(
        prepared(hosts),
        ScanOptions(timeout=5, concurrency=3),
        Store(tmp_path / "s.db"),
        registry(),
        close=False,
    )
    assert outcome.codec is not None

    def encoded_anew(*_: object) -> str:
        raise AssertionError("a finding was left to encode after the scan")

    monkeypatch.setattr(FindingCodec, "_text_key", encoded_anew)
    assert len(outcome.codec.report_json(outcome.run.findings)) == 1 + 3 * len(outcome.run.findings)


class _BrokenStore(Store):
    """A store whose writing of probes has a bug (not a refused write)."""

    def record_probes(self, run_id: str, probes: object) -> None:
        raise RuntimeError("bug in the store")


def test_a_bug_while_storing_probes_fails_the_scan_instead_of_losing_them(
    hosts: list[Target], tmp_path: Path
) -> None:
    """Probes are stored from a thread of their own: a bug there must still end the scan, as it
    did when each probe was stored by the thread that ran it."""
    with pytest.raises(RuntimeError, match="bug in the store"):
        run_scan(
            prepared(hosts),
            ScanOptions(timeout=5, concurrency=2),
            _BrokenStore(tmp_path / "s.db"),
            registry(),
        )


def test_the_outside_probes_planned_by_each_attempt_add_up() -> None:
    earlier, now = {"dmz": ("internet",)}, {"dmz": ("isp", "internet"), "web": ("internet",)}
    assert _merged(earlier, now) == {"dmz": ("internet", "isp"), "web": ("internet",)}
    assert _merged({}, {}) == {}


class _CountingStore(Store):
    """Counts the commits of ended probes."""

    commits = 0

    def record_probes(self, run_id: str, probes: Sequence[EndedProbe]) -> None:
        self.commits += 1
        super().record_probes(run_id, probes)


def test_probes_that_end_close_together_are_committed_together(tmp_path: Path) -> None:
    """A commit at most every `_COMMIT_EVERY` (and one more when the scan ends), each holding
    every probe that ended since the one before: none is lost."""
    hosts = [target(f"127.0.1.{i}") for i in range(1, 101)]
    store = _CountingStore(tmp_path / "s.db")
    started = time.monotonic()
    outcome = run_scan(prepared(hosts), ScanOptions(timeout=5, concurrency=50), store, registry())
    elapsed = time.monotonic() - started
    assert len(store.probes_done(outcome.run.info.id)) == 2 * len(hosts)  # the count and echo checks
    assert store.commits <= 2 + elapsed / pipeline._COMMIT_EVERY


@pytest.mark.skipif(sys.platform != "linux", reason="a nice value per thread is Linux's")
def test_the_judge_thread_yields_the_cpu_to_probes_and_the_scan_thread_keeps_its_priority() -> None:
    def niceness() -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    before = niceness()
    seen: list[int] = []

    def judge() -> None:
        pipeline._yield_to_probes()
        seen.append(niceness())

    thread = threading.Thread(target=judge)
    thread.start()
    thread.join()
    assert seen == [min(19, before + pipeline._JUDGE_NICENESS)]
    assert niceness() == before
