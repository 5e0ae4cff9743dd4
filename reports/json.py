"""`report.json`: the machine-readable record, exactly the `Report` model.

Written compact, not indented: it is read by programs (`jq` shows it indented), and for a province
indentation is a third of the file and of the time taken to write it.

The findings, nine tenths of a province's bytes, come from `FindingCodec`: each finding as the
scan serialised it for the store, with its rule's text (serialised once per rule) spliced in. The
objects are the model's; in each finding the rule's three text fields come last."""

from typing import ClassVar

from attt.reports.base import DEFAULT_CONTEXT, Lang, RenderContext
from attt.scanner.models.finding import FindingCodec
from attt.scanner.models.report import Report

_SPLICED: set[str] = {"findings", "summary"}


class JsonRenderer:
    format: ClassVar[str] = "json"
    filename: ClassVar[str] = "report.json"

    def render(self, report: Report, lang: Lang, context: RenderContext = DEFAULT_CONTEXT) -> bytes:
        return b"".join(self.pieces(report, lang, context))

    def pieces(self, report: Report, lang: Lang, context: RenderContext = DEFAULT_CONTEXT) -> list[bytes]:
        head = report.__pydantic_serializer__.to_json(report, exclude=_SPLICED)
        summary = report.summary.__pydantic_serializer__.to_json(report.summary)
        findings = (context.codec or FindingCodec()).report_json(report.findings)
        return [head[:-1], b',"findings":', *findings, b',"summary":', summary, b"}\n"]
