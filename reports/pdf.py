"""`report.pdf`: the report to file, laid out by WeasyPrint from the HTML report's own view.

A filed report lists what needs action (failures, errors, waivers) and the appendix of what was
checked; passes and not-applicable findings are counted, never printed one by one, so a province
fits in tens of pages. Every page carries its number, the run id and the SHA-256 of the bundle's
`report.json`, which `manifest.json` lists: a sheet found alone still names the record it
belongs to, and `attt verify` proves that record intact.
"""

import hashlib
from typing import ClassVar

from attt.reports.base import DEFAULT_CONTEXT, Lang, RenderContext
from attt.reports.html import build_view, render_html
from attt.reports.json import JsonRenderer
from attt.scanner.models.report import Report


def fetch_nothing() -> object:
    """WeasyPrint's URL fetcher for the report: it refuses every URL. The page is whole in itself
    (inline style, no image or font by URL), and even with no base URL WeasyPrint's default
    fetcher would load an absolute http:// or file:// reference, were target or inventory text
    ever to become markup."""
    from weasyprint.urls import URLFetcher

    return URLFetcher(allowed_protocols=())


class PdfRenderer:
    format: ClassVar[str] = "pdf"
    filename: ClassVar[str] = "report.pdf"

    def render(self, report: Report, lang: Lang, context: RenderContext = DEFAULT_CONTEXT) -> bytes:
        # Imported here: WeasyPrint loads Pango through cffi, which costs every other command time.
        from weasyprint import HTML

        view = build_view(report, lang, context, medium="pdf")
        record = hashlib.sha256(JsonRenderer().render(report, lang, context)).hexdigest()
        footer = f"attt · {view.run.run_id} · {view.t['report_json_sha']}: {record}"
        page = render_html(view, footer=footer)
        pdf: bytes = HTML(string=page.decode("utf-8"), base_url=None, url_fetcher=fetch_nothing()).write_pdf(
            metadata={"title": f"{view.t['report_title']} — {view.run.province} — {view.run.run_id}"}
        )
        return pdf
