"""What `attt scan` does around the pipeline: signals, and the options a resumed run keeps.

Signals. SIGINT, SIGTERM and SIGHUP end a scan wherever they land, with exit code 130 and the
run stored `incomplete`. While the run is open (probing, judging, storing what was judged) the
first signal only asks the scan to stop: it stops probing, judges and stores what it saw, writes
the report and then exits 130. Anywhere else (loading, writing the report), and at a second
signal, the scan is abandoned at once, and the run is marked `incomplete` on the way out.

Options. A run remembers how it was started (never a secret): a resumed run runs the same way.
An option that shapes what is scanned, given again with `--resume`, must say the same thing; a
credentials file the run had must be given again, since its secrets are never stored. How the
result is reported (`--out`, `--format`, `--lang`, `--fail-on`) is the run's own unless given.
"""

import json
import signal
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from types import FrameType
from typing import Any, Final

from attt.scanner.errors import ConfigError

_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

REMEMBERED: Final = {
    "policies": "-p",
    "systems": "--system",
    "tags": "--tag",
    "checks": "--check",
    "timeout": "--timeout",
    "concurrency": "--concurrency",
    "formats": "--format",
    "lang": "--lang",
    "fail_on": "--fail-on",
    "out": "--out",
    "credentials": "--credentials",
    "tls_exhaustive": "--tls-exhaustive",
}
"""Option (as stored with the run) -> its flag."""
_REPORTING: Final = frozenset({"formats", "lang", "fail_on", "out"})
"""How the result is reported: a resumed run takes its own unless the command line says otherwise.
The others shape what is scanned and may not change in the middle of a run."""
_HAD_CREDENTIALS: Final = "given"


class Interrupts:
    """Installs the scan's handlers for SIGINT, SIGTERM and SIGHUP, and restores the old ones."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        """Set by the first signal: stop probing, keep everything."""
        self._gentle = False
        self._count = 0
        self._previous: dict[signal.Signals, Any] = {}

    def __enter__(self) -> "Interrupts":
        for signum in _SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    @property
    def signalled(self) -> bool:
        return self._count > 0

    @contextmanager
    def gently(self) -> Iterator[None]:
        """While the run is open: the first signal stops the scan without abandoning it."""
        self._gentle = True
        try:
            yield
        finally:
            self._gentle = False

    def _handle(self, _signum: int, _frame: FrameType | None) -> None:
        self._count += 1
        self.stop.set()
        if not (self._gentle and self._count == 1):
            raise KeyboardInterrupt


def remember(options: Mapping[str, object]) -> dict[str, str]:
    """The options to store with a new run, as text (lists as JSON)."""
    return {name: _text(name, value) for name, value in options.items() if name in REMEMBERED}


def _text(name: str, value: object) -> str:
    if name == "credentials":
        return _HAD_CREDENTIALS if value is not None else ""
    if isinstance(value, list | tuple):
        items = [str(v) for v in value]
        # Policies are stored comma-joined, as since the first release; other lists as JSON.
        return ",".join(items) if name == "policies" else json.dumps(items)
    if isinstance(value, float):
        return f"{value:g}"
    return "" if value is None else str(value)


def resumed_options(run_id: str, saved: Mapping[str, str], given: Mapping[str, object]) -> dict[str, str]:
    """The options a resumed run runs with: its own. `given` holds the options given on this
    command line (not defaults); one that differs from the run's own is a usage error, and a
    credentials file the run had must be given again (ConfigError)."""
    for name, value in given.items():
        if name not in REMEMBERED or name not in saved or name == "credentials" or name in _REPORTING:
            continue
        if _text(name, value) != saved[name]:
            raise ResumeConflict(
                f"{REMEMBERED[name]} {_text(name, value) or '(none)'} conflicts with run {run_id}'s own"
                f" ({saved[name] or 'none'}): a resumed run keeps the options it started with"
            )
    had = saved.get("credentials")
    if had == _HAD_CREDENTIALS and given.get("credentials") is None:
        raise ConfigError(
            f"run {run_id} was started with --credentials: give the credentials file again"
            " (secrets are never stored); without it the authenticated checks would not run"
        )
    if had == "" and given.get("credentials") is not None:
        raise ResumeConflict(f"run {run_id} was started without --credentials")
    own = {name: saved[name] for name in REMEMBERED if name in saved}
    return own | {name: _text(name, value) for name, value in given.items() if name in _REPORTING}


def as_list(text: str) -> list[str]:
    return [str(v) for v in json.loads(text)] if text else []


class ResumeConflict(ConfigError):
    """An option given with --resume contradicts the run's own (a usage error, exit 2)."""
