"""The `attt` program's entry point (`attt.console`)."""

import subprocess
import sys

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
"""


def test_the_program_imports_with_the_collector_off_then_runs_a_command_with_it_on() -> None:
    # Left off after the import, a long scan would never free reference cycles.
    done = subprocess.run(
        [sys.executable, "-c", _PROGRAM], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.splitlines()[-1] == f"0 True {_GC_THRESHOLDS[0]} True"
