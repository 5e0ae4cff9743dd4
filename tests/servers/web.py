"""The web lab: nginx sites on 127.0.216.0/24, one misconfiguration per host, hostile HTTP
servers on 127.0.217.0/24, and sites on 127.0.245.0/24 that differ by their certificate only,
for the web check's tests and the demo.

One nginx process serves every site (each site its own loopback address, hence its own host to
attt); the certificates come from the test CA of tests/servers/tls.py. The hostile servers are
`Listener`s from tests/servers/hostile.py: each handler is bounded in bytes and in time.
"""

import datetime as dt
import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tests.servers import stop_process
from tests.servers.hostile import MAX_HOLD, Endpoint, Listener
from tests.servers.tls import _Issuer, _leaf, _make_ca, _wait_listening

NET = "127.0.216"
HOSTILE_NET = "127.0.217"
HSTS_NET = "127.0.245"
DOMAIN = "web.attt.test"
TRAP_OCTET = 99
TRAP = f"{NET}.{TRAP_OCTET}"
"""An address of the lab's range that no test inventory registers: a listener there counts the
connections attt must never make (the `offscope` site redirects to it)."""

_REDIRECT = "server_tokens off; location / { return 301 https://$host$request_uri; }"
_GOOD_HEADERS = """
    server_tokens off;
    add_header Content-Security-Policy
        "default-src 'self'; frame-ancestors 'none'; form-action 'self'" always;
    add_header X-Content-Type-Options nosniff always;
    add_header X-Frame-Options DENY always;
    add_header Referrer-Policy strict-origin-when-cross-origin always;
    add_header Strict-Transport-Security "max-age=63072000; includeSubDomains" always;
    add_header Set-Cookie "SESSIONID=a1b2c3; Path=/; Secure; HttpOnly; SameSite=Lax" always;"""


CertKind = Literal["valid", "expired", "other name", "self-signed"]


@dataclass(frozen=True)
class Site:
    octet: int
    http: str | None
    """nginx directives of the port-80 server block; None: nothing listens on 80."""
    https: str | None
    """nginx directives of the port-443 server block; None: nothing listens on 443."""
    files: tuple[tuple[str, bytes], ...] = ()
    cert: CertKind = "valid"
    """The certificate its HTTPS serves, from the lab's CA unless self-signed."""


SITES: dict[str, Site] = {
    "good": Site(2, _REDIRECT, _GOOD_HEADERS),
    "bare": Site(3, _REDIRECT, "server_tokens on;"),
    "noredirect": Site(4, "server_tokens off;", _GOOD_HEADERS),
    "offscope": Site(5, "location / { return 301 http://{trap}/login; }", _GOOD_HEADERS),
    # Cookies without flags, and a CORS policy that echoes any origin and allows credentials.
    "cookies": Site(
        6,
        _REDIRECT,
        """server_tokens off;
    add_header Set-Cookie "PHPSESSID=9f8e7d; Path=/" always;
    add_header Access-Control-Allow-Origin $http_origin always;
    add_header Access-Control-Allow-Credentials true always;""",
    ),
    "gitleak": Site(
        7,
        _REDIRECT,
        "server_tokens off;",
        (
            (".git/HEAD", b"ref: refs/heads/main\n"),
            (".git/config", b"[core]\n\trepositoryformatversion = 0\n\tbare = false\n"),
            (".env", b"APP_ENV=production\nDB_PASSWORD=not-a-real-secret\n"),
        ),
    ),
    "catchall": Site(8, _REDIRECT, "server_tokens off; location / { try_files $uri /index.html; }"),
    "listing": Site(
        9,
        _REDIRECT,
        "server_tokens off; location /uploads/ { autoindex on; }",
        (("uploads/report.pdf", b"%PDF-1.4\n"),),
    ),
    "httponly": Site(10, "server_tokens on;", None),
}


HSTS_SITES: dict[str, Site] = {
    "trusted": Site(2, _REDIRECT, _GOOD_HEADERS),
    "expired": Site(3, _REDIRECT, _GOOD_HEADERS, cert="expired"),
    "mismatch": Site(4, _REDIRECT, _GOOD_HEADERS, cert="other name"),
    "selfsigned": Site(5, _REDIRECT, _GOOD_HEADERS, cert="self-signed"),
}
"""Sound headers, HSTS of two years among them, each with another certificate: whether a
browser keeps HSTS (RFC 6797 8.1) is all that differs. Served on `HSTS_NET` by `hsts_web`."""


