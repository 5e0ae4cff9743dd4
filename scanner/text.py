"""The one sanitiser for text attt prints or renders: terminal lines, progress, HTML, XML,
SARIF, CSV and `policy show` all send what they show through it.

Targets send banners, certificate fields and headers, and people write inventories and
policies, that may carry terminal escapes, bidi overrides (which reorder what a reader sees) or
characters XML cannot hold. Escaping for HTML or XML stays the template's or serializer's job;
these functions make the *characters* safe first, turning every control or formatting character
into a visible `\\x..`/`\\u....` escape, so that a reader sees it was sent instead of having it
act on their screen.
"""

import re

# C0 except tab and newline, DEL, C1, bidi embeddings/overrides/isolates, zero-width and
# direction marks, the line/paragraph separators, BOM, and the non-characters XML 1.0 forbids.
_UNSAFE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ufffe\uffff\ud800-\udfff]"
)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def clean(text: str) -> str:
    """Text with every control and invisible formatting character shown as a visible escape."""
    return _UNSAFE.sub(_escape, text)


def clean_line(text: str) -> str:
    """`clean`, and newlines too: for a value that must stay on one line (attributes, cells)."""
    return clean(text).replace("\n", "\\n").replace("\t", "\\t")


def safe(text: str, limit: int = 300) -> str:
    """One terminal line: `clean_line`, cut to `limit` characters."""
    line = clean_line(text)
    return line if len(line) <= limit else line[: limit - 1] + "…"


def os_text(text: str) -> str:
    """Text the operating system handed over (an argument, a variable, a file name) as valid
    UTF-8: Python keeps bytes it could not decode as lone surrogates, which no JSON, database or
    page can hold; each such byte becomes a visible `\\xNN`."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
