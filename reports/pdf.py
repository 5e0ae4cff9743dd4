"""`report.pdf`: the report to file, laid out by WeasyPrint from the HTML report's own view.

A filed report carries what the HTML report carries for an auditor: every failure in full, every
error and waiver once, in full, in its own section; passes and not-applicable findings counted,
never printed one by one; the rest in report.json. Every page carries its number, the run id and
the SHA-256 of the bundle's `report.json`, which `manifest.json` lists: a sheet found alone still
names the record it belongs to, and `attt verify` proves that record intact.

WeasyPrint holds every page of a document in memory until it writes the file: laid out whole, 150
systems took 474 MB and 1,500 systems would take 3.5 GB. A long report is therefore laid out in
parts (`parts`): the front (cover to trends), the details a few hundred lines at a time (owner by
owner, a large owner over several parts), and the back (rules, waivers, appendix), each part in
a child process of its own with a memory ceiling (RLIMIT_AS), one after the other. A last child
joins the parts (pypdf) and prints on each page its number out of the whole, which no part can
know. Every child shares one time limit; a report past a limit still ends as one line
(`PdfLimitError`) instead of the scan being killed by the machine.
"""

import errno
import hashlib
import io
import os
import re
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar, Final

from attt.reports.base import DEFAULT_CONTEXT, Lang, RenderContext, RenderLimitError
from attt.reports.html import SECTIONS, OwnerView, ReportView, SystemView, _asset, build_view, render_html
from attt.reports.json import JsonRenderer
from attt.scanner.errors import ConfigError
from attt.scanner.models.report import Report

MEMORY_LIMIT_MB: Final = 2048
"""Address space of the layout process, unless `$ATTT_PDF_MEMORY_MB` says otherwise."""
TIME_LIMIT: Final = 600
"""Seconds of wall time (and of CPU) for the layout, unless `$ATTT_PDF_SECONDS` says otherwise."""
_OUT_OF_MEMORY: Final = 3
"""The layout process's exit code when it ran out of its memory."""
PART_LINES: Final = 1500
"""Lines of the details one part lays out at most (`_lines`): about 135 systems of two hosts and
six failures or waivers each. A report of twice as many lines in all (its errors and waivers
counted too; some 500 MB laid out whole) is laid out whole: a part costs a process and a page break."""
_NO_NUMBER: Final = "@page { @bottom-right { content: none !important } }"
"""A part's own page numbers would restart at 1: the join prints them instead (a user sheet, so
it must be important to beat the report's own)."""


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

    def __init__(
        self, memory_limit: int | None = None, time_limit: float | None = None, part_lines: int = PART_LINES
    ) -> None:
        """Limits in bytes and seconds; None reads them from the environment when rendering."""
        self.memory_limit = memory_limit
        self.time_limit = time_limit
        self.part_lines = part_lines

    def render(self, report: Report, lang: Lang, context: RenderContext = DEFAULT_CONTEXT) -> bytes:
        view = build_view(report, lang, context, medium="pdf")
        record = hashlib.sha256(JsonRenderer().render(report, lang, context)).hexdigest()
        footer = f"attt · {view.run.run_id} · {view.t['report_json_sha']}: {record}"
        title = f"{view.t['report_title']} — {view.run.province} — {view.run.run_id}"
        memory = self.memory_limit or _limit("ATTT_PDF_MEMORY_MB", MEMORY_LIMIT_MB) << 20
        return lay_out(
            [render_html(p.view, footer, p.sections, p.continued) for p in parts(view, self.part_lines)],
            title,
            memory,
            self.time_limit or _limit("ATTT_PDF_SECONDS", TIME_LIMIT),
        )


@dataclass(frozen=True, slots=True)
class Part:
    """One page to lay out: `render_html`'s arguments beside the footer."""

    view: ReportView
    sections: Collection[str]
    continued: frozenset[int] | None = None


