"""Errors that end a command with a one-line message instead of a traceback."""


class AtttError(Exception):
    """Base class: the message is shown to the user as a single line."""


class ConfigError(AtttError):
    """A user-written file or option is wrong (exit code 2). The message names file, line and field."""


class StoreError(AtttError):
    """The run store cannot be opened or does not hold what was asked for."""


class StoreWriteError(StoreError):
    """The run store refused a write in the middle of a scan (disk full, lock held too long)."""


class RunBusyError(AtttError):
    """Another live process runs this run, or a scan of the same inventory (exit code 4)."""


class ReportDirError(AtttError):
    """The report directory cannot take this run's bundle (it holds files of its own)."""
