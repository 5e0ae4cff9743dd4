"""What renderers add to the one sanitiser (`attt.scanner.text`): values shown as text, and
spreadsheet cells that are never evaluated."""

import json
from typing import Any

from attt.scanner.text import clean, clean_line

# A spreadsheet treats a cell starting with one of these as a formula (or DDE) to evaluate.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def as_text(value: Any) -> str:
    """A JSON-compatible value (evidence, observation data) as readable, cleaned text."""
    if isinstance(value, str):
        return clean(value)
    return clean(json.dumps(value, ensure_ascii=False, sort_keys=True, default=str))


def spreadsheet_cell(text: str) -> str:
    """A cleaned one-line cell that a spreadsheet shows as text and never evaluates."""
    cell = clean_line(text)
    return "'" + cell if text.startswith(_FORMULA_START) else cell


def clean_json(value: Any) -> Any:
    """A JSON-compatible value with every string in it (keys too) cleaned."""
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, dict):
        return {clean(str(k)): clean_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_json(v) for v in value]
    return value
