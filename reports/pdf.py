"""`report.pdf`: the report to file, laid out by WeasyPrint from the HTML report's own view.

A filed report carries what the HTML report carries for an auditor: every failure in full, every
error and waiver once, in full, in its own section; passes and not-applicable findings counted,
never printed one by one; the rest in report.json. Every page carries its number, the run id and
the SHA-256 of the bundle's `report.json`, which `manifest.json` lists: a sheet found alone still
names the record it belongs to, and `attt verify` proves that record intact.

WeasyPrint holds every page of a document in memory until it writes the file, and its time grows
with the pages: a province of 1,500 systems once took 7 minutes and 4 GB. It therefore lays out
the page in a child process with a memory ceiling (RLIMIT_AS) and a time limit, so a report past
them ends as one line (`PdfLimitError`) instead of the scan being killed by the machine.
"""

import errno
import hashlib
import os
import resource
import signal
import subprocess
import sys
from typing import ClassVar, Final

from attt.reports.base import DEFAULT_CONTEXT, Lang, RenderContext, RenderLimitError
from attt.reports.html import build_view, render_html
from attt.reports.json import JsonRenderer
from attt.scanner.errors import ConfigError
from attt.scanner.models.report import Report

MEMORY_LIMIT_MB: Final = 2048
"""Address space of the layout process, unless `$ATTT_PDF_MEMORY_MB` says otherwise."""
TIME_LIMIT: Final = 600
"""Seconds of wall time (and of CPU) for the layout, unless `$ATTT_PDF_SECONDS` says otherwise."""
_OUT_OF_MEMORY: Final = 3
"""The layout process's exit code when it ran out of its memory."""


class PdfLimitError(RenderLimitError):
    """report.pdf could not be laid out within its memory or time limit."""


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

    def __init__(self, memory_limit: int | None = None, time_limit: float | None = None) -> None:
        """Limits in bytes and seconds; None reads them from the environment when rendering."""
        self.memory_limit = memory_limit
        self.time_limit = time_limit

    def render(self, report: Report, lang: Lang, context: RenderContext = DEFAULT_CONTEXT) -> bytes:
        view = build_view(report, lang, context, medium="pdf")
        record = hashlib.sha256(JsonRenderer().render(report, lang, context)).hexdigest()
        footer = f"attt · {view.run.run_id} · {view.t['report_json_sha']}: {record}"
        title = f"{view.t['report_title']} — {view.run.province} — {view.run.run_id}"
        memory = self.memory_limit or _limit("ATTT_PDF_MEMORY_MB", MEMORY_LIMIT_MB) << 20
        return lay_out(
            render_html(view, footer=footer),
            title,
            memory,
            self.time_limit or _limit("ATTT_PDF_SECONDS", TIME_LIMIT),
        )


def _limit(variable: str, default: int) -> int:
    value = os.environ.get(variable, "")
    if not value:
        return default
    if not value.isdigit() or int(value) == 0:
        raise ConfigError(f"${variable} must be a positive whole number, not {value!r}")
    return int(value)


def lay_out(page: bytes, title: str, memory_limit: int, time_limit: float) -> bytes:
    """The PDF of `page`, laid out by a child process within `memory_limit` bytes of address space
    and `time_limit` seconds; PdfLimitError past either, or if the layout fails otherwise."""
    too_long = f"report.pdf: the layout took longer than its limit of {time_limit:g} s ($ATTT_PDF_SECONDS)"
    try:
        done = subprocess.run(  # our own interpreter and module, no shell
            [sys.executable, "-m", "attt.reports.pdf", str(memory_limit), str(int(time_limit) + 1), title],
            input=page,
            capture_output=True,
            timeout=time_limit,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise PdfLimitError(too_long) from None
    if done.returncode == 0 and done.stdout.startswith(b"%PDF"):
        return done.stdout
    if done.returncode in (-signal.SIGXCPU, -signal.SIGKILL):
        raise PdfLimitError(too_long)
    memory = f"{memory_limit >> 20} MB ($ATTT_PDF_MEMORY_MB)"
    if done.returncode == _OUT_OF_MEMORY:
        raise PdfLimitError(f"report.pdf: the layout needed more than its limit of {memory} of memory")
    if done.returncode < 0:
        # Pango and cairo do not raise when an allocation fails under RLIMIT_AS: they crash.
        raise PdfLimitError(
            f"report.pdf: the layout stopped ({signal.Signals(-done.returncode).name}),"
            f" most likely for want of memory past its limit of {memory}"
        )
    said = done.stderr.decode("utf-8", "replace").strip().splitlines()
    raise PdfLimitError(
        f"report.pdf: the layout failed (exit {done.returncode}{': ' + said[-1][:200] if said else ''})"
    )


def _child(memory_limit: int, cpu_seconds: int, title: str) -> int:
    """In the layout process: the page from stdin, the PDF to stdout, within the limits."""
    resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 5))
    try:
        # Imported here: WeasyPrint loads Pango through cffi, which costs every other command time.
        from weasyprint import HTML

        page = sys.stdin.buffer.read().decode("utf-8")
        pdf = HTML(string=page, base_url=None, url_fetcher=fetch_nothing()).write_pdf(
            metadata={"title": title}
        )
    except MemoryError:
        return _OUT_OF_MEMORY
    except OSError as exc:
        # Under RLIMIT_AS an import can fail to map a file (ENOMEM) before any layout starts.
        if exc.errno == errno.ENOMEM:
            return _OUT_OF_MEMORY
        raise
    sys.stdout.buffer.write(pdf)
    return 0


if __name__ == "__main__":
    sys.exit(_child(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]))
