"""Writes the chosen formats of one report into a report directory, then its manifest."""

from collections.abc import Sequence
from pathlib import Path
from typing import Final

from attt.reports.base import Lang, Renderer
from attt.reports.csv import CsvRenderer
from attt.reports.html import HtmlRenderer
from attt.reports.json import JsonRenderer
from attt.reports.junit import JunitRenderer
from attt.reports.manifest import SIGNATURE, load_signing_key, write_manifest
from attt.reports.sarif import SarifRenderer
from attt.scanner.changes import Comparison
from attt.scanner.errors import ConfigError
from attt.scanner.models.report import Report

RENDERERS: Final[dict[str, Renderer]] = {
    r.format: r for r in (HtmlRenderer(), JsonRenderer(), JunitRenderer(), SarifRenderer(), CsvRenderer())
}


def write_bundle(
    report: Report,
    formats: Sequence[str],
    out_dir: Path,
    lang: Lang,
    *,
    sign_key: Path | None = None,
    baseline: Comparison | None = None,
) -> list[Path]:
    """Render each format into `out_dir`, then `manifest.json` (and `manifest.sig` with a key).

    `baseline`, the comparable earlier run (or why there is none), adds "change since the
    previous run" to the HTML. Report files of formats not asked for this time, and a signature
    left by an earlier bundle, are removed: the directory then holds exactly what the new
    manifest lists.
    """
    unknown = sorted(set(formats) - RENDERERS.keys())
    if unknown:
        raise ConfigError(f"--format: unknown format {', '.join(unknown)} (known: {', '.join(RENDERERS)})")
    renderers = RENDERERS if baseline is None else RENDERERS | {"html": HtmlRenderer(baseline)}
    chosen = [renderers[name] for name in dict.fromkeys(formats)]
    # Load the key and render everything before writing anything: a failure leaves the directory as it was.
    key = None if sign_key is None else load_signing_key(sign_key)
    rendered = [(out_dir / r.filename, r.render(report, lang)) for r in chosen]
    out_dir.mkdir(parents=True, exist_ok=True)
    stale = {r.filename for r in RENDERERS.values()} - {r.filename for r in chosen} | {SIGNATURE}
    for name in sorted(stale):
        (out_dir / name).unlink(missing_ok=True)
    for path, body in rendered:
        path.write_bytes(body)
    files = [path for path, _ in rendered]
    return files + write_manifest(report, files, out_dir, key)
