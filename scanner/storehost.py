"""The run store in a process of its own, for `attt scan`.

Importing SQLAlchemy, opening the store and writing each observation and finding all ran under the
one interpreter lock that also reads nmap's output and judges the hosts, most of it before the
first packet. `StoreHost` gives that work to a child process. The child imports SQLAlchemy while the
scan loads its inventory and policies (on the other core: `attt.scanner.storeprocess` starts it
first thing), opens the store only when asked (once they are valid: a refused scan leaves no trace
in the store, as before), then makes each write the scan asks for, in order. The scan sends what it
writes already serialised (`attt.scanner.stored`; the judge serialises its findings as it goes
anyway). Reads that return whole runs (a baseline, trends) are made in the scan's own process, by a
`Store` opened on first use: a run sent over a pipe costs more than reading it. On the bench's
1,000-host ports scan this took 0.08 s (a quiet machine, 2.36 s in all) to 0.18 s (a busy one,
4.17 s) off each scan, alternating 12 times with the scan keeping its store itself.

Each call waits for its answer, so the order and the errors are the store's own: a refused write is
a `StoreWriteError` here as there, and a child that is gone is one too (the scan goes on in memory
and reports the run incomplete). The lease names the scan's process, not the child. The child is in
a process group of its own and ignores SIGINT and SIGTERM (the scan handles them and closes its
run through it); it leaves when its requests end, whoever ends them (the scan closing it, or
dying), once its last write is in the store's file.
"""

import atexit
import gc
import os
import select
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any, Final, NoReturn, TypeAlias

from pydantic import BaseModel

from attt.scanner import storeprocess
from attt.scanner.errors import AtttError, StoreError, StoreWriteError
from attt.scanner.models.finding import Finding, FindingCodec
from attt.scanner.models.observation import ProbeKey
from attt.scanner.models.report import RunInfo, RunStatus
from attt.scanner.models.target import SystemInfo, Target
from attt.scanner.stored import (
    EndedProbe,
    Lease,
    StoredRun,
    serialise_findings,
    serialise_probes,
    serialise_run,
)

if TYPE_CHECKING:
    from attt.scanner.store import Store

RunStore: TypeAlias = "Store | StoreHost"
"""Where a scan keeps its run: a `Store` in its own process, or one kept by a `StoreHost`."""

_WRITES: Final = frozenset({"create_serialised", "claim", "heartbeat", "record_serialised", "mark", "runs"})
"""What the child does for the scan (`runs` too: a short list, asked by every report)."""
_LEAVE_SECONDS: Final = 30.0
"""How long closing waits for the child to copy its last writes into the store's file and leave."""