@dataclass(frozen=True)
class WebSite:
    name: str
    ip: str
    hostname: str


@dataclass(frozen=True)
class WebLab:
    sites: dict[str, WebSite]
    ca_file: Path
    trap: Listener
    """Counts connections to the out-of-scope address the `offscope` site redirects to."""
    access_log: Path
    """One line per request: address, port, SNI, Host, method and target, quoted."""

    def __getitem__(self, name: str) -> WebSite:
        return self.sites[name]


def _config(
    workdir: Path, net: str, names: tuple[str, ...], catalog: Mapping[str, Site]
) -> tuple[Path, dict[str, WebSite], Path]:
    now = dt.datetime.now(dt.UTC)
    issuer, ca_file = _make_ca(workdir, now)
    temp = workdir / "nginx-temp"
    temp.mkdir(exist_ok=True)
    blocks: list[str] = []
    sites: dict[str, WebSite] = {}
    for name in names:
        site = catalog[name]
        web = WebSite(name, f"{net}.{site.octet}", f"{name}.{DOMAIN}")
        sites[name] = web
        root = workdir / name
        root.mkdir(exist_ok=True)
        (root / "index.html").write_text(
            f"<!doctype html><html><head><title>{name}</title></head><body></body></html>"
        )
        for relative, content in site.files:
            path = root / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
        common = f"server_name {web.hostname}; root {root};"
        if site.https is not None:
            cert, key_file = _certificate(workdir, web, site.cert, issuer, now)
            blocks.append(
                f"server {{ listen {web.ip}:443 ssl; {common} ssl_certificate {cert}; "
                f"ssl_certificate_key {key_file};\n{site.https}\n}}"
            )
        if site.http is not None:
            http = site.http.replace("{trap}", f"{net}.{TRAP_OCTET}")
            blocks.append(f"server {{ listen {web.ip}:80; {common}\n{http}\n}}")
    conf = workdir / "nginx.conf"
    conf.write_text(
        f"""daemon off;
master_process off;
worker_processes 1;
pid {workdir}/nginx.pid;
error_log {workdir}/nginx-error.log warn;
events {{ worker_connections 256; }}
http {{
    # What each request looked like on arrival: the tests check the SNI, Host and method.
    log_format attt '$server_addr $server_port "$ssl_server_name" "$host" "$request_method" "$request_uri"';
    access_log {workdir}/access.log attt;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    default_type text/html;
{chr(10).join(blocks)}
}}
"""
    )
    return conf, sites, ca_file


def _certificate(
    workdir: Path, web: WebSite, kind: CertKind, issuer: _Issuer, now: dt.datetime
) -> tuple[Path, Path]:
    day = dt.timedelta(days=1)
    key = ec.generate_private_key(ec.SECP256R1())
    name = f"other.{DOMAIN}" if kind == "other name" else web.hostname
    signer = None if kind == "self-signed" else issuer
    start, end = (now - 100 * day, now - 10 * day) if kind == "expired" else (now - day, now + 90 * day)
    return _leaf(workdir, web.name, name, key, signer, start, end)


def _count(conn: socket.socket, stop: threading.Event) -> None:
    """The trap answers nothing: what matters is that nobody ever connects."""


@contextmanager
def web_lab(
    workdir: Path, net: str = NET, names: tuple[str, ...] | None = None, catalog: Mapping[str, Site] = SITES
) -> Iterator[WebLab]:
    """Start nginx with the named sites of `catalog` (all of them by default); stop it when the
    block ends."""
    workdir.mkdir(parents=True, exist_ok=True)
    conf, sites, ca_file = _config(workdir, net, tuple(catalog) if names is None else names, catalog)
    log = workdir / "nginx.log"
    with ExitStack() as stack, log.open("wb") as log_file:
        trap = stack.enter_context(Listener(Endpoint("trap", f"{net}.{TRAP_OCTET}", 80), _count).running())
        proc = subprocess.Popen(["nginx", "-c", str(conf)], stdout=log_file, stderr=subprocess.STDOUT)
        try:
            for name, web in sites.items():
                port = 443 if catalog[name].https is not None else 80
                _wait_listening(web.ip, port, proc, log)
            yield WebLab(sites, ca_file, trap, workdir / "access.log")
        finally:
            stop_process(proc)


