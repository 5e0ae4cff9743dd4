"""Writes the chosen formats of one report into a report directory."""

from collections.abc import Sequence
from pathlib import Path

from reports.base import Lang, Renderer
from reports.json import JsonRenderer
from scanner.models.report import Report

RENDERERS: dict[str, Renderer] = {r.format: r for r in (JsonRenderer(),)}


def write_bundle(report: Report, formats: Sequence[str], out_dir: Path, lang: Lang) -> list[Path]:
    """Render each format into `out_dir` and return the written paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name in formats:
        renderer = RENDERERS[name]
        path = out_dir / renderer.filename
        path.write_bytes(renderer.render(report, lang))
        written.append(path)
    return written
