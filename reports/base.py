"""The renderer contract: a pure function of the report and a language."""

from typing import ClassVar, Literal, Protocol

from attt.scanner.models.report import Report

Lang = Literal["vi", "en"]


class Renderer(Protocol):
    format: ClassVar[str]
    """Name used by `--format`."""
    filename: ClassVar[str]
    """File written into the report directory."""

    def render(self, report: Report, lang: Lang) -> bytes: ...
