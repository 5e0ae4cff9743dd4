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
    INTERRUPTED = 130
    """The scan was interrupted (Ctrl-C, SIGTERM); what was observed is kept, the run is incomplete."""
