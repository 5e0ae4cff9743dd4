"""The renderer contract: a pure function of the report, a language and what the run asks of it."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Final, Literal, Protocol, runtime_checkable

from attt.scanner.changes import Comparison
from attt.scanner.errors import AtttError
from attt.scanner.models.base import Severity
from attt.scanner.models.finding import FindingCodec
from attt.scanner.models.report import Report

Lang = Literal["vi", "en"]


@dataclass(frozen=True, slots=True)
class RenderContext:
    """What a report shows beyond the run itself."""

    fail_on: Severity | None = Severity.LOW
    """`--fail-on`: failures below it are reported but do not fail a CI job (JUnit, SARIF) or the
    verdict; None fails on nothing."""
    history: tuple[Report, ...] = ()
    """Earlier runs of the same inventory, oldest first: trends and "failing since"."""
    baseline: Comparison | None = None
    """The comparable earlier run (or why there is none): the change section."""
    codec: FindingCodec | None = None
    """The findings as the scan already serialised them for the store (report.json reuses them)."""


DEFAULT_CONTEXT: Final = RenderContext()


class RenderLimitError(AtttError):
    """One format could not be rendered within the limits set for it (a PDF past its memory or
    time): the bundle still writes the other formats, and says which one is missing and why."""


class Renderer(Protocol):
    format: ClassVar[str]
    """Name used by `--format`."""
    filename: ClassVar[str]
    """File written into the report directory."""

    def render(self, report: Report, lang: Lang, context: RenderContext = DEFAULT_CONTEXT) -> bytes: ...


@runtime_checkable
class PieceRenderer(Renderer, Protocol):
    """A renderer whose output the bundle may write in the pieces it was made of."""

    def pieces(self, report: Report, lang: Lang, context: RenderContext = DEFAULT_CONTEXT) -> Sequence[bytes]:
        """The same bytes as `render`, not joined."""
        ...
