"""Errors that end a command with a one-line message instead of a traceback."""


class AtttError(Exception):
    """Base class: the message is shown to the user as a single line."""


class ConfigError(AtttError):
    """A user-written file or option is wrong (exit code 2). The message names file, line and field."""


class StoreError(AtttError):
    """The run store cannot be opened or does not hold what was asked for."""
