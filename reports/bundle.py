"""Writes the chosen formats of one report into a report directory, then its manifest.

A report directory holds one bundle and nothing else: a directory with files of its own is
refused (before the scan, and again when writing), so `attt verify` never meets a stranger and
the scan never lists someone else's file as its report. Every file is written to a temporary
file in the directory and renamed into place, so a reader sees the old file or the whole new
one, and a symlink planted in the directory is replaced, never written through.
"""

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Final, cast

from attt.reports.base import DEFAULT_CONTEXT, Lang, PieceRenderer, RenderContext, Renderer, RenderLimitError
from attt.reports.manifest import (
    MANIFEST,
    SIGNATURE,
    TMP_SUFFIX,
    StagedFile,
    load_signing_key,
    stage_file,
    write_manifest,
)
from attt.scanner.errors import ConfigError, ReportDirError
from attt.scanner.models.report import Report

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

FORMATS: Final = {
    "html": ("attt.reports.html", "HtmlRenderer", "report.html"),
    "json": ("attt.reports.json", "JsonRenderer", "report.json"),
    "junit": ("attt.reports.junit", "JunitRenderer", "report.junit.xml"),
    "sarif": ("attt.reports.sarif", "SarifRenderer", "report.sarif"),
    "csv": ("attt.reports.csv", "CsvRenderer", "report.csv"),
    "pdf": ("attt.reports.pdf", "PdfRenderer", "report.pdf"),
}
"""`--format` -> (module, renderer class, file it writes), each renderer imported when first used:
the HTML templates and the spreadsheet code are a fifth of the start-up of a scan that writes
JSON only. A test checks each class says the same format and file."""


class _Renderers(Mapping[str, Renderer]):
    """The renderers by format, made on first use."""

    def __init__(self) -> None:
        self._made: dict[str, Renderer] = {}

    def __getitem__(self, name: str) -> Renderer:
        if name not in self._made:
            module, renderer, _ = FORMATS[name]
            self._made[name] = cast(Renderer, getattr(import_module(module), renderer)())
        return self._made[name]

    def __contains__(self, name: object) -> bool:
        return name in FORMATS  # without importing it

    def __iter__(self) -> Iterator[str]:
        return iter(FORMATS)

    def __len__(self) -> int:
        return len(FORMATS)


RENDERERS: Final[Mapping[str, Renderer]] = _Renderers()
_BUNDLE_FILES: Final = frozenset({file for _, _, file in FORMATS.values()} | {MANIFEST, SIGNATURE})
INDEX_HTML: Final = "index.html"
INDEX_JSON: Final = "index.json"
"""The owners' index beside their packs (`attt.reports.owners`): named here, so that checking a
report directory before the scan does not import the HTML templates the owners' index needs."""


def check_report_dir(out_dir: Path) -> None:
    """Refuse (ReportDirError) a report directory that is not a directory or holds anything but
    an earlier attt bundle (or owner packs and their index): another file, a folder, a symlink."""
    if not out_dir.exists() and not out_dir.is_symlink():
        return
    if not out_dir.is_dir():
        raise ReportDirError(f"--out {out_dir} is not a directory")
    foreign = sorted(
        entry.name
        for entry in out_dir.iterdir()
        if entry.is_symlink()
        or (entry.is_dir() and not _holds_only_a_bundle(entry))
        or (entry.is_file() and entry.name not in {*_BUNDLE_FILES, INDEX_HTML, INDEX_JSON}
            and not entry.name.endswith(TMP_SUFFIX))
        or not (entry.is_file() or entry.is_dir())
    )  # fmt: skip
    if foreign:
        more = f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
        raise ReportDirError(
            f"--out {out_dir} holds files that are not part of an attt report"
            f" ({', '.join(foreign[:3])}{more}): give a new or empty directory"
        )


def _holds_only_a_bundle(directory: Path) -> bool:
    """An owner's pack directory of an earlier run: bundle files only."""
    return all(
        e.is_file() and not e.is_symlink() and (e.name in _BUNDLE_FILES or e.name.endswith(TMP_SUFFIX))
        for e in directory.iterdir()
    )


