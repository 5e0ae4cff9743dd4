"""What renderers add to the one sanitiser (`attt.scanner.text`): values shown as text, and
spreadsheet cells that are never evaluated."""

import json
from typing import Any

from attt.scanner.text import clean, clean_line

# A spreadsheet treats a cell starting with one of these as a formula (or DDE) to evaluate.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
MAX_CELL_CHARS = 32_767
"""The most one cell of Excel or LibreOffice Calc holds: their import cuts a longer one short,
without saying where, or refuses the file."""


def as_text(value: Any) -> str:
    """A JSON-compatible value (evidence, observation data) as readable, cleaned text."""
    if isinstance(value, str):
        return clean(value)
    return clean(json.dumps(value, ensure_ascii=False, sort_keys=True, default=str))


def spreadsheet_cell(text: str) -> str:
    """A cleaned one-line cell that a spreadsheet shows as text and never evaluates, and holds
    whole: a longer one (the evidence of a hostile server) says how much is left out, and where
    it is kept."""
    cell = clean_line(text)
    cell = "'" + cell if text.startswith(_FORMULA_START) else cell
    if len(cell) <= MAX_CELL_CHARS:
        return cell
    kept = MAX_CELL_CHARS - 80
    return f"{cell[:kept]}… (+{len(cell) - kept} ký tự / characters: report.json)"


def clean_json(value: Any) -> Any:
    """A JSON-compatible value with every string in it (keys too) cleaned."""
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, dict):
        return {clean(str(k)): clean_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_json(v) for v in value]
    return value
