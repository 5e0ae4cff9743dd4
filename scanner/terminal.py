"""Making hostile text safe to print on a terminal."""

import re

# C0 and C1 control characters (ESC starts ANSI sequences), DEL, and bidirectional overrides
# that could reorder what an officer reads.
_UNSAFE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def safe(text: str, limit: int = 300) -> str:
    """Replace control characters with a visible marker and cut overly long text."""
    cleaned = _UNSAFE.sub(_marker, text).replace("\n", " ")
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


def _marker(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
