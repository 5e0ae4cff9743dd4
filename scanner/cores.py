"""A core of its own for a CPU-bound program a probe runs (nmap), and this process's threads on
the other cores while it runs.

nmap's connect scan of a province keeps a core busy for its whole run: 1.2 to 1.6 CPU-s of a 1.3
to 1.6 s run over 1,000 hosts on a 2-vCPU machine. Meanwhile this process judges the hosts nmap
has finished, reads its output and records what ended: about one CPU-s more. Left to the kernel,
the two kept taking each other's core, and nmap waited 0.41 s for one (0.05 to 0.08 s alone).
With nmap on one core and this process's threads on the other, it waited 0.18 s and the scan
ended 0.77 s sooner (medians of 12 alternating pairs, 10 of them faster; 3.57 s against 4.13 s
at a time the machine took 2.08 s for nmap alone).

This process's threads share one interpreter lock, so they lose little by sharing the cores left
while the program runs; beside two CPU-bound programs in the scan's own session, the longest a
thread of the scan waited for the lock or a core stayed under 0.13 s. The processes it starts
meanwhile are given every core back (`every_core`).

The program keeps the core the kernel started it on (the idlest, as the kernel places a new
process), so that the programs of several scans on one machine do not all crowd onto one core.
Linux only (a thread's CPU affinity); elsewhere, on one core, or when no core would be left for
this process, the program is left to the kernel.
"""

import os
import threading
from collections.abc import Iterator, Set
from contextlib import contextmanager, suppress
from pathlib import Path

_TASKS = Path("/proc/self/task")


class _Cores:
    """Which core each program holds, and the cores this process had before the first took one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[int, int] = {}
        self._all: frozenset[int] = frozenset()

    def give(self, pid: int) -> bool:
        """Put program `pid` on a core of its own and this process's threads on the others; False
        when it is left to the kernel."""
        if not hasattr(os, "sched_setaffinity"):
            return False
        with self._lock:
            every = self._every()
            left = every - set(self._held.values())
            if len(left) < 2:
                return _to_kernel(pid, every)
            core = _core_for(pid, left)
            if not _pin_threads(left - {core}):
                return _to_kernel(pid, every)
            try:
                os.sched_setaffinity(pid, {core})
            except OSError:  # it has ended already
                _pin_threads(every - set(self._held.values()))
                return False
            self._all = every
            self._held[pid] = core
            return True

    def every_core(self, pid: int) -> None:
        with self._lock:
            _to_kernel(pid, self._every())

    def _every(self) -> frozenset[int]:
        """The cores this process may use, those held by programs included (lock held)."""
        return self._all if self._held else frozenset(os.sched_getaffinity(0))

    def take_back(self, pid: int) -> None:
        with self._lock:
            del self._held[pid]
            _pin_threads(self._all - set(self._held.values()))


_CORES = _Cores()


@contextmanager
def dedicated_core(pid: int) -> Iterator[None]:
    """While the block runs, program `pid` runs on a core of its own and this process's threads
    on the cores left, when one is left; then this process's threads get every core back."""
    given = _CORES.give(pid)
    try:
        yield
    finally:
        if given:
            _CORES.take_back(pid)


def every_core(pid: int) -> None:
    """Let process `pid`, started by this one, run on every core this process may use, those held
    by programs included. A process started by a thread kept off a held core stays off it for its
    whole life, and so does each it starts: the TLS workers, forked by a fork server started
    while nmap ran, ran on one core of two."""
    _CORES.every_core(pid)


def _to_kernel(pid: int, every: Set[int]) -> bool:
    """Leave `pid` to the kernel on every core (started by a thread kept off the held cores, it
    would stay off them); False."""
    with suppress(OSError):
        os.sched_setaffinity(pid, every)
    return False


def _pin_threads(cores: Set[int]) -> bool:
    """Every thread of this process on `cores` (a thread started later inherits the affinity of
    the thread starting it); False when this process's threads cannot be listed."""
    try:
        tasks = [int(task.name) for task in _TASKS.iterdir()]
    except OSError:
        return False
    for task in tasks:
        with suppress(OSError):  # a thread that has ended meanwhile
            os.sched_setaffinity(task, cores)
    return True


def _core_for(pid: int, left: Set[int]) -> int:
    """The core `pid` was started on (the kernel places a new process on the idlest), when it is
    one of `left`; else the last of them."""
    try:
        # After the command's name, which may hold spaces: `processor` is the 37th field.
        started_on = int(Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[36])
    except (OSError, IndexError, ValueError):
        return max(left)
    return started_on if started_on in left else max(left)
