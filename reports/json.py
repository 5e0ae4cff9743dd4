"""`report.json`: the machine-readable record, exactly the `Report` model.

Written compact, not indented: it is read by programs (`jq` shows it indented), and for a province
indentation is a third of the file and of the time taken to write it."""

from typing import ClassVar

from attt.reports.base import DEFAULT_CONTEXT, Lang, RenderContext
from attt.scanner.models.report import Report


class JsonRenderer:
    format: ClassVar[str] = "json"
    filename: ClassVar[str] = "report.json"

    def render(self, report: Report, lang: Lang, context: RenderContext = DEFAULT_CONTEXT) -> bytes:
        # The serializer's own bytes: a province's report is tens of MB, not to be copied twice.
        return report.__pydantic_serializer__.to_json(report) + b"\n"
