"""Web servers on 127.0.204.0/24 that answer in ways a careless reading of HTTP gets wrong.

Each host answers HTTPS on 443 only (port 80 refused) from a scripted `Listener`: the answer
depends on the path asked for, nothing else. The trick of each host: a Location no URL parser
accepts, an HSTS header a browser ignores (non-ASCII digits, a repeated directive), a redirect
from HTTPS down to plain HTTP, a meta CSP in the body of a redirect, an empty CSP, the cookie
and version after the 100th header, a version sent only on the answers to other paths, and a
.env file served gzip-encoded or in a coding attt cannot decode. Every handler reads one
request and writes one answer.
"""

import datetime as dt
import gzip
import io
import socket
import ssl
import tarfile
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tests.servers.hostile import Endpoint, Listener
from tests.servers.tls import _leaf, _make_ca

NET = "127.0.204"
GOOD_HEADERS = (
    ("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'"),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("Strict-Transport-Security", "max-age=63072000"),
    ("Content-Type", "text/html"),
)
PAGE = b"<!doctype html><html><head><title>t</title></head><body></body></html>"
ENV_FILE = b"APP_ENV=production\nDB_PASSWORD=not-a-real-secret\n"
Responder = Callable[[str], bytes]
"""Path asked for → the whole answer, status line to body."""


def answer(status: int, headers: tuple[tuple[str, str], ...], body: bytes = b"") -> bytes:
    lines = "".join(f"{name}: {value}\r\n" for name, value in headers)
    head = f"HTTP/1.1 {status} X\r\n{lines}Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    return head.encode() + body


def _without(name: str) -> tuple[tuple[str, str], ...]:
    return tuple(h for h in GOOD_HEADERS if h[0] != name)


def _hsts(value: str) -> Responder:
    return lambda path: answer(
        200, (*_without("Strict-Transport-Security"), ("Strict-Transport-Security", value)), PAGE
    )


def _redirect_then_page(
    location: str, first_body: bytes, page_headers: tuple[tuple[str, str], ...]
) -> Responder:
    def respond(path: str) -> bytes:
        if path == "/":
            return answer(302, (*page_headers, ("Location", location)), first_body)
        return answer(200, page_headers, PAGE)

    return respond


def _many_headers(path: str) -> bytes:
    filler = tuple((f"X-Filler-{i}", "f") for i in range(100))
    late = (("Set-Cookie", "sessionid=a1b2; Path=/"), ("Server", "Apache/2.4.1"))
    return answer(200, (*GOOD_HEADERS, *filler, *late), PAGE)


def _version_elsewhere(path: str) -> bytes:
    # A static root; every other path answered by PHP, which names itself and starts a session.
    if path == "/":
        return answer(200, GOOD_HEADERS, PAGE)
    php = (("X-Powered-By", "PHP/7.4.3"), ("Set-Cookie", "PHPSESSID=9f8e7d; path=/"))
    return answer(404, (*GOOD_HEADERS, *php), b"<html>not found</html>")


def _gzip_env(path: str) -> bytes:
    if path == "/.env":
        encoded = (*_without("Content-Type"), ("Content-Type", "text/plain"), ("Content-Encoding", "gzip"))
        return answer(200, encoded, gzip.compress(ENV_FILE))
    return answer(404 if path != "/" else 200, GOOD_HEADERS, PAGE)


def _brotli_env(path: str) -> bytes:
    # A coding attt cannot undo, on a 200 for .env only: what the file holds is unknown.
    if path == "/.env":
        encoded = (*_without("Content-Type"), ("Content-Type", "text/plain"), ("Content-Encoding", "br"))
        return answer(200, encoded, b"\x1b\x2f\x00\xf8" + ENV_FILE[:16])
    return answer(404 if path != "/" else 200, (*GOOD_HEADERS, ("Content-Encoding", "br")), b"")


def _tar() -> bytes:
    member = tarfile.TarInfo("www/index.php")
    member.size = len(PAGE)
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as archive:
        archive.addfile(member, io.BytesIO(PAGE))
    return out.getvalue()


