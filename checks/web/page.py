"""Facts from the root page's HTML and from `Set-Cookie` headers: parsing only, no judgement."""

import codecs
import datetime as dt
import re
from email.utils import parsedate_to_datetime
from html.parser import HTMLParser

from attt.checks.web.models import MAX_SCRIPTS, MAX_VALUE_CHARS, Cookie, Header, Page, Script
from attt.scanner.models.observation import bound_text

_MAX_META = 20
_HTML_TYPES = ("text/html", "application/xhtml+xml")
_UNKNOWN_TYPES = ("", "unknown/unknown", "application/unknown", "*/*")
"""Types a browser replaces with what it sniffs from the body (MIME Sniffing, section 7)."""
_SNIFFED_HTML = re.compile(
    rb"\A[\t\n\x0c\r ]*<(!doctype html|html|head|script|iframe|h1|div|font|table|a|style|title|b|body|br|p|"
    rb"!--)[ >]",
    re.IGNORECASE,
)
"""The MIME Sniffing standard's HTML signatures: what makes a browser render an untyped body as HTML."""


_TEXT_TAGS = frozenset({"title", "script", "style", "noscript", "template", "noframes"})
"""Head elements whose content is text, never the body's."""
_HEAD_TAGS = _TEXT_TAGS | {"html", "head", "base", "basefont", "bgsound", "link", "meta"}
"""Start tags an HTML parser keeps in the head; any other (or text) opens the body."""


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.meta: list[Header] = []
        self.generator: list[str] = []
        self.scripts: list[tuple[str, bool]] = []
        self._in_head = True
        self._in_text: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k.lower(): v or "" for k, v in attrs}
        if tag not in _HEAD_TAGS:
            self._in_head = False
        elif tag in _TEXT_TAGS:
            self._in_text = tag
        if tag == "meta" and len(self.meta) + len(self.generator) < _MAX_META:
            content = bound_text(values.get("content", ""), MAX_VALUE_CHARS)
            name = values.get("name", "").lower()
            equiv = values.get("http-equiv", "").lower()
            if equiv == "content-security-policy" and not self._in_head:
                return  # HTML enforces a policy from a meta tag in the head only
            if equiv:
                self.meta.append(Header(name=bound_text(equiv, 100), value=content))
            elif name == "referrer":
                self.meta.append(Header(name="referrer", value=content))
            elif name == "generator":
                self.generator.append(content)
        elif tag == "script" and "src" in values and len(self.scripts) < MAX_SCRIPTS:
            self.scripts.append((bound_text(values["src"], MAX_VALUE_CHARS), bool(values.get("integrity"))))

    def handle_endtag(self, tag: str) -> None:
        if tag == self._in_text:
            self._in_text = None

    def handle_data(self, data: str) -> None:
        if self._in_text is None and data.strip():
            self._in_head = False


def read_page(content_type: str | None, body: bytes, *, nosniff: bool = False) -> Page:
    """The meta tags and scripts of an HTML body (the start of it: the rest is not read); a
    body without a type is HTML when a browser would sniff it so (unless `nosniff`)."""
    essence = (content_type or "").split(";")[0].strip().lower()
    sniffed = essence in _UNKNOWN_TYPES and not nosniff and _SNIFFED_HTML.match(body) is not None
    html = essence in _HTML_TYPES or sniffed
    if not html:
        return Page(html=False)
    collector = _Collector()
    collector.feed(_text(content_type, body))
    collector.close()
    return Page(
        html=True,
        meta=tuple(collector.meta),
        generator=tuple(collector.generator),
        scripts=tuple(Script(src=src, integrity=i) for src, i in collector.scripts),
    )


_META_CHARSET = re.compile(rb"""<meta\s[^>]*?charset\s*=\s*["']?\s*([A-Za-z0-9._:-]+)""", re.IGNORECASE)
_PRESCAN_BYTES = 1024
"""How far into the body a browser looks for a meta charset (WHATWG HTML's prescan)."""
_BOMS = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_BE, "utf-16-be"), (codecs.BOM_UTF16_LE, "utf-16-le"))
_UTF_16 = {"utf-16": "utf-16-le", "utf-16le": "utf-16-le", "utf-16be": "utf-16-be"}


def _text(content_type: str | None, body: bytes) -> str:
    """The body as the text a browser reads, so that a meta value (a generator's name in
    Vietnamese) is what the page says: a UTF-8 byte order mark, else the Content-Type's
    charset, else a meta charset near the top (`<meta charset>` or its http-equiv form), else
    UTF-8; bytes the encoding cannot read are replaced, and a charset Python does not know as a
    text encoding is passed over. A UTF-16 byte order mark counts as a UTF-8 one does (read as
    UTF-8, such a page shows no tag at all), and `utf-16` without one means little-endian, as
    in WHATWG's Encoding standard."""
    for bom, encoding in _BOMS:
        if body.startswith(bom):
            return body[len(bom) :].decode(encoding, "replace")
    found = _META_CHARSET.search(body[:_PRESCAN_BYTES])
    meta = found.group(1).decode("ascii") if found else None
    for label in (_charset_param(content_type), meta):
        if label:
            charset = _UTF_16.get(label.lower(), label)
            try:
                return body.decode(charset, "replace")
            except LookupError:
                continue
    return body.decode("utf-8", "replace")


def _charset_param(content_type: str | None) -> str | None:
    for parameter in (content_type or "").split(";")[1:]:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset":
            return value.strip().strip('"') or None
    return None


def parse_cookie(header: str, url: str, *, now: dt.datetime) -> Cookie | None:
    """One `Set-Cookie` value: the cookie's name and the flags that protect it; None when it
    sets nothing (no name, or sent only to delete the cookie)."""
    first, *attributes = header.split(";")
    name, sep, _value = first.partition("=")
    if not sep or not name.strip():
        return None
    flags: dict[str, str | None] = {}
    for attribute in attributes:
        key, has_value, value = attribute.partition("=")
        flags[key.strip().lower()] = value.strip() if has_value else None
    if _deleted(flags, now):
        return None
    # A SameSite attribute without a value is kept as "", which no browser accepts.
    same_site = bound_text(flags["samesite"] or "", 100) if "samesite" in flags else None
    return Cookie(
        name=bound_text(name.strip(), 200),
        secure="secure" in flags,
        http_only="httponly" in flags,
        same_site=same_site,
        url=bound_text(url, MAX_VALUE_CHARS),
    )


_MAX_AGE = re.compile(r"-?[0-9]+")


def _deleted(flags: dict[str, str | None], now: dt.datetime) -> bool:
    """The cookie expires on arrival (RFC 6265 5.2.1-2: Max-Age before Expires): a site sends it
    to remove the cookie, and a browser stores nothing there is to protect."""
    max_age = flags.get("max-age")
    if max_age is not None and _MAX_AGE.fullmatch(max_age):
        return int(max_age) <= 0
    try:
        expires = parsedate_to_datetime(flags.get("expires") or "")
    except (TypeError, ValueError):
        return False  # a date Python cannot read: judged as a cookie that stays
    return (expires if expires.tzinfo else expires.replace(tzinfo=dt.UTC)) < now
