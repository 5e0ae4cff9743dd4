"""The paths a public site must never serve (data/exposed-paths.json), and how a body proves one."""

import json
import re
from functools import cache
from importlib.resources import files

from pydantic import Field, model_validator

from attt.scanner.models.base import Frozen, Text

PATHS_FILE = "exposed-paths.json"
_HTML_START = re.compile(rb"\A\s*(<!doctype html|<html|<head|<body)", re.IGNORECASE)
_PROLOGUE = ((b"<?xml", b">"), (b"<!--", b"-->"))
"""What may come before an HTML page's first tag (with a byte order mark and white space): an
XML declaration and comments."""
_GZIP_MAGIC = "1f8b08"
_TAR = re.compile(rb"\A.{257}ustar", re.DOTALL)
"""A tar archive: `ustar` at offset 257 of its first header."""


class ExposedPath(Frozen):
    id: str = Field(pattern=r"^[a-z0-9-]+$")
    path: str = Field(pattern=r"^/[!-~]*$")
    what: Text
    regex: str | None = None
    """Searched in the body decoded as Latin-1 (so any byte sequence decodes)."""
    pattern: str | None = None
    """Name of a shared regex in the file's `patterns`."""
    magic: tuple[str, ...] = ()
    """Hex prefixes of binary formats (archives): the body must start with one."""
    html_refutes: bool = False
    """A body that is an HTML page is a portal's error or catch-all page, never this file."""

    @model_validator(mode="after")
    def _one_proof(self) -> "ExposedPath":
        if sum((self.regex is not None, self.pattern is not None, bool(self.magic))) != 1:
            raise ValueError(f"{self.id}: give exactly one of regex, pattern, magic")
        return self


class ExposedPaths(Frozen):
    version: str
    source: str
    about: str
    patterns: dict[str, str]
    listing_what: Text
    paths: tuple[ExposedPath, ...]

    def regex_of(self, entry: ExposedPath) -> re.Pattern[str] | None:
        source = entry.regex if entry.regex is not None else self.patterns.get(entry.pattern or "")
        return re.compile(source) if source is not None else None

    def what(self, path_id: str) -> Text:
        """What the path is, in both languages; the root listing has no entry of its own."""
        found = next((p.what for p in self.paths if p.id == path_id), None)
        return found or self.listing_what

    @property
    def listing(self) -> re.Pattern[str]:
        return re.compile(self.patterns["listing"])


@cache
def exposed_paths() -> ExposedPaths:
    text = files("attt.checks.web").joinpath("data", PATHS_FILE).read_text(encoding="utf-8")
    return ExposedPaths.model_validate(json.loads(text))


def proof(entry: ExposedPath, status: int, body: bytes) -> str | None:
    """What in the answer shows that `entry` is served (None if nothing does). A status other
    than 200 or 206 serves nothing; a 200 proves nothing without the content."""
    if status not in (200, 206):
        return None
    if entry.magic:
        head = body[:8].hex()
        return next((f"starts with bytes {m}" for m in entry.magic if head.startswith(m)), None)
    if entry.html_refutes and _HTML_START.match(_without_prologue(body)):
        return None
    regex = exposed_paths().regex_of(entry)
    text = body.decode("latin-1")
    found = regex.search(text) if regex is not None else None
    return f"contains {found.group(0)[:80]!r}" if found else None


def _without_prologue(body: bytes) -> bytes:
    body = body.removeprefix(b"\xef\xbb\xbf").lstrip()
    while (start := next((p for p in _PROLOGUE if body[: len(p[0])].lower() == p[0]), None)) is not None:
        end = body.find(start[1], len(start[0]))
        if end < 0:
            break
        body = body[end + len(start[1]) :].lstrip()
    return body


def decoded_proof(entry: ExposedPath, status: int, body: bytes) -> str | None:
    """What proves a gzip archive sent with its compression as `Content-Encoding: gzip` (the
    way Apache's `AddEncoding x-gzip .gz` serves it): `body`, decoded, is a tar. Gzip magic in
    what was sent proves nothing then: any answer so encoded starts with it."""
    if status not in (200, 206) or _GZIP_MAGIC not in entry.magic:
        return None
    return "sent as Content-Encoding: gzip, a tar archive once decoded" if _TAR.match(body) else None


def listing_proof(status: int, body: bytes) -> str | None:
    """The root page itself is a directory listing."""
    if status not in (200, 206):
        return None
    found = exposed_paths().listing.search(body.decode("latin-1"))
    return f"contains {found.group(0)[:80]!r}" if found else None
