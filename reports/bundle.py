"""Writes the chosen formats of one report into a report directory, then its manifest."""

from collections.abc import Sequence
from pathlib import Path
from typing import Final

from attt.reports.base import DEFAULT_CONTEXT, Lang, RenderContext, Renderer
from attt.reports.csv import CsvRenderer
from attt.reports.html import HtmlRenderer
from attt.reports.json import JsonRenderer
from attt.reports.junit import JunitRenderer
from attt.reports.manifest import SIGNATURE, load_signing_key, write_manifest
from attt.reports.pdf import PdfRenderer
from attt.reports.sarif import SarifRenderer
from attt.scanner.errors import ConfigError
from attt.scanner.models.report import Report

RENDERERS: Final[dict[str, Renderer]] = {
    r.format: r
    for r in (HtmlRenderer(), JsonRenderer(), JunitRenderer(), SarifRenderer(), CsvRenderer(), PdfRenderer())
}


def write_bundle(
    report: Report,
    formats: Sequence[str],
    out_dir: Path,
    lang: Lang,
    *,
    sign_key: Path | None = None,
    context: RenderContext = DEFAULT_CONTEXT,
) -> list[Path]:
    """Render each format into `out_dir`, then `manifest.json` (and `manifest.sig` with a key).

    `context` carries `--fail-on`, the earlier runs of the same inventory (trends) and the
    comparable earlier run (the change section). Report files of formats not asked for this
    time, and a signature left by an earlier bundle, are removed: the directory then holds
    exactly what the new manifest lists.
    """
    unknown = sorted(set(formats) - RENDERERS.keys())
    if unknown:
        raise ConfigError(f"--format: unknown format {', '.join(unknown)} (known: {', '.join(RENDERERS)})")
    chosen = [RENDERERS[name] for name in dict.fromkeys(formats)]
    # Load the key and render everything before writing anything: a failure leaves the directory as it was.
    key = None if sign_key is None else load_signing_key(sign_key)
    rendered = [(out_dir / r.filename, r.render(report, lang, context)) for r in chosen]
    out_dir.mkdir(parents=True, exist_ok=True)
    stale = {r.filename for r in RENDERERS.values()} - {r.filename for r in chosen} | {SIGNATURE}
    for name in sorted(stale):
        (out_dir / name).unlink(missing_ok=True)
    for path, body in rendered:
        path.write_bytes(body)
    files = [path for path, _ in rendered]
    return files + write_manifest(report, files, out_dir, key)