def write_bundle(
    report: Report,
    formats: Sequence[str],
    out_dir: Path,
    lang: Lang,
    *,
    sign_key: Path | None = None,
    context: RenderContext = DEFAULT_CONTEXT,
) -> list[Path]:
    """Render each format into `out_dir`, then `manifest.json` (and `manifest.sig` with a key):
    `render_bundle`, then `RenderedBundle.write`.

    `context` carries `--fail-on`, the earlier runs of the same inventory (trends) and the
    comparable earlier run (the change section). Report files of formats not asked for this
    time, and a signature left by an earlier bundle, are removed: the directory then holds
    exactly what the new manifest lists.

    A format that cannot be rendered within its limits (RenderLimitError: a PDF too large for
    the machine) does not cost the others: they and the manifest are written, then the error is
    raised, naming what is missing and what was written.
    """
    return render_bundle(report, formats, lang, sign_key=sign_key, context=context).write(out_dir)


@dataclass(frozen=True)
class RenderedBundle:
    """A bundle rendered in memory, not written yet: `attt scan` renders while the store writes
    the run, and writes the files once the store holds it."""

    report: Report
    files: tuple[tuple[str, bytes | Sequence[bytes]], ...]
    over: tuple[RenderLimitError, ...]
    """Formats that could not be rendered within their limits."""
    key: "Ed25519PrivateKey | None"

    def write(self, out_dir: Path) -> list[Path]:
        """Write the files into `out_dir`, then the manifest (`stage`, then `StagedBundle.publish`)."""
        return self.stage(out_dir).publish()

    def stage(self, out_dir: Path) -> "StagedBundle":
        """Write every file under a temporary name in `out_dir`, none in place yet: `attt scan`
        writes while the store closes the run, and puts them in place once it has."""
        check_report_dir(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        staged: list[StagedFile] = []
        try:
            for name, body in self.files:
                staged.append(stage_file(out_dir, name, body))
        except BaseException:
            for file in staged:
                file.discard()
            raise
        return StagedBundle(self, out_dir, tuple(staged))


@dataclass(frozen=True)
class StagedBundle:
    """A rendered bundle's files written in its directory under temporary names."""

    rendered: RenderedBundle
    out_dir: Path
    files: tuple[StagedFile, ...]

    def publish(self) -> list[Path]:
        """Put the files in place, then write the manifest; raise RenderLimitError after, when a
        format was over its limit."""
        out_dir = self.out_dir
        # A format over its limit is written by none, listed by none: an earlier run's file of it
        # goes too, so the directory holds exactly what the new manifest lists and `attt verify`
        # holds; so do temporary files a killed write left (not this bundle's own).
        stale = _BUNDLE_FILES - {file.target.name for file in self.files}
        own = {file.temporary.name for file in self.files}
        for entry in out_dir.iterdir():
            if entry.name in stale or (entry.name.endswith(TMP_SUFFIX) and entry.name not in own):
                entry.unlink(missing_ok=True)  # a symlink is removed, never followed
        try:
            for file in self.files:
                file.publish()
        except BaseException:
            self.discard()
            raise
        files = {file.target: file.entry for file in self.files}
        written = [*files, *write_manifest(self.rendered.report, files, out_dir, self.rendered.key)]
        if self.rendered.over:
            raise RenderLimitError(
                f"{'; '.join(str(exc) for exc in self.rendered.over)}; not written, the rest of the"
                f" bundle is ({', '.join(path.name for path in written)})"
            )
        return written

    def discard(self) -> None:
        for file in self.files:
            file.discard()


def render_bundle(
    report: Report,
    formats: Sequence[str],
    lang: Lang,
    *,
    sign_key: Path | None = None,
    context: RenderContext = DEFAULT_CONTEXT,
) -> RenderedBundle:
    """Load the key and render every format, writing nothing: a failure leaves a report directory
    as it was. Raises the first format's RenderLimitError when none could be rendered."""
    unknown = sorted(set(formats) - RENDERERS.keys())
    if unknown:
        raise ConfigError(f"--format: unknown format {', '.join(unknown)} (known: {', '.join(RENDERERS)})")
    chosen = [RENDERERS[name] for name in dict.fromkeys(formats)]
    key = None if sign_key is None else load_signing_key(sign_key)
    rendered: list[tuple[str, bytes | Sequence[bytes]]] = []
    over: list[RenderLimitError] = []
    for renderer in chosen:
        try:
            rendered.append((renderer.filename, _rendered(renderer, report, lang, context)))
        except RenderLimitError as exc:
            over.append(exc)
    if not rendered:
        raise over[0]
    return RenderedBundle(report, tuple(rendered), tuple(over), key)


def _rendered(
    renderer: Renderer, report: Report, lang: Lang, context: RenderContext
) -> bytes | Sequence[bytes]:
    if isinstance(renderer, PieceRenderer):
        return renderer.pieces(report, lang, context)
    return renderer.render(report, lang, context)