def _lines(system: SystemView) -> int:
    """What a system costs the layout: its heading, and each host's heading, note and failures."""
    return 1 + sum(2 + len(host.shown) for host in system.hosts)


def parts(view: ReportView, budget: int = PART_LINES) -> list[Part]:
    """The parts to lay out, in the order of the report: the whole page if it is within twice the
    `budget`; otherwise the front, the details in runs of at most `budget` lines (a system is never
    cut), the rules, the waivers and the appendix, each table whole in its part."""
    runs: list[list[tuple[OwnerView, SystemView | None]]] = [[]]
    load = 0
    for owner in view.owners:
        for system in owner.systems or (None,):
            lines = 1 if system is None else _lines(system)
            if load and load + lines > budget:
                runs.append([])
                load = 0
            runs[-1].append((owner, system))
            load += lines
    lines = (
        sum(_lines(s) for o in view.owners for s in o.systems) + len(view.error_groups) + len(view.waivers)
    )
    if lines <= 2 * budget:
        return [Part(view, SECTIONS)]
    details: list[Part] = []
    begun: set[int] = set()
    for run in runs:
        owners: dict[int, tuple[OwnerView, list[SystemView]]] = {}
        for owner, system in run:
            owners.setdefault(owner.index, (owner, []))[1].extend(() if system is None else (system,))
        continued = None if not details else frozenset(owners.keys() & begun)
        begun |= owners.keys()
        subset = tuple(replace(owner, systems=tuple(systems)) for owner, systems in owners.values())
        details.append(Part(replace(view, owners=subset), {"details"}, continued))
    return [
        Part(view, {"front"}),
        *details,
        *(Part(view, {section}) for section in ("rules", "waivers", "appendix")),
    ]


def _limit(variable: str, default: int) -> int:
    value = os.environ.get(variable, "")
    if not value:
        return default
    if not value.isdigit() or int(value) == 0:
        raise ConfigError(f"${variable} must be a positive whole number, not {value!r}")
    return int(value)


def lay_out(pages: Sequence[bytes], title: str, memory_limit: int, time_limit: float) -> bytes:
    """The PDF of `pages`, one part each, laid out one after the other by child processes, each
    within `memory_limit` bytes of address space, all within `time_limit` seconds; PdfLimitError
    past either, or if the layout fails otherwise."""
    deadline = time.monotonic() + time_limit
    if len(pages) == 1:
        return _child_run(["whole", title], pages[0], memory_limit, deadline, time_limit)
    with tempfile.TemporaryDirectory(prefix="attt-pdf-") as scratch:
        files = []
        for number, page in enumerate(pages):
            files.append(Path(scratch, f"part-{number:04d}.pdf"))
            page, stubs = _stubbed(page)
            files[-1].with_suffix(STUBS).write_text("\n".join(stubs), encoding="utf-8")
            files[-1].write_bytes(_child_run(["part", title], page, memory_limit, deadline, time_limit))
        return _child_run(["join", title, *map(str, files)], b"", memory_limit, deadline, time_limit)


STUBS: Final = ".stubs"
"""Beside each part's PDF: the anchors it only stands in for, one a line."""


def _stubbed(page: bytes) -> tuple[bytes, list[str]]:
    """The part's page with an empty anchor for each link to another part, and those anchors.

    WeasyPrint drops a link whose anchor is not in the page: standing in for it keeps the link
    (to the name), and the join points the name at the part that has it."""
    text = page.decode("utf-8")
    # Our own markup, attribute values escaped alike in `href` and `id`: the same text is the same anchor.
    stubs = sorted(set(re.findall(r' href="#([^"]+)"', text)) - set(re.findall(r' id="([^"]+)"', text)))
    anchors = "".join(f'<div id="{name}"></div>' for name in stubs)
    return text.replace("</body>", f"{anchors}</body>", 1).encode("utf-8"), stubs