class StoreHost:
    """The run store of one scan, kept by a child process (see the module): what the scan asks
    of a `Store`, with the same arguments, answers and errors."""

    def __init__(self, db: str | None, warn: Callable[[str], None]) -> None:
        """Start the child: it imports the store's code now, and opens nothing until `open`.
        Raises OSError when no process can be started (the caller opens a `Store` itself)."""
        self._db = db
        self._data_models: Mapping[str, type[BaseModel]] = {}
        self._warn = warn
        self._lock = threading.Lock()
        self._reader: Store | None = None
        # Findings sent ahead (`stage_findings`): each by identity, with its place among the rows
        # the child holds for the run, and the rule texts the child holds already.
        self._staged: dict[int, tuple[Finding, int]] = {}
        self._rows_sent = 0
        self._texts_sent: set[str] = set()
        self._process = storeprocess.take()
        assert self._process.stdin is not None
        assert self._process.stdout is not None
        self._requests = Connection(os.dup(self._process.stdin.fileno()), readable=False)
        self._replies = Connection(os.dup(self._process.stdout.fileno()), writable=False)
        self._process.stdin.close()
        self._process.stdout.close()

    @property
    def pid(self) -> int:
        """The store process's."""
        return self._process.pid

    def open(self, data_models: Mapping[str, type[BaseModel]]) -> bool:
        """Open (or create) the store in the child; StoreError as `Store` raises it. False when
        the child is gone already (it could not load attt): the scan then opens the store itself.
        `data_models` (`Registry.data_models`) type the observations of runs read back here."""
        self._data_models = data_models
        try:
            self._call("open", self._db)
        except _Gone:
            return False
        return True

    def create_run(
        self,
        info: RunInfo,
        systems: Iterable[SystemInfo],
        targets: Iterable[Target],
        lease: Lease | None = None,
        inventory: str | None = None,
    ) -> None:
        self._call(
            "create_serialised", serialise_run(info, systems, targets), lease or Lease.mine(), inventory
        )

    def claim(
        self,
        run_id: str,
        redo: Iterable[ProbeKey] = (),
        lease: Lease | None = None,
        probed_from: Mapping[str, tuple[str, ...]] | None = None,
    ) -> None:
        self._call("claim", run_id, tuple(redo), lease or Lease.mine(), probed_from)

    def heartbeat(self, run_id: str, lease: Lease | None = None) -> None:
        self._call("heartbeat", run_id, lease or Lease.mine())

    def record_probes(self, run_id: str, probes: Sequence[EndedProbe]) -> None:
        self._call("record_serialised", run_id, serialise_probes(probes))

    def mark(self, run_id: str, status: RunStatus, finished: datetime) -> RunInfo:
        info: RunInfo = self._call("mark", run_id, status, finished)
        return info

    def stage_findings(self, run_id: str, findings: Sequence[Finding], codec: FindingCodec) -> None:
        """Send findings judged before the run ends to the child, which holds them (serialised)
        and writes nothing: a run's findings are stored when it ends (`finish_run`), which then
        names these by their place instead of sending them. Sent at the end, a province's 22,000
        rows (serialised, pickled, unpickled: 0.06 s of CPU, beside the report being rendered)
        were the last thing a scan waited for."""
        rows, texts = serialise_findings(findings, codec)
        new_texts = self._unsent(texts)
        self._call("stage", run_id, rows, new_texts)
        # Placed as the child appends them, one row per finding, whatever they are.
        first, self._rows_sent = self._rows_sent, self._rows_sent + len(rows)
        self._staged.update((id(finding), (finding, first + i)) for i, finding in enumerate(findings))
        self._texts_sent.update(new_texts)

    def finish_run(
        self,
        run_id: str,
        status: RunStatus,
        finished: datetime,
        findings: Iterable[Finding],
        codec: FindingCodec | None = None,
    ) -> RunInfo:
        info: RunInfo = self._call("finish", run_id, status, finished, *self._placed(findings, codec))
        return info

    def _placed(
        self, findings: Iterable[Finding], codec: FindingCodec | None
    ) -> tuple[list[int], list[tuple[str, str]], dict[str, str]]:
        """Each finding by its place among the staged rows (0, 1, ...) or among the rows sent now
        (-1, -2, ...: judged again at the end, or never staged; all of them when none was), those
        rows, and the texts the child does not hold yet."""
        places: list[int] = []
        late: list[Finding] = []
        for finding in findings:
            staged = self._staged.get(id(finding))
            if staged is not None and staged[0] is finding:
                places.append(staged[1])
            else:
                late.append(finding)
                places.append(-len(late))
        rows, texts = serialise_findings(late, codec)
        return places, rows, self._unsent(texts)

    def _unsent(self, texts: Mapping[str, str]) -> dict[str, str]:
        return {key: text for key, text in texts.items() if key not in self._texts_sent}

    def runs(self, system: str | None = None, limit: int = 20) -> list[RunInfo]:
        listed: list[RunInfo] = self._call("runs", system, limit)
        return listed

    def earlier_runs(self, info: RunInfo, limit: int = 100) -> list[tuple[RunInfo, tuple[Target, ...]]]:
        # A first run (every run of a new store) has none: the child says so without this
        # process loading the store's code.
        if all(other.id == info.id for other in self.runs(limit=2)):
            return []
        return self.reader().earlier_runs(info, limit)

    def load(self, run_ref: str) -> StoredRun:
        return self.reader().load(run_ref)

    def reader(self) -> "Store":
        """The same store opened in this process, for what returns whole runs (and for the rest
        of what a scan's report or notifications ask)."""
        if self._reader is None:
            from attt.scanner.store import Store, locate

            self._reader = Store(locate(self._db), self._data_models, create=False, warn=self._warn)
        return self._reader

    def close(self) -> None:
        """End the child's requests and wait until it leaves, its last write copied into the
        store's file (a scan that keeps its store itself waits for that too), within
        `_LEAVE_SECONDS`; past them it is killed: every write it answered is committed already."""
        with self._lock:
            self._requests.close()
            self._replies.close()
        if not _exited(self._process, _LEAVE_SECONDS):
            self._process.kill()
        self._process.wait()
        if self._reader is not None:
            self._reader.close()

    def _call(self, method: str, *args: Any) -> Any:
        with self._lock:
            try:
                self._requests.send((method, args))
                outcome, result, warnings = self._replies.recv()
            except (EOFError, OSError) as exc:
                raise _Gone(f"the process keeping the run store ended ({exc or 'no answer'})") from None
        for line in warnings:
            self._warn(line)
        if outcome == "error":
            raise result
        return result


