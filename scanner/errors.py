"""Errors that end a command with a one-line message instead of a traceback."""

from dataclasses import dataclass, field


class AtttError(Exception):
    """Base class: the message is shown to the user as a single line."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong in a user-written file, kept as facts so the CLI can say it in the
    user's language (`attt.scanner.messages.problem_text`)."""

    file: str
    line: int
    place: tuple[tuple[str, ...], ...]
    """Steps naming where, in the user's terms: (`place_system`, id), (`place_field`, key),
    (`place_item`, key, number from 1)... each a message key and its values."""
    kind: str
    """pydantic's error type (`missing`, `string_pattern_mismatch`, ...), or `other`."""
    detail: str
    """The English description, used when no message knows the kind."""
    values: dict[str, str] = field(default_factory=dict)
    """What the message names: the value given, the allowed ones, the bound."""


class ConfigError(AtttError):
    """A user-written file or option is wrong (exit code 2). The message names file, line and field."""

    def __init__(self, message: str, problems: tuple[Problem, ...] = (), more: int = 0) -> None:
        super().__init__(message)
        self.problems = problems
        """Every problem found (up to a bound), when the error is about a file's content."""
        self.more = more
        """Problems found beyond the bound."""


class StoreError(AtttError):
    """The run store cannot be opened or does not hold what was asked for."""


class StoreWriteError(StoreError):
    """The run store refused a write in the middle of a scan (disk full, lock held too long)."""


class RunBusyError(AtttError):
    """Another live process runs this run, or a scan of the same inventory (exit code 4)."""


class ReportDirError(AtttError):
    """The report directory cannot take this run's bundle (it holds files of its own)."""
