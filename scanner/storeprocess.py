"""Starting the process that keeps a scan's run store (`attt.scanner.storehost` serves it).

It is started first thing, when the command line asks for a scan (`start_early`, from the
program's entry point), so that it has loaded SQLAlchemy and the store's code by the time the scan
has loaded its inventory and policies: started by the scan itself, after attt's own modules, it
made the scan wait for it. This module imports nothing of attt's for the same reason."""

import subprocess
import sys

_early: "list[subprocess.Popen[bytes]]" = []


def start() -> "subprocess.Popen[bytes]":
    """A new store process, its requests on its stdin and its replies on its stdout; in a session
    of its own, so that Ctrl-C at a terminal reaches the scan alone (which then closes its run
    through it). OSError when none can be started."""
    # argv of this interpreter and fixed code; no shell. The collector waits until the store's
    # code is loaded, as in the scan's own process (`attt.console`): nothing it loads is garbage.
    return subprocess.Popen(
        [sys.executable, "-c", "import gc; gc.disable(); from attt.scanner.storehost import main; main()"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        start_new_session=True,
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
