"""Neutralising hostile text before any renderer writes it.

Targets send banners, certificate fields and headers that may carry terminal escapes, bidi
overrides (which reorder what a reader sees) or characters XML cannot hold. Escaping for HTML or
XML is the template's or serializer's job; these functions make the *characters* safe first, by
turning every control or formatting character into a visible `\\x..`/`\\u....` escape, so a
reader sees that the target sent it instead of having it act on their screen.
"""

import json
import re
from typing import Any

# C0 except tab and newline, DEL, C1, bidi embeddings/overrides/isolates, zero-width and
# direction marks, the line/paragraph separators, BOM, and the non-characters XML 1.0 forbids.
_UNSAFE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ufffe\uffff\ud800-\udfff]"
)

# A spreadsheet treats a cell starting with one of these as a formula (or DDE) to evaluate.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def clean(text: str) -> str:
    """Text with every control and invisible formatting character shown as a visible escape."""
    return _UNSAFE.sub(_escape, text)


def clean_line(text: str) -> str:
    """`clean`, and newlines too: for a value that must stay on one line (attributes, cells)."""
    return clean(text).replace("\n", "\\n").replace("\t", "\\t")


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