def _all_gzip(path: str) -> bytes:
    # Every answer gzip-encoded, a catch-all page included: none of them is an archive.
    return answer(200, (*GOOD_HEADERS, ("Content-Encoding", "gzip")), gzip.compress(PAGE))


def _encoded_backup(path: str) -> bytes:
    # A .tar.gz sent as `Content-Encoding: gzip` (the way Apache's `AddEncoding x-gzip .gz`
    # serves it): decoded, it is a tar, but what was sent is the archive all the same.
    if path == "/backup.tar.gz":
        tar = _tar()
        encoded = (
            *_without("Content-Type"),
            ("Content-Type", "application/x-tar"),
            ("Content-Encoding", "gzip"),
        )
        return answer(200, encoded, gzip.compress(tar))
    return answer(404 if path != "/" else 200, GOOD_HEADERS, PAGE)


def _cases(name_of: Callable[[str], str]) -> dict[str, Responder]:
    meta_csp = (
        b'<html><head><meta http-equiv="Content-Security-Policy" '
        b"content=\"default-src 'self'\"></head></html>"
    )
    return {
        "unparsable location": lambda path: answer(301, (*GOOD_HEADERS, ("Location", "https://[/home"))),
        "port out of range": lambda path: answer(
            301, (*GOOD_HEADERS, ("Location", f"https://{name_of('port out of range')}:99999/"))
        ),
        "hsts in arabic digits": _hsts("max-age=\u0666\u0663\u0660\u0667\u0662\u0660\u0660\u0660"),
        "hsts superscript": _hsts("max-age=\u00b2"),
        "hsts max-age twice": _hsts("max-age=63072000; max-age=0"),
        "downgrade": _redirect_then_page(f"http://{name_of('downgrade')}:443/home", b"", GOOD_HEADERS),
        "meta csp on a redirect": _redirect_then_page("/home", meta_csp, _without("Content-Security-Policy")),
        "empty csp": lambda path: answer(
            200, (*_without("Content-Security-Policy"), ("Content-Security-Policy", "")), PAGE
        ),
        "late cookie and version": _many_headers,
        "version on other paths": _version_elsewhere,
        "gzip env": _gzip_env,
        "brotli env": _brotli_env,
        "gzip-encoded backup": _encoded_backup,
        "everything gzip-encoded": _all_gzip,
        "hsts sent twice": lambda path: answer(
            200, (*GOOD_HEADERS, ("Strict-Transport-Security", "max-age=0")), PAGE
        ),
        "cookies being deleted": lambda path: answer(
            200,
            (
                *GOOD_HEADERS,
                ("Set-Cookie", "sessionid=deleted; expires=Thu, 01 Jan 1970 00:00:00 GMT; path=/"),
                ("Set-Cookie", "auth_token=; Max-Age=0"),
            ),
            PAGE,
        ),
        **dict.fromkeys(HTTP_CASES, lambda path: answer(200, GOOD_HEADERS, PAGE)),
        # With frame-ancestors in the CSP a browser ignores X-Frame-Options: any site may frame.
        "frame-ancestors overrides xfo": lambda path: answer(
            200,
            (
                *_without("Content-Security-Policy"),
                (
                    "Content-Security-Policy",
                    "default-src 'self'; frame-ancestors https:; frame-ancestors 'none'",
                ),
            ),
            PAGE,
        ),
        "redirect to an unlisted port": lambda path: answer(
            302, (*GOOD_HEADERS, ("Location", f"https://{name_of('redirect to an unlisted port')}:8444/app/"))
        ),
    }


HTTP_CASES = ("backslash location", "300 without location", "300 with location")
"""Cases that answer plain HTTP on port 80 too (their HTTPS is a good page)."""


