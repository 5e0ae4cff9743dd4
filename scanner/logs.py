"""Where log records go when attt runs: one bounded, inert line each on stderr, as attt's own.

Libraries on the probe path log what a target sent (sslyze warns of every HSTS directive it does
not know, quoting it). Left to Python's last-resort handler, each such record reached the
terminal unprefixed and as long as the server made it. The handler here says whose record it is
and passes the text through the one sanitiser, cut to one terminal line.
"""

import logging
import sys
from typing import Final

from attt.scanner.text import safe

MAX_LOG_CHARS: Final = 300
"""A record's text on the terminal: enough for a reason, never a server's whole header."""


class TerminalLog(logging.Handler):
    """Warnings and worse as `attt: warning: LOGGER: TEXT` on the stderr of the moment."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = safe(record.getMessage(), MAX_LOG_CHARS)
            # sys.stderr as it is now: a test runner or Click may have replaced it since start.
            sys.stderr.write(f"attt: warning: {safe(record.name, 80)}: {text}\n")
        except Exception:  # logging's contract: a failing handler never raises
            self.handleError(record)


def log_to_terminal() -> None:
    """Send every logger's warnings to the terminal through `TerminalLog`; once per process."""
    root = logging.getLogger()
    if not any(isinstance(h, TerminalLog) for h in root.handlers):
        root.addHandler(TerminalLog())