@pytest.fixture(scope="session")
def web_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebLab]:
    with web_lab(tmp_path_factory.mktemp("web")) as lab:
        yield lab


# --- hostile HTTP servers ---------------------------------------------------------------------

HOSTILE_SERVER = '<script>alert("attt")</script> \u202eevil/9.9'
"""Markup and a bidi override in a Server header (UTF-8 bytes on the wire)."""
HOSTILE_GENERATOR = "\x1b[31mPwnCMS 6.6\x1b]0;pwned\x07"
"""Terminal escapes in a generator meta tag: a body may carry bytes a header cannot."""
HOSTILE_COOKIE = "<script>alert(1)</script>sess"
FLOOD_BYTES = 20 * 1024 * 1024
"""What the endless-header server sends at most before it gives up."""
DRIP_INTERVAL = 0.5


def _request(conn: socket.socket) -> bytes:
    conn.settimeout(5)
    try:
        return conn.recv(8192)
    except OSError:
        return b""


def endless_headers(conn: socket.socket, stop: threading.Event) -> None:
    _request(conn)
    conn.sendall(b"HTTP/1.1 200 OK\r\n")
    sent, deadline = 0, time.monotonic() + MAX_HOLD
    while sent < FLOOD_BYTES and not stop.is_set() and time.monotonic() < deadline:
        line = b"X-Flood-%d: %s\r\n" % (sent, b"v" * 64)
        conn.sendall(line)
        sent += len(line)


def huge_header_line(conn: socket.socket, stop: threading.Event) -> None:
    _request(conn)
    conn.sendall(b"HTTP/1.1 200 OK\r\nX-Huge: " + b"h" * (10 * 1024 * 1024) + b"\r\n\r\n")


def slow_drip(conn: socket.socket, stop: threading.Event) -> None:
    _request(conn)
    for byte in b"HTTP/1.1 200 OK\r\nServer: drip\r\nContent-Length: 2\r\n\r\nok":
        if stop.wait(DRIP_INTERVAL):
            return
        conn.sendall(bytes([byte]))


def redirect_loop(conn: socket.socket, stop: threading.Event) -> None:
    request = _request(conn)
    target = b"/b" if request.startswith(b"GET /a ") else b"/a"
    conn.sendall(
        b"HTTP/1.1 302 Found\r\nLocation: " + target + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )


def hostile_text(conn: socket.socket, stop: threading.Event) -> None:
    _request(conn)
    body = f'<html><head><meta name="generator" content="{HOSTILE_GENERATOR}"></head><body>hi</body></html>'
    head = (
        "HTTP/1.1 200 OK\r\n"
        f"Server: {HOSTILE_SERVER}\r\n"
        "X-Powered-By: =cmd|' /C calc'!A0\r\n"
        f"Set-Cookie: {HOSTILE_COOKIE}=1; Path=/\r\n"
        "Content-Type: text/html\r\n"
        f"Content-Length: {len(body.encode())}\r\n"
        "Connection: close\r\n\r\n"
    )
    conn.sendall(head.encode() + body.encode())


HOSTILE_HANDLERS = {
    "endless headers": (1, endless_headers),
    "10 MB header line": (2, huge_header_line),
    "slow drip": (3, slow_drip),
    "redirect loop": (4, redirect_loop),
    "hostile text": (5, hostile_text),
}


@dataclass(frozen=True)
class HostileWeb:
    hosts: dict[str, str]
    """Case → address of its plain-HTTP server on port 80."""
    listeners: dict[str, Listener]


@pytest.fixture(scope="session")
def hostile_web() -> Iterator[HostileWeb]:
    with ExitStack() as stack:
        listeners = {
            case: stack.enter_context(
                Listener(Endpoint(case, f"{HOSTILE_NET}.{octet}", 80), handler).running()
            )
            for case, (octet, handler) in HOSTILE_HANDLERS.items()
        }
        yield HostileWeb(
            {case: f"{HOSTILE_NET}.{octet}" for case, (octet, _) in HOSTILE_HANDLERS.items()}, listeners
        )


@pytest.fixture(scope="session")
def hsts_web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebLab]:
    with web_lab(tmp_path_factory.mktemp("web-hsts"), HSTS_NET, catalog=HSTS_SITES) as lab:
        yield lab
