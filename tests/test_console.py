"""The `attt` program's entry point (`attt.console`)."""

import subprocess
import sys

import pytest

from attt.scanner.cli import _GC_THRESHOLDS

_PROGRAM = """
import gc, sys
sys.argv = ["attt", "checks", "list"]
from attt import console
try:
    console.run()
except SystemExit as exc:
    code = exc.code
print(code, gc.isenabled(), gc.get_threshold()[0], gc.get_freeze_count() > 0)
probes = ("cryptography", "sslyze", "nassl", "paramiko", "jinja2")
print(*sorted(name for name in probes if name in sys.modules))
"""


@pytest.fixture(scope="module")
def last_lines() -> list[str]:
    """`attt checks list` run as the program runs it; the two lines the snippet prints last."""
    done = subprocess.run(
        [sys.executable, "-c", _PROGRAM], capture_output=True, text=True, timeout=60, check=True
    )
    return done.stdout.splitlines()[-2:]


def test_the_program_imports_with_the_collector_off_then_runs_a_command_with_it_on(
    last_lines: list[str],
) -> None:
    # Left off after the import, a long scan would never free reference cycles.
    assert last_lines[0] == f"0 True {_GC_THRESHOLDS[0]} True"


def test_loading_every_check_loads_none_of_their_probe_libraries(last_lines: list[str]) -> None:
    # The registry imports each check's controls, so every scan's start (a ports scan's too) pays
    # for what those import: the probes' libraries are loaded by the probes that use them.
    assert last_lines[1] == ""