def _exited(process: "subprocess.Popen[bytes]", timeout: float) -> bool:
    """Whether `process` ends within `timeout` seconds, told the moment it does. `Popen.wait` with
    a timeout polls, sleeping longer each time up to 50 ms: a child ending 30 ms after the last
    write was seen 60 ms after it, at the end of every scan. A pidfd (Linux 5.3) wakes the wait
    when it ends; elsewhere `Popen.wait` polls."""
    try:
        pidfd = os.pidfd_open(process.pid)  # never reused before it is reaped: it is this process's child
    except (AttributeError, OSError):
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True
    try:
        # poll, not select: a scan at wide concurrency may hold descriptors past select's 1,024.
        waiting = select.poll()
        waiting.register(pidfd, select.POLLIN)
        return bool(waiting.poll(timeout * 1000))
    finally:
        os.close(pidfd)


class _Gone(StoreWriteError):
    """The store process ended: every write is refused from then on (the scan goes on in memory)."""


def _serve(requests: Connection, replies: Connection) -> None:
    """The child: answer each request in order until there are none."""
    from attt.scanner.store import Store, locate  # the import this process takes off the scan's

    gc.freeze()
    gc.enable()

    store: Store | None = None
    warnings: list[str] = []
    staged: dict[str, _Staged] = {}
    while True:
        try:
            method, args = requests.recv()
        except (EOFError, OSError):
            break
        try:
            if method == "open":
                store = Store(locate(args[0]), warn=warnings.append)
                result: object = None
            elif store is not None and method == "stage":
                staged.setdefault(args[0], _Staged()).add(*args[1:])
                result = None
            elif store is not None and method == "finish":
                run_id, status, finished, places, rows, texts = args
                held = staged.get(run_id, _Staged()).finished(places, rows, texts)
                result = store.finish_serialised(run_id, status, finished, *held)
                staged.pop(run_id, None)  # kept while refused: closing may be tried again
            elif store is not None and method in _WRITES:
                result = getattr(store, method)(*args)
            else:
                raise StoreError(f"the run store's process was asked {method!r} before the store was open")
            reply: tuple[str, object, list[str]] = ("ok", result, warnings)
        except AtttError as exc:
            reply = ("error", exc, warnings)
        except Exception as exc:  # a bug in the store: one line for the scan, never a hang
            reply = ("error", StoreError(f"the run store failed: {type(exc).__name__}: {exc}"), warnings)
        replies.send(reply)
        warnings.clear()  # the store's `warn` appends to this very list
    if store is not None:
        store.close()


class _Staged:
    """The child's copy of the findings a run sent ahead (`StoreHost.stage_findings`)."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, str]] = []
        self.texts: dict[str, str] = {}

    def add(self, rows: list[tuple[str, str]], texts: dict[str, str]) -> None:
        self.rows += rows
        self.texts |= texts

    def finished(
        self, places: list[int], rows: list[tuple[str, str]], texts: dict[str, str]
    ) -> tuple[list[tuple[str, str]], dict[str, str]]:
        """The run's rows in order (a place >= 0 is a staged row, -1 - i the i-th of `rows`) and
        the texts they refer to."""
        every = [self.rows[at] if at >= 0 else rows[-1 - at] for at in places]
        known = self.texts | texts
        return every, {key: known[key] for key in {text for _, text in every}}


def main() -> NoReturn:
    requests = Connection(0, writable=False)
    replies = Connection(os.dup(1), readable=False)
    os.dup2(2, 1)  # anything printed by accident goes to stderr, never into a reply
    _serve(requests, replies)
    replies.close()
    # The store's exit handler waits for its last checkpoint; the rest of the interpreter's
    # teardown frees, one by one, what the kernel takes back at once.
    atexit._run_exitfuncs()
    sys.stderr.flush()
    os._exit(0)
