"""report.pdf fetches nothing, whatever the inventory, the policies or the targets wrote: WeasyPrint
follows <img>, <link>, <object>, CSS url() and @import, so text that became markup would make
the report generator reach the network or read files. Every text field here carries such
references to a listener on 127.0.208.1; the page built for WeasyPrint must hold no element or
style that loads anything, and rendering must not connect."""

import socket
import threading
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest

from attt.reports.html import build_view, render_html
from attt.reports.pdf import PdfRenderer
from attt.scanner.models.base import Text
from attt.scanner.models.report import Report
from tests import factories as F

LISTENER = "127.0.208.1"
FETCHING = {"img", "link", "object", "embed", "iframe", "frame", "image", "video", "audio", "source",
            "base", "use", "input"}  # fmt: skip
"""Elements through which an HTML or SVG renderer may load something (the page's own <meta>,
inline <script> and <svg> bars load nothing: no element may carry `src`, checked apart)."""


def payload(port: int) -> str:
    url = f"http://{LISTENER}:{port}"
    return (
        f'<img src="{url}/img"><link rel="stylesheet" href="{url}/link"><object data="{url}/object">'
        f"<style>@import url({url}/import); body {{ background: url({url}/background) }}</style>"
        f'<iframe src="file:///etc/passwd"></iframe><svg><image href="{url}/svg"/></svg>'
        f'"><base href="{url}/"><p style="background:url({url}/style)">'
    )


def everywhere(text: str, port: int) -> Report:
    """The text in every field the inventory, a policy or a target fills."""
    hostile = F.hostile_report([text])
    short = f'<img src="http://{LISTENER}:{port}/n"><link rel=stylesheet href="http://{LISTENER}:{port}/s">'
    system = F.system(name=short, owner=short)  # names are bounded (300 characters)
    reference = F.reference(text, text, url=f"http://{LISTENER}:{port}/reference")
    findings = [
        f.model_copy(
            update={
                "title": Text(vi=text, en=text),
                "remediation": Text(vi=text, en=text),
                "references": (reference,),
            }
        )
        for f in hostile.findings
    ]
    return F.report(findings, [system], hostile.observations, province=short)


class _Markup(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.links: set[str] = set()
        self.styles: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self._in_style = tag == "style"
        for name, value in attrs:
            assert name not in ("src", "srcset", "data", "background", "poster", "style"), (tag, name, value)
            assert (tag, name, (value or "").lower()) != ("meta", "http-equiv", "refresh")
            if name == "href":
                self.links.add(value or "")

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.styles.append(data)
            self._in_style = False


@pytest.fixture
def listener() -> Iterator[tuple[socket.socket, list[bytes]]]:
    server = socket.socket()
    server.bind((LISTENER, 0))
    server.listen(8)
    server.settimeout(0.2)
    seen: list[bytes] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(2)
                seen.append(conn.recv(200))

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server, seen
    stop.set()
    thread.join(timeout=5)
    server.close()


def test_the_page_for_the_pdf_holds_no_element_that_loads_anything(tmp_path: Path) -> None:
    report = everywhere(payload(9), 9)
    page = render_html(build_view(report, "vi", medium="pdf"), footer=payload(9))
    markup = _Markup()
    markup.feed(page.decode("utf-8"))
    assert not markup.tags & FETCHING, markup.tags & FETCHING
    assert len(markup.styles) == 1 and "url(" not in markup.styles[0] and "@import" not in markup.styles[0]
    # links are PDF annotations, never fetched: in-page anchors and the policy's reference URL
    assert {link for link in markup.links if not link.startswith("#")} <= {f"http://{LISTENER}:9/reference"}


def test_rendering_the_pdf_connects_nowhere(listener: tuple[socket.socket, list[bytes]]) -> None:
    server, seen = listener
    port = server.getsockname()[1]
    pdf = PdfRenderer().render(everywhere(payload(port), port), "en")
    assert pdf.startswith(b"%PDF")
    assert seen == []


def test_markup_that_escaped_would_still_load_nothing(listener: tuple[socket.socket, list[bytes]]) -> None:
    """Defence in depth: with `base_url=None` WeasyPrint's own fetcher still loads absolute URLs
    (http, file, data); attt's refuses every one, the page needing nothing beyond itself."""
    from weasyprint import HTML

    from attt.reports.pdf import fetch_nothing

    server, seen = listener
    page = f"<p>x</p>{payload(server.getsockname()[1])}"
    assert HTML(string=page, base_url=None, url_fetcher=fetch_nothing()).write_pdf().startswith(b"%PDF")
    assert seen == []