def _other_ports(name_of: Callable[[str], str]) -> dict[tuple[str, int], Responder]:
    """(case, port) → what that port answers, HTTP or HTTPS (the handler serves both)."""

    def multiple_choices(path: str) -> bytes:
        if path == "/.git/HEAD":
            return answer(200, (("Content-Type", "text/plain"),), b"ref: refs/heads/main\n")
        return answer(300 if path == "/" else 404, (("Content-Type", "text/html"),), PAGE)

    return {
        # A browser reads a backslash as a slash: this sends it to evil.example, not to the site.
        ("backslash location", 80): lambda path: answer(
            301, (("Location", f"https://evil.example\\@{name_of('backslash location')}/"),)
        ),
        # A 3xx without a Location redirects nowhere: the browser shows the page, served in clear.
        ("300 without location", 80): multiple_choices,
        # A browser follows 301, 302, 303, 307 and 308 only: this page stays in clear text.
        ("300 with location", 80): lambda path: answer(
            300,
            (("Location", f"https://{name_of('300 with location')}/"), ("Content-Type", "text/html")),
            PAGE,
        ),
        # Where the site really lives, on a port no inventory lists: what it sends is the site's.
        ("redirect to an unlisted port", 8444): lambda path: answer(
            200, (*GOOD_HEADERS, ("Set-Cookie", "sessionid=a1b2; Path=/"), ("Server", "Apache/2.4.1")), PAGE
        ),
    }


DOMAIN = "tricks.attt.test"


@dataclass(frozen=True)
class TrickyWeb:
    hosts: dict[str, str]
    """Case → address of its HTTPS server on port 443 (and of its HTTP server on port 80 for
    `http_cases`)."""
    names: dict[str, str]
    """Case → its host name (the inventory's `hostname`, what its Locations name)."""
    ca_file: Path
    """The CA of every case's certificate, which carries each case's name and address: the
    probe trusts it as a user would (`settings.web.trust_anchors`)."""
    http_cases: tuple[str, ...] = ()
    """Cases whose inventory declares plain HTTP on port 80 too."""


def _handler(respond: Responder, tls: ssl.SSLContext) -> Callable[[socket.socket, threading.Event], None]:
    def handle(conn: socket.socket, stop: threading.Event) -> None:
        conn.settimeout(5)
        first = conn.recv(1, socket.MSG_PEEK)
        # The downgrade case sends its visitor to plain HTTP on the same port: serve both.
        stream = tls.wrap_socket(conn, server_side=True) if first == b"\x16" else conn
        request = stream.recv(8192)
        parts = request.split(b"\r\n", 1)[0].split(b" ")
        path = parts[1].decode("latin-1") if len(parts) > 1 else "/"
        stream.sendall(respond(path))

    return handle


@contextmanager
def serving(
    workdir: Path,
    net: str,
    cases: Callable[[Callable[[str], str]], dict[str, Responder]],
    other_ports: Callable[[Callable[[str], str]], dict[tuple[str, int], Responder]],
    http_cases: tuple[str, ...] = (),
) -> Iterator[TrickyWeb]:
    """Each case's responder on port 443 of its own address in `net` (from .10 up), under its
    own name (`site<octet>.tricks.attt.test`, which its Locations use), and the other ports
    named by `other_ports`. One certificate from a test CA carries every name and address."""
    now = dt.datetime.now(dt.UTC)
    issuer, ca_file = _make_ca(workdir, now)
    octets = {case: octet for octet, case in enumerate(cases(lambda case: ""), start=10)}
    hosts = {case: f"{net}.{octet}" for case, octet in octets.items()}
    names = {case: f"site{octet}.{DOMAIN}" for case, octet in octets.items()}
    cert, key = _leaf(
        workdir,
        "tricks",
        DOMAIN,
        ec.generate_private_key(ec.SECP256R1()),
        issuer,
        now - dt.timedelta(hours=1),
        now + dt.timedelta(days=9),
        more_sans=(*names.values(), *hosts.values()),
    )
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    with ExitStack() as stack:
        for case, respond in cases(names.__getitem__).items():
            stack.enter_context(Listener(Endpoint(case, hosts[case], 443), _handler(respond, tls)).running())
        for (case, port), respond in other_ports(names.__getitem__).items():
            stack.enter_context(Listener(Endpoint(case, hosts[case], port), _handler(respond, tls)).running())
        yield TrickyWeb(hosts, names, ca_file, http_cases)


@pytest.fixture(scope="session")
def tricky_web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrickyWeb]:
    with serving(tmp_path_factory.mktemp("web-tricks"), NET, _cases, _other_ports, HTTP_CASES) as web:
        yield web
