"""The `attt` program's entry point (`attt.console`)."""

import subprocess
import sys
from pathlib import Path

import pytest

from attt.scanner.cli import _GC_THRESHOLDS

_ATTT = str(Path(sys.executable).with_name("attt"))

_PROGRAM = """
import atexit, gc, sys
sys.argv = ["attt", "checks", "list"]
from attt import console

def state():
    print(gc.isenabled(), gc.get_threshold()[0], gc.get_freeze_count() > 0)
    probes = ("cryptography", "sslyze", "nassl", "paramiko", "jinja2")
    print(*sorted(name for name in probes if name in sys.modules))

atexit.register(state)  # the program leaves through its exit handlers, without the teardown
console.run()
"""


@pytest.fixture(scope="module")
def last_lines() -> list[str]:
    """`attt checks list` run as the program runs it; the two lines its exit handler prints."""
    done = subprocess.run(
        [sys.executable, "-c", _PROGRAM], capture_output=True, text=True, timeout=60, check=True
    )
    return done.stdout.splitlines()[-2:]


def test_the_program_imports_with_the_collector_off_then_runs_a_command_with_it_on(
    last_lines: list[str],
) -> None:
    # Left off after the import, a long scan would never free reference cycles.
    assert last_lines[0] == f"True {_GC_THRESHOLDS[0]} True"


def test_loading_every_check_loads_none_of_their_probe_libraries(last_lines: list[str]) -> None:
    # The registry imports each check's controls, so every scan's start (a ports scan's too) pays
    # for what those import: the probes' libraries are loaded by the probes that use them.
    assert last_lines[1] == ""


def test_the_program_leaves_with_its_exit_code_and_all_it_wrote() -> None:
    # Its output piped, as CI reads it: block-buffered, it reaches the reader only if flushed.
    listed = subprocess.run([_ATTT, "checks", "list"], capture_output=True, text=True,
                            timeout=60)  # fmt: skip
    assert listed.returncode == 0
    assert {"ports", "tls", "ssh", "web"} <= {line.split()[0] for line in listed.stdout.splitlines() if line}
    wrong = subprocess.run([_ATTT, "scan", "--no-such-option"], capture_output=True,
                           text=True, timeout=60)  # fmt: skip
    assert wrong.returncode == 2
    assert "--no-such-option" in wrong.stderr


_WAITED_FOR = """
import sys, threading, time
sys.argv = ["attt", "checks", "list"]
from attt import console
import attt.scanner.cli as cli
command_done = threading.Event()
command = cli.run

def run_then_tell():
    try:
        command()
    finally:
        command_done.set()

cli.run = run_then_tell
# Still running when the program leaves: killed by a bare os._exit, it would never print.
threading.Thread(target=lambda: (command_done.wait(30), time.sleep(0.3), print("finished"))).start()
console.run()
"""


def test_a_thread_still_running_is_waited_for_as_the_interpreter_would() -> None:
    done = subprocess.run([sys.executable, "-c", _WAITED_FOR], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    assert done.stdout.splitlines()[-1] == "finished"
