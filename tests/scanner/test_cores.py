"""A CPU-bound program gets a core of its own, this process's threads the others, and back."""

import os
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from attt.scanner.cores import dedicated_core, every_core

pytestmark = pytest.mark.skipif(
    not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="one core (or no affinity to set): programs are left to the kernel",
)


def threads_cores() -> dict[int, frozenset[int]]:
    """Each thread of this process, by id, with the cores it may run on."""
    tasks = [int(task.name) for task in Path("/proc/self/task").iterdir()]
    return {task: frozenset(os.sched_getaffinity(task)) for task in tasks}


@contextmanager
def program() -> Iterator[subprocess.Popen[bytes]]:
    """A program that runs until the block ends."""
    process = subprocess.Popen(["sleep", "30"])
    try:
        yield process
    finally:
        process.kill()
        process.wait()


@contextmanager
def idle_thread() -> Iterator[int]:
    """A thread of this process that waits until the block ends; its id."""
    done = threading.Event()
    thread = threading.Thread(target=done.wait, name="idle")
    thread.start()
    assert thread.native_id is not None
    try:
        yield thread.native_id
    finally:
        done.set()
        thread.join()


def test_a_program_holds_a_core_that_no_thread_of_this_process_runs_on_until_it_ends():
    every = frozenset(os.sched_getaffinity(0))
    with idle_thread() as before, program() as nmap:
        with dedicated_core(nmap.pid):
            held = os.sched_getaffinity(nmap.pid)
            assert len(held) == 1 and held <= every
            assert set(threads_cores().values()) == {every - held}
            # A thread started meanwhile inherits the narrower affinity, and gets every core back too.
            with idle_thread() as during:
                assert os.sched_getaffinity(during) == every - held
                assert {during, before} <= set(threads_cores())
        assert set(threads_cores().values()) == {every}


def test_a_second_program_gets_a_core_of_its_own_or_every_core_never_the_narrower_affinity():
    every = frozenset(os.sched_getaffinity(0))
    with program() as first, program() as second, dedicated_core(first.pid):
        held = os.sched_getaffinity(first.pid)
        with dedicated_core(second.pid):
            if len(every) > 2:
                second_held = os.sched_getaffinity(second.pid)
                assert len(second_held) == 1 and not second_held & held
                assert set(threads_cores().values()) == {every - held - second_held}
            else:
                # No core left to give without leaving none to this process: the kernel decides,
                # over every core, not only the one this process's threads were kept to.
                assert os.sched_getaffinity(second.pid) == every
                assert set(threads_cores().values()) == {every - held}
        assert set(threads_cores().values()) == {every - held}
    assert set(threads_cores().values()) == {every}


def test_a_program_that_has_ended_changes_nothing():
    every = frozenset(os.sched_getaffinity(0))
    ended = subprocess.Popen(["true"])
    ended.wait()
    with dedicated_core(ended.pid):
        assert set(threads_cores().values()) == {every}
    assert set(threads_cores().values()) == {every}


def test_a_process_started_while_a_program_holds_a_core_can_be_given_every_core_back():
    every = frozenset(os.sched_getaffinity(0))
    with program() as nmap:
        with dedicated_core(nmap.pid), program() as during:
            held = os.sched_getaffinity(nmap.pid)
            # Started by a thread kept off the held core, it inherits that, for as long as it lives.
            assert os.sched_getaffinity(during.pid) == every - held
            every_core(during.pid)
            assert os.sched_getaffinity(during.pid) == every
        with dedicated_core(nmap.pid):
            late = subprocess.Popen(["sleep", "30"])
        try:
            assert os.sched_getaffinity(late.pid) == every - held
            every_core(late.pid)  # after the program gave its core back, too
            assert os.sched_getaffinity(late.pid) == every
        finally:
            late.kill()
            late.wait()
