"""TLS servers that give no answer to the handshake of one vulnerability test, on 127.0.207.0/24.

Each is the verdicts lab's TLS 1.0 to 1.2 server (tests/servers/verdicts.py, `Tls10`) behind a
front that closes the connection without a TLS alert (`drop`), or stays silent until the client
hangs up (`stall`), on the ClientHellos of one test, the first one only (`once`) or every one:

- `fallback`: a ClientHello offering TLS_FALLBACK_SCSV (sslyze's downgrade probe);
- `heartbeat`: a ClientHello followed at once by a heartbeat record (sslyze's Heartbleed probe);
- `no-sni`: a ClientHello without the server_name and supported_versions extensions: the
  Heartbleed and CCS injection probes (and the certificate fetched without SNI); attt's own
  "does anything answer?" handshake offers TLS 1.3 and is served.

Every server stops with its `with` block; every loop is bounded in count and time (the
hostile lab's `Listener`).
"""

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tests.servers.flaky_tls import FALLBACK_SCSV, Misbehaviour
from tests.servers.hostile import MAX_HOLD, Endpoint, Listener, tarpit
from tests.servers.mail import self_signed
from tests.servers.verdicts import Tls10, client_hello

NET = "127.0.207"
PORT = 443
HEARTBEAT = 0x18
SERVER_NAME = 0x0000
SUPPORTED_VERSIONS = 0x002B
_FOLLOW_UP = 0.3
"""Seconds to wait for a record after a ClientHello without SNI: sslyze writes its heartbeat
right behind the hello, before reading anything."""

Test = Literal["fallback", "heartbeat", "no-sni"]


def _suites_and_extensions(hello: bytes) -> tuple[set[bytes], set[int]]:
    """The cipher suites and extension types of a ClientHello record (empty if it is none)."""
    if len(hello) < 44 or hello[0] != 0x16 or hello[5] != 0x01:
        return set(), set()
    at = 44 + hello[43]
    length = int.from_bytes(hello[at : at + 2], "big")
    body = hello[at + 2 : at + 2 + length]
    suites = {body[i : i + 2] for i in range(0, len(body) - 1, 2)}
    at += 2 + length
    at += 1 + hello[at]  # compression methods
    end = at + 2 + int.from_bytes(hello[at : at + 2], "big")
    extensions: set[int] = set()
    at += 2
    while at + 4 <= min(end, len(hello)):
        extensions.add(int.from_bytes(hello[at : at + 2], "big"))
        at += 4 + int.from_bytes(hello[at + 2 : at + 4], "big")
    return suites, extensions


def _without_sni(hello: bytes) -> bool:
    suites, extensions = _suites_and_extensions(hello)
    return bool(suites) and not extensions & {SERVER_NAME, SUPPORTED_VERSIONS}


def _followed_by_heartbeat(conn: socket.socket, hello: bytes) -> bool:
    """Whether a heartbeat record comes right behind the ClientHello (left unread)."""
    size = 5 + int.from_bytes(hello[3:5], "big")
    deadline = time.monotonic() + _FOLLOW_UP
    while time.monotonic() < deadline:
        conn.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            seen = conn.recv(size + 1, socket.MSG_PEEK)
        except TimeoutError:
            break
        if len(seen) > size:
            return seen[size] == HEARTBEAT
        time.sleep(0.01)
    return False


def _is_test(test: Test, conn: socket.socket, hello: bytes) -> bool:
    if test == "fallback":
        return FALLBACK_SCSV in _suites_and_extensions(hello)[0]
    if not _without_sni(hello):
        return False
    return test == "no-sni" or _followed_by_heartbeat(conn, hello)


@dataclass
class FlakyProbe:
    """One server: which test's handshakes it leaves unanswered, how, and how many it did."""

    ip: str
    test: Test
    misbehaviour: Misbehaviour
    once: bool
    misbehaved: int = 0


class _Front:
    def __init__(self, flaky: FlakyProbe, cert: Path, key: Path) -> None:
        self.flaky = flaky
        self._tls = Tls10(cert, key, flaky=False)
        self._lock = threading.Lock()

    def _misbehaves(self, conn: socket.socket, hello: bytes) -> bool:
        if not _is_test(self.flaky.test, conn, hello):
            return False
        with self._lock:
            if self.flaky.once and self.flaky.misbehaved:
                return False
            self.flaky.misbehaved += 1
            return True

    def __call__(self, conn: socket.socket, stop: threading.Event) -> None:
        conn.settimeout(MAX_HOLD)
        misbehaves = self._misbehaves(conn, client_hello(conn))
        conn.settimeout(MAX_HOLD)
        if not misbehaves:
            self._tls(conn)
        elif self.flaky.misbehaviour == "stall":
            tarpit(conn, stop)


@contextmanager
def flaky_probe_servers(workdir: Path, servers: list[FlakyProbe]) -> Iterator[list[FlakyProbe]]:
    with ExitStack() as stack:
        for flaky in servers:
            (workdir / flaky.ip).mkdir()
            front = _Front(flaky, *self_signed(workdir / flaky.ip, flaky.ip))
            stack.enter_context(Listener(Endpoint(f"probe-{flaky.ip}", flaky.ip, PORT), front).running())
        yield servers
