"""The `attt` program's entry point.

Importing the command (click, pydantic's schemas of every model, SQLAlchemy, the checks) makes
a few hundred thousand objects that all live until the process exits; with the collector on,
about 140 collections walk them while they are made, a full one among them (some 0.1 s of a
second's start-up). None of them can be garbage yet, so the collector waits until the import is
done: `attt.scanner.cli.run` freezes what the import made and turns it back on.

The process ends without the interpreter's teardown (`_leave`): freeing, one by one, what a
province's scan holds (tens of thousands of findings, their rows, the modules) took 0.05 to
0.1 s after the last line was written, memory the kernel takes back at once anyway.
"""

import atexit
import gc
import os
import sys
import threading
from typing import NoReturn


def run() -> NoReturn:
    gc.disable()
    from attt.scanner import storeprocess

    storeprocess.start_early(sys.argv[1:])
    from attt.scanner.cli import run as run_command

    try:
        run_command()
    except SystemExit as done:
        _leave(done.code)
    _leave(0)


def _leave(code: str | int | None) -> NoReturn:
    """Exit with `code` as `sys.exit` would, with what the interpreter's own exit does that
    anything could depend on (threads left to finish, exit handlers, buffered output), and
    without its teardown."""
    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        sys.exit(code)  # a thread the interpreter would wait for: its usual exit does
    if isinstance(code, str):
        print(code, file=sys.stderr)
        code = 1
    atexit._run_exitfuncs()  # logging's flush, temporary directories, worker pools
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 0)
