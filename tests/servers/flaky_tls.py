"""Servers that leave a TLS fact unobserved, on 127.0.201.0/24: TLS servers that give no
answer to some handshakes, an SMTP server that lists STARTTLS and then declines it, and mail
servers that hang up before answering STARTTLS.

Each TLS server accepts TLS 1.0 to 1.2 with one TLS 1.0 suite, ECDHE-ECDSA-AES128-SHA (0xC009), and
misbehaves on the ClientHellos that offer it at TLS 1.0 (the handshakes that tell whether
TLS 1.0 is accepted): it stays silent until the client hangs up (`stall`), or closes the
connection without a TLS alert (`drop`), on the first such handshake only (`once`) or on
every one. Fallback probes (TLS_FALLBACK_SCSV) are served normally.

Every server stops with its `with` block; every loop is bounded in count and time.
"""

import socket
import ssl
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tests.servers.mail import self_signed

NET = "127.0.201"
PORT = 443
MAX_CONNECTIONS = 500
"""Connections one server accepts in a session (one scan makes a few dozen)."""
MAX_HOLD = 20.0
"""Seconds a stalled connection is held at most (the client gives up long before)."""
TARGET_SUITE = b"\xc0\x09"
FALLBACK_SCSV = b"\x56\x00"

Misbehaviour = Literal["stall", "drop"]


def _client_hello(conn: socket.socket) -> bytes:
    """The client's first record, left unread for the TLS layer (MSG_PEEK)."""
    deadline = time.monotonic() + 5
    seen = b""
    while time.monotonic() < deadline:
        seen = conn.recv(4096, socket.MSG_PEEK)
        if not seen or len(seen) >= 5 + int.from_bytes(seen[3:5], "big"):
            return seen
        time.sleep(0.01)
    return seen


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


def _silence(conn: socket.socket) -> None:
    """Read and ignore everything until the client hangs up, MAX_HOLD at most."""
    deadline = time.monotonic() + MAX_HOLD
    while time.monotonic() < deadline and conn.recv(4096):
        pass


@dataclass
class FlakyTls:
    """One server's behaviour and what it did."""

    ip: str
    misbehaviour: Misbehaviour
    once: bool
    misbehaved: int = 0
    """ClientHellos it answered with silence or a dropped connection."""


class _Listener:
    """A TCP listener whose connections each get a thread running `handler`, bounded in count."""

    def __init__(self, ip: str, port: int, handler: Callable[[socket.socket], None]) -> None:
        self._handler = handler
        self._stop = threading.Event()
        self._sock = socket.create_server((ip, port), backlog=64)
        self._sock.settimeout(0.2)
        self._thread = threading.Thread(target=self._serve, name=f"flaky-{ip}:{port}", daemon=True)

    def _serve(self) -> None:
        for _ in range(MAX_CONNECTIONS):
            conn = None
            while conn is None and not self._stop.is_set():
                with suppress(TimeoutError):
                    conn, _ = self._sock.accept()
            if conn is None:
                return
            conn.settimeout(MAX_HOLD)
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        # Scanners drop connections mid-dialogue on purpose; that is not a server failure.
        with conn, suppress(OSError):
            self._handler(conn)

    @contextmanager
    def running(self) -> Iterator[None]:
        self._thread.start()
        try:
            yield
        finally:
            self._stop.set()
            self._thread.join(timeout=5)
            self._sock.close()


class _Flaky:
    """The TLS server's handler: `flaky`'s misbehaviour on its handshakes, TLS on the others."""

    def __init__(self, flaky: FlakyTls, cert: Path, key: Path) -> None:
        self.flaky = flaky
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            self._context.minimum_version = ssl.TLSVersion.TLSv1
            self._context.maximum_version = ssl.TLSVersion.TLSv1_2
        self._context.set_ciphers("ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES128-GCM-SHA256:@SECLEVEL=0")
        self._context.load_cert_chain(cert, key)
        self._lock = threading.Lock()

    def _misbehaves(self, hello: bytes) -> bool:
        if not offers_target_at_tls10(hello):
            return False
        with self._lock:
            if self.flaky.once and self.flaky.misbehaved:
                return False
            self.flaky.misbehaved += 1
            return True

    def __call__(self, conn: socket.socket) -> None:
        if self._misbehaves(_client_hello(conn)):
            if self.flaky.misbehaviour == "stall":
                _silence(conn)
            return
        with self._context.wrap_socket(conn, server_side=True) as tls:
            if tls.recv(4096):
                tls.sendall(b"HTTP/1.0 200 OK\r\nStrict-Transport-Security: max-age=63072000\r\n\r\nok\n")


@contextmanager
def flaky_tls_servers(workdir: Path, servers: list[FlakyTls]) -> Iterator[list[FlakyTls]]:
    with ExitStack() as stack:
        for flaky in servers:
            (workdir / flaky.ip).mkdir()
            cert, key = self_signed(workdir / flaky.ip, flaky.ip)
            stack.enter_context(_Listener(flaky.ip, PORT, _Flaky(flaky, cert, key)).running())
        yield servers


SMTP_PORT = 25
SMTP_DECLINES = f"{NET}.20"
"""Lists STARTTLS in its EHLO reply, then answers the command with RFC 3207's 454."""
SMTP_WITHOUT_TLS = f"{NET}.21"
"""Does not list STARTTLS: a mail server without TLS."""


def _smtp(advertises: bool) -> Callable[[socket.socket], None]:
    def handle(conn: socket.socket) -> None:
        reader = conn.makefile("rb")
        conn.sendall(b"220 mail.attt.test ESMTP\r\n")
        for _ in range(10):
            line = reader.readline(512).strip().upper()
            if line.startswith(b"EHLO"):
                conn.sendall(
                    b"250-mail.attt.test\r\n250 STARTTLS\r\n" if advertises else b"250 mail.attt.test\r\n"
                )
            elif line == b"STARTTLS":
                conn.sendall(b"454 4.7.0 TLS not available due to temporary reason\r\n")
            else:
                conn.sendall(b"221 bye\r\n")
                return

    return handle


IMAP_BUSY = f"{NET}.22"
"""Greets with IMAP's BYE (too many connections) and hangs up."""
POP3_HANGS_UP = f"{NET}.23"
"""Greets and hangs up before any command."""


def _hang_up(greeting: bytes) -> Callable[[socket.socket], None]:
    def handle(conn: socket.socket) -> None:
        conn.sendall(greeting)

    return handle


@contextmanager
def mail_servers() -> Iterator[None]:
    with (
        _Listener(SMTP_DECLINES, SMTP_PORT, _smtp(advertises=True)).running(),
        _Listener(SMTP_WITHOUT_TLS, SMTP_PORT, _smtp(advertises=False)).running(),
        _Listener(IMAP_BUSY, 143, _hang_up(b"* BYE Too many connections from your address\r\n")).running(),
        _Listener(POP3_HANGS_UP, 110, _hang_up(b"+OK POP3 ready\r\n")).running(),
    ):
        yield
