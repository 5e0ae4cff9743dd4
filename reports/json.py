"""`report.json`: the machine-readable record, exactly the `Report` model."""

from typing import ClassVar

from attt.reports.base import DEFAULT_CONTEXT, Lang, RenderContext
from attt.scanner.models.report import Report


class JsonRenderer:
    format: ClassVar[str] = "json"
    filename: ClassVar[str] = "report.json"

    def render(self, report: Report, lang: Lang, context: RenderContext = DEFAULT_CONTEXT) -> bytes:
        return report.model_dump_json(indent=2).encode("utf-8") + b"\n"
