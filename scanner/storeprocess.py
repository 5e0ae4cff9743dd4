"""Starting the process that keeps a scan's run store (`attt.scanner.storehost` serves it).

It is started first thing, when the command line asks for a scan (`start_early`, from the
program's entry point), so that it has loaded SQLAlchemy and the store's code by the time the scan
has loaded its inventory and policies: started by the scan itself, after attt's own modules, it
made the scan wait for it. This module imports nothing of attt's for the same reason."""

import subprocess
import sys
from typing import Final

_early: "list[subprocess.Popen[bytes]]" = []


_CHILD: Final = (
    # Signals are the scan's to handle: it closes its run through this process, which leaves when
    # the scan ends its requests (or dies). Ignored before anything loads, and inherited by nothing.
    "import signal; signal.signal(signal.SIGINT, signal.SIG_IGN);"
    " signal.signal(signal.SIGTERM, signal.SIG_IGN);"
    # The collector waits until the store's code is loaded, as in the scan's process (`attt.console`).
    " import gc; gc.disable(); from attt.scanner.storehost import main; main()"
)


def start() -> "subprocess.Popen[bytes]":
    """A new store process, its requests on its stdin and its replies on its stdout; in a process
    group of its own, so that Ctrl-C at a terminal reaches the scan alone. Not in a session of its
    own: the kernel shares the CPU between sessions (autogroups), and a store process in one of its
    own, waking for each write, left a 1,000-system TLS scan 40 % slower with probes timing out
    (1 to 3 endpoints in error in each of 3 runs, none in 3 runs without). OSError when none can be
    started."""
    # argv of this interpreter and fixed code; no shell.
    return subprocess.Popen(
        [sys.executable, "-c", _CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, process_group=0
    )


def start_early(argv: list[str]) -> None:
    """Start the store's process now if `argv` (the command line, after the program's name) is a
    scan: a hint read before any option is parsed (`attt scan ...`); a scan it misses starts its
    store's process itself, a little later. Nothing happens where none can be started."""
    if argv[:1] == ["scan"] and "--resume" not in argv:
        try:
            _early.append(start())
        except OSError:
            return


def take() -> "subprocess.Popen[bytes]":
    """The process started early if any (once), else a new one."""
    return _early.pop() if _early else start()