def _child_run(args: list[str], page: bytes, memory_limit: int, deadline: float, time_limit: float) -> bytes:
    """One child's output (a PDF), within the memory limit and the time left before `deadline`."""
    too_long = f"report.pdf: the layout took longer than its limit of {time_limit:g} s ($ATTT_PDF_SECONDS)"
    left = deadline - time.monotonic()
    if left <= 0:
        raise PdfLimitError(too_long)
    try:
        done = subprocess.run(  # our own interpreter and module, no shell
            [sys.executable, "-m", "attt.reports.pdf", str(memory_limit), str(int(left) + 1), *args],
            input=page,
            capture_output=True,
            timeout=left,
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


def _pdf(page: str, title: str, numbered: bool) -> bytes:
    """`page` laid out by WeasyPrint, numbered by its own pages or not at all."""
    # Imported here: WeasyPrint loads Pango through cffi, which costs every other command time.
    from weasyprint import CSS, HTML

    sheets = [] if numbered else [CSS(string=_NO_NUMBER)]
    pdf: bytes = HTML(string=page, base_url=None, url_fetcher=fetch_nothing()).write_pdf(
        stylesheets=sheets, metadata={"title": title}
    )
    return pdf


def _join(files: Sequence[str], title: str) -> bytes:
    """The parts as one PDF, each page numbered out of all, as the report's own style numbers them."""
    from pypdf import PdfReader, PdfWriter
    from pypdf.generic import ArrayObject, NameObject, NumberObject, TextStringObject

    joined = PdfWriter()
    anchors: dict[str, ArrayObject] = {}
    for file in files:
        part = PdfReader(file)
        first = len(joined.pages)
        joined.append(part)  # with its bookmarks, and its links while some part names their anchors
        stubs = set(Path(file).with_suffix(STUBS).read_text(encoding="utf-8").split("\n"))
        for name, dest in part.named_destinations.items():
            at = part.get_destination_page_number(dest)
            if name not in stubs and at is not None:
                where = joined.pages[first + at].indirect_reference
                anchors[name] = ArrayObject([where, NameObject("/XYZ"), dest.left, dest.top, NumberObject(0)])
    # Each name as the part that has it places it (pypdf keeps the first part's, maybe a stub's).
    names = joined.get_named_dest_root()
    del names[:]
    for name in sorted(anchors):
        names.extend([TextStringObject(name), anchors[name]])
    total = len(joined.pages)
    # Pages empty but for the report's page rule, whose footer corner numbers them "n / total",
    # and transparent, to lie over the parts' pages without hiding them.
    blank = '<div style="break-before: page"></div>' * (total - 1)
    style = f"{_asset('report.css').text} html {{ background: none }}"
    page = f"<!DOCTYPE html><html><head><style>{style}</style></head><body><div></div>{blank}"
    numbers = PdfReader(io.BytesIO(_pdf(page, title, numbered=True))).pages
    if len(numbers) != total:
        raise RuntimeError(f"the page numbers came to {len(numbers)} pages, not {total}")
    for sheet, number in zip(joined.pages, numbers, strict=True):
        sheet.merge_page(number)
        sheet.compress_content_streams()  # merged, the drawing is left uncompressed: ten times the bytes
    joined.add_metadata({**(PdfReader(files[0]).metadata or {}), "/Title": title})
    out = io.BytesIO()
    joined.write(out)
    return out.getvalue()


def _child(memory_limit: int, cpu_seconds: int, mode: str, title: str, files: Sequence[str]) -> int:
    """In a layout process, within the limits: a page from stdin laid out ("whole", or "part"
    without page numbers), or the `files` of the parts joined ("join"); the PDF to stdout."""
    resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 5))
    try:
        if mode == "join":
            pdf = _join(files, title)
        else:
            pdf = _pdf(sys.stdin.buffer.read().decode("utf-8"), title, numbered=mode == "whole")
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
    sys.exit(_child(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5:]))
