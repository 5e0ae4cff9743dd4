"""A scan's run store in a process of its own (`attt.scanner.storehost`): what the scan writes
through it is what a `Store` in the scan's process writes, its refusals arrive as the same errors,
a store process that is gone is a refused write, and the scan's own process never loads
SQLAlchemy. Each test runs on SQLite and on the real PostgreSQL server of tests/servers."""

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from attt.scanner.errors import RunBusyError, StoreError, StoreWriteError
from attt.scanner.models.finding import FindingCodec
from attt.scanner.models.observation import Observation
from attt.scanner.store import Store
from attt.scanner.storehost import StoreHost, _exited
from tests.factories import finding
from tests.scanner.plugins import CountData, target
from tests.scanner.test_store import T0, info
from tests.servers.postgres import raw

RUN = "20261127T080000Z-aaaaaa"


@pytest.fixture
def location(store_location: Path | str) -> Path | str:
    return store_location


@pytest.fixture
def host(location: Path | str) -> Iterator[StoreHost]:
    warned: list[str] = []
    opened = StoreHost(str(location), warned.append)
    opened.open({"count": CountData})
    yield opened
    opened.close()


def test_a_run_written_through_the_store_process_reads_back_whole(
    location: Path | str, host: StoreHost
) -> None:
    t = target("127.0.0.4")
    host.create_run(info(RUN), [t.system], [t], inventory="a" * 64)
    host.record_probes(RUN, [("count", t, [Observation.ok("count", t, CountData(count=4))])])
    judged = [
        finding(sys=t.system.id, host=t.address),
        finding(status="pass", sys=t.system.id, host=t.address),
    ]
    ended = host.finish_run(RUN, "complete", T0, judged, FindingCodec())
    assert ended.status == "complete"
    assert [r.id for r in host.runs()] == [RUN]
    # Read back by a store of this process, as another command would.
    reader = Store(location, {"count": CountData}, create=False)
    try:
        stored = reader.load(RUN)
    finally:
        reader.close()
    assert stored.info.status == "complete"
    assert stored.targets == (t,)
    assert [o.data for o in stored.observations] == [CountData(count=4)]
    assert stored.probes == {("count", t.system.id, t.address)}
    assert [f.status for f in stored.findings] == ["fail", "pass"]
    assert stored.findings == tuple(judged)


def test_findings_sent_ahead_are_stored_in_the_order_the_run_ends_with_those_judged_late(
    location: Path | str, host: StoreHost
) -> None:
    targets = [target(f"127.0.0.{i}") for i in (21, 22, 23)]
    host.create_run(info(RUN), [t.system for t in targets], targets)
    codec = FindingCodec()
    early = [
        finding(sys=t.system.id, host=t.address, rule_id=rule)
        for t in targets[:2]
        for rule in ("TLS-PROTO-LEGACY", "SSH-WEAK-KEX")
    ]
    codec.encode(early)
    host.stage_findings(RUN, early[:2], codec)
    host.stage_findings(RUN, early[1:3], codec)  # one of them twice: the places still line up
    host.stage_findings(RUN, early[3:], codec)
    # The end: the last host judged late, and the first judged again (another day's waivers).
    again = finding(status="pass", sys=targets[0].system.id, host=targets[0].address)
    late = finding(status="error", sys=targets[2].system.id, host=targets[2].address, rule_id="NEW-RULE")
    ended = [again, early[1], early[2], early[3], late]
    host.finish_run(RUN, "complete", T0, ended, codec)

    reader = Store(location, {"count": CountData}, create=False)
    try:
        stored = reader.load(RUN)
    finally:
        reader.close()
    assert stored.findings == tuple(ended)
    assert raw(location, "SELECT count(*) FROM findings") == [(5,)]


def test_the_lease_names_the_scans_process_not_the_store_process(
    location: Path | str, host: StoreHost
) -> None:
    t = target("127.0.0.5")
    host.create_run(info(RUN), [t.system], [t])
    assert raw(location, "SELECT lease_pid FROM runs") == [(os.getpid(),)]


def test_a_refusal_of_the_store_arrives_as_its_own_error(location: Path | str, host: StoreHost) -> None:
    t = target("127.0.0.6")
    host.create_run(info(RUN), [t.system], [t], inventory="b" * 64)
    with pytest.raises(RunBusyError, match="running"):
        host.create_run(info("20261127T090000Z-bbbbbb"), [t.system], [t], inventory="b" * 64)


def test_a_store_that_cannot_be_opened_is_a_one_line_error(tmp_path: Path) -> None:
    host = StoreHost(":memory:", lambda _line: None)
    try:
        with pytest.raises(StoreError, match="keeps nothing"):
            host.open({})
    finally:
        host.close()
    assert not list(tmp_path.iterdir())


def test_a_store_process_that_is_gone_refuses_every_write(location: Path | str, host: StoreHost) -> None:
    t = target("127.0.0.7")
    host.create_run(info(RUN), [t.system], [t])
    os.kill(host.pid, signal.SIGKILL)
    with pytest.raises(StoreWriteError, match="process keeping the run store ended"):
        host.record_probes(RUN, [("count", t, [Observation.ok("count", t, CountData(count=1))])])
    with pytest.raises(StoreWriteError):
        host.finish_run(RUN, "complete", T0, [], FindingCodec())


def test_the_scans_process_never_loads_sqlalchemy() -> None:
    """The point of the store process: a scan's own process imports its command without the
    database library (the store process, and reading commands, load it)."""
    code = "import sys, attt.scanner.cli; print('sqlalchemy' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "False"


def test_a_scan_whose_store_process_is_gone_before_opening_opens_the_store_itself(tmp_path: Path) -> None:
    host = StoreHost(str(tmp_path / "runs.db"), lambda _line: None)
    os.kill(host.pid, signal.SIGKILL)
    try:
        assert host.open({}) is False
    finally:
        host.close()


def test_signals_are_the_scans_to_handle_not_its_store_process(tmp_path: Path) -> None:
    """Ctrl-C at a terminal (the foreground process group) and a service manager's SIGTERM reach
    the scan, which closes its run through its store process: that process must outlive them."""
    host = StoreHost(str(tmp_path / "runs.db"), lambda _line: None)
    try:
        assert os.getpgid(host.pid) == host.pid != os.getpgid(0)
        assert os.getsid(host.pid) == os.getsid(0)  # one session: the kernel schedules it with the scan
        assert host.open({}) is True
        for sent in (signal.SIGINT, signal.SIGTERM):
            os.kill(host.pid, sent)
        assert host.runs() == []
    finally:
        host.close()


def test_closing_is_told_when_the_store_process_ends_and_not_before() -> None:
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    assert _exited(ended, 30)
    assert ended.wait() == 0
    lingering = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert not _exited(lingering, 0.2)
    finally:
        lingering.kill()
        lingering.wait()
