"""Servers that leave a TLS fact unobserved, on 127.0.201.0/24: TLS servers that give no
answer to some handshakes, an SMTP server that lists STARTTLS and then declines it, one that
accepts it and never answers the ClientHello, and mail and directory servers that hang up
before answering STARTTLS.

Each TLS server is the verdicts lab's TLS 1.0 to 1.2 server (one TLS 1.0 suite,
ECDHE-ECDSA-AES128-SHA, 0xC009) behind a front that misbehaves on the ClientHellos offering
that suite at TLS 1.0 (the handshakes that tell whether TLS 1.0 is accepted): it stays silent
until the client hangs up (`stall`), or closes the connection without a TLS alert (`drop`), on
the first such handshake only (`once`) or on every one. Fallback probes (TLS_FALLBACK_SCSV)
are served normally.

Every server stops with its `with` block; every loop is bounded in count and time (the
hostile lab's `Listener`).
"""

import socket
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tests.servers.hostile import MAX_HOLD, Endpoint, Handler, Listener, _process, _s_server, tarpit
from tests.servers.mail import self_signed
from tests.servers.verdicts import Tls10, client_hello

NET = "127.0.201"
PORT = 443
TARGET_SUITE = b"\xc0\x09"
FALLBACK_SCSV = b"\x56\x00"

Misbehaviour = Literal["stall", "drop"]


def offers_target_at_tls10(hello: bytes) -> bool:
    """A TLS 1.0 ClientHello (legacy version 3.1, so no newer version offered) that offers
    0xC009 and is not a fallback probe."""
    if len(hello) < 44 or hello[0] != 0x16 or hello[5] != 0x01 or hello[9:11] != b"\x03\x01":
        return False
    start = 44 + hello[43]
    length = int.from_bytes(hello[start : start + 2], "big")
    body = hello[start + 2 : start + 2 + length]
    suites = {body[i : i + 2] for i in range(0, len(body) - 1, 2)}
    return TARGET_SUITE in suites and FALLBACK_SCSV not in suites


@dataclass
class FlakyTls:
    """One server's behaviour and what it did."""

    ip: str
    misbehaviour: Misbehaviour
    once: bool
    misbehaved: int = 0
    """ClientHellos it answered with silence or a dropped connection."""


class _Flaky:
    """`flaky`'s misbehaviour on its handshakes, the TLS server on the others."""

    def __init__(self, flaky: FlakyTls, cert: Path, key: Path) -> None:
        self.flaky = flaky
        self._tls = Tls10(cert, key, flaky=False)
        self._lock = threading.Lock()

    def _misbehaves(self, hello: bytes) -> bool:
        if not offers_target_at_tls10(hello):
            return False
        with self._lock:
            if self.flaky.once and self.flaky.misbehaved:
                return False
            self.flaky.misbehaved += 1
            return True

    def __call__(self, conn: socket.socket, stop: threading.Event) -> None:
        conn.settimeout(MAX_HOLD)
        if not self._misbehaves(client_hello(conn)):
            self._tls(conn)
        elif self.flaky.misbehaviour == "stall":
            tarpit(conn, stop)


@contextmanager
def flaky_tls_servers(
    workdir: Path, servers: list[FlakyTls], accept_limit: int | None = None
) -> Iterator[list[FlakyTls]]:
    """The servers, each accepting `accept_limit` connections (the `Listener`'s bound if None;
    sslyze's exhaustive enumeration makes about 600)."""
    with ExitStack() as stack:
        for flaky in servers:
            (workdir / flaky.ip).mkdir()
            handler = _Flaky(flaky, *self_signed(workdir / flaky.ip, flaky.ip))
            listener = Listener(Endpoint(f"flaky-{flaky.ip}", flaky.ip, PORT), handler, accept_limit)
            stack.enter_context(listener.running())
        yield servers


SMTP_PORT = 25
SMTP_DECLINES = f"{NET}.20"
"""Lists STARTTLS in its EHLO reply, then answers the command with RFC 3207's 454."""
SMTP_WITHOUT_TLS = f"{NET}.21"
"""Does not list STARTTLS: a mail server without TLS."""
SMTP_NEVER_HELLO = f"{NET}.25"
"""Accepts STARTTLS (220), then never answers the ClientHello."""
IMAP_BUSY = f"{NET}.22"
"""Greets with IMAP's BYE (too many connections) and hangs up."""
POP3_HANGS_UP = f"{NET}.23"
"""Greets and hangs up before any command."""
LDAP_HANGS_UP = f"{NET}.24"
"""Reads the StartTLS request and hangs up without a response."""


def _smtp(advertises: bool, upgrades: bool = False) -> Handler:
    def handle(conn: socket.socket, stop: threading.Event) -> None:
        conn.settimeout(MAX_HOLD)
        reader = conn.makefile("rb")
        conn.sendall(b"220 mail.attt.test ESMTP\r\n")
        for _ in range(10):
            line = reader.readline(512).strip().upper()
            if line.startswith(b"EHLO"):
                conn.sendall(
                    b"250-mail.attt.test\r\n250 STARTTLS\r\n" if advertises else b"250 mail.attt.test\r\n"
                )
            elif line == b"STARTTLS" and upgrades:
                conn.sendall(b"220 ready to start TLS\r\n")
                tarpit(conn, stop)
                return
            elif line == b"STARTTLS":
                conn.sendall(b"454 4.7.0 TLS not available due to temporary reason\r\n")
            else:
                conn.sendall(b"221 bye\r\n")
                return

    return handle


def _hang_up(greeting: bytes) -> Handler:
    def handle(conn: socket.socket, _stop: threading.Event) -> None:
        conn.sendall(greeting)

    return handle


def _read_and_hang_up(conn: socket.socket, _stop: threading.Event) -> None:
    conn.settimeout(MAX_HOLD)
    conn.recv(4096)


@contextmanager
def mail_servers() -> Iterator[None]:
    servers = {
        SMTP_DECLINES: (SMTP_PORT, _smtp(advertises=True)),
        SMTP_WITHOUT_TLS: (SMTP_PORT, _smtp(advertises=False)),
        SMTP_NEVER_HELLO: (SMTP_PORT, _smtp(advertises=True, upgrades=True)),
        IMAP_BUSY: (143, _hang_up(b"* BYE Too many connections from your address\r\n")),
        POP3_HANGS_UP: (110, _hang_up(b"+OK POP3 ready\r\n")),
        LDAP_HANGS_UP: (389, _read_and_hang_up),
    }
    with ExitStack() as stack:
        for ip, (port, handler) in servers.items():
            stack.enter_context(Listener(Endpoint(f"mail-{ip}", ip, port), handler).running())
        yield


CLIENT_AUTH = f"{NET}.30"
"""OpenSSL's s_server (one connection at a time), TLS 1.2 and 1.3, asking every client for a
certificate and refusing those without one."""


@contextmanager
def client_auth_server(workdir: Path) -> Iterator[None]:
    cert, key = self_signed(workdir, CLIENT_AUTH)
    endpoint = Endpoint("client-auth", CLIENT_AUTH, PORT)
    with _process([*_s_server(endpoint, cert, key), "-Verify", "1", "-CAfile", str(cert)], endpoint):
        yield
