"""Servers on 127.0.231.0/24 whose TLS and web facts attt once read wrong.

- `PINNED`: OpenSSL's s_server with a self-signed certificate that the scan is given as a trust
  anchor (an operator trusting it); `STRANGER`: the same with one the scan does not know.
- `WILDCARD`: a certificate of the test CA for `*.gov.vn` only, a wildcard over a public suffix.
- `BIG_HEADERS`: HTTPS answers whose head is over 4 KB, sent as one TLS record: a 6 KB
  Content-Security-Policy, a 6 KB HSTS of unknown directives (RFC 6797 says to ignore them).
- `HSTS_CASES`: an HSTS max-age quoted as RFC 6797's grammar allows, one no browser reads, and
  HSTS sent twice (these two on 127.0.235.200-201).
- `GENERATOR_PAGES`: root pages whose generator meta tag is Vietnamese, their charset declared
  in the Content-Type, in a meta tag, or nowhere.

Every server stops with its `with` block; the scripted ones are bounded as the hostile lab's
`Listener` is.
"""

import datetime as dt
import ssl
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from tests.servers.hostile import Endpoint, Listener
from tests.servers.tls import TlsServer, _leaf, _make_ca, _process, _s_server
from tests.servers.web_tricks import _handler, answer

NET = "127.0.231"
PINNED = TlsServer("pinned", f"{NET}.1", 443, "pinned.attt.test")
STRANGER = TlsServer("stranger", f"{NET}.2", 443, "stranger.attt.test")
WILDCARD = TlsServer("wildcard", f"{NET}.3", 443, "hatinh.gov.vn")
HSTS = "max-age=63072000; includeSubDomains"
BIG_HEADERS = {
    "csp": (
        TlsServer("big-csp", f"{NET}.4", 443, "big-csp.attt.test"),
        (
            (
                "Content-Security-Policy",
                "default-src 'self' " + " ".join(f"https://cdn{i}.attt.test" for i in range(260)),
            ),
            ("Strict-Transport-Security", HSTS),
        ),
    ),
    "hsts": (
        TlsServer("big-hsts", f"{NET}.5", 443, "big-hsts.attt.test"),
        (("Strict-Transport-Security", HSTS + "".join(f"; x-attt-{i}=padding" for i in range(300))),),
    ),
}
"""Case → the server, and the headers of its answer (each over 6 KB long)."""
HSTS_CASES = {
    # RFC 6797's grammar allows the value as a quoted string.
    "quoted": (
        TlsServer("quoted-hsts", f"{NET}.6", 443, "quoted-hsts.attt.test"),
        (("Strict-Transport-Security", 'max-age="63072000"; includeSubDomains'),),
    ),
    "malformed": (
        TlsServer("malformed-hsts", f"{NET}.7", 443, "malformed-hsts.attt.test"),
        (("Strict-Transport-Security", "max-age=two-years; includeSubDomains"),),
    ),
    # Sent twice: a browser processes the first only (RFC 6797 8.1). On web-truth-4's range.
    "twice, sound first": (
        TlsServer("hsts-sound-first", "127.0.235.200", 443, "hsts-sound-first.attt.test"),
        (("Strict-Transport-Security", HSTS), ("Strict-Transport-Security", "max-age=0")),
    ),
    "twice, weak first": (
        TlsServer("hsts-weak-first", "127.0.235.201", 443, "hsts-weak-first.attt.test"),
        (("Strict-Transport-Security", "max-age=0"), ("Strict-Transport-Security", HSTS)),
    ),
}
"""Case → the server, and the HSTS headers of its answer."""


GENERATOR = "Cổng thông tin điện tử Hà Tĩnh – Portal 2.1"
"""What the generator pages name themselves, in Vietnamese."""


def _page(charset_tag: str, encoding: str) -> bytes:
    return (
        f'<!doctype html><html><head>{charset_tag}<meta name="generator" content="{GENERATOR}">'
        "<title>Hà Tĩnh</title></head><body></body></html>"
    ).encode(encoding)


GENERATOR_PAGES = {
    "http charset": (
        TlsServer("gen-http", f"{NET}.20", 443, "gen-http.attt.test"),
        (("Content-Type", "text/html; charset=UTF-8"),),
        _page("", "utf-8"),
    ),
    "meta charset": (
        TlsServer("gen-meta", f"{NET}.21", 443, "gen-meta.attt.test"),
        (("Content-Type", "text/html"),),
        _page('<meta charset="utf-8">', "utf-8"),
    ),
    "undeclared": (
        TlsServer("gen-none", f"{NET}.22", 443, "gen-none.attt.test"),
        (("Content-Type", "text/html"),),
        _page("", "utf-8"),
    ),
    # The HTTP header wins over the meta tag, as in a browser.
    "utf-16 over meta": (
        TlsServer("gen-utf16", f"{NET}.23", 443, "gen-utf16.attt.test"),
        (("Content-Type", 'text/html; charset="utf-16"'),),
        _page('<meta charset="iso-8859-1">', "utf-16"),
    ),
}
"""Case → the server, the headers and the body of its root page."""


def _answering(headers: tuple[tuple[str, str], ...], body: bytes = b"") -> Callable[[str], bytes]:
    return lambda _path: answer(200, headers, body)


@dataclass(frozen=True)
class TruthLab:
    ca_file: Path
    pinned: Path
    """The certificate `PINNED` serves: the anchor a scan is given."""


@contextmanager
def truth_lab(workdir: Path) -> Iterator[TruthLab]:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    day = dt.timedelta(days=1)
    issuer, ca_file = _make_ca(workdir, now)

    def leaf(server: TlsServer, san: str, signed: bool) -> tuple[Path, Path]:
        key = ec.generate_private_key(ec.SECP256R1())
        return _leaf(workdir, server.name, san, key, issuer if signed else None, now - day, now + 80 * day)

    pinned = leaf(PINNED, PINNED.hostname, signed=False)
    certificates = {
        PINNED: pinned,
        STRANGER: leaf(STRANGER, STRANGER.hostname, signed=False),
        WILDCARD: leaf(WILDCARD, "*.gov.vn", signed=True),
    }
    with ExitStack() as stack:
        for server, (cert, key) in certificates.items():
            stack.enter_context(_process(_s_server(server, cert, key), server, workdir))
        pages = [(server, headers, b"") for server, headers in (*BIG_HEADERS.values(), *HSTS_CASES.values())]
        for server, headers, body in (*pages, *GENERATOR_PAGES.values()):
            tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            tls.load_cert_chain(*leaf(server, server.hostname, signed=True))
            handler = _handler(_answering(headers, body), tls)
            stack.enter_context(Listener(Endpoint(server.name, server.ip, server.port), handler).running())
        yield TruthLab(ca_file=ca_file, pinned=pinned[0])
