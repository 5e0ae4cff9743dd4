"""Process exit codes. CI jobs depend on them: their meanings never change."""

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    """Every applicable rule passed or is waived by a valid waiver."""
    VIOLATION = 1
    """At least one rule failed with severity at or above ``--fail-on``."""
    CONFIG_ERROR = 2
    """Usage or configuration error; nothing was scanned."""
    INCOMPLETE = 3
    """No failure at or above ``--fail-on``, but some rule could not be evaluated."""
    BUSY = 4
    """Another live scan of the same inventory holds the lock, or the run to resume is still
    running; nothing was scanned."""
    REPORT_NOT_WRITTEN = 5
    """The scan ended and is stored, no rule failed at or above ``--fail-on``, but a report file
    could not be written (``attt report RUN --out DIR`` writes it). A failed rule is 1 whatever
    happened to the report."""
    INTERRUPTED = 130
    """The scan was interrupted (Ctrl-C, SIGTERM, SIGHUP); what was observed is kept, the run is
    incomplete and can be resumed."""
