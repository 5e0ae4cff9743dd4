"""TLS servers that leave some curve offers unanswered, on 127.0.241.0/24.

Each is OpenSSL's s_server behind a front that reads the `supported_groups` of each
ClientHello: when the offer is the one the server is set to ignore, the front stays silent until
the client hangs up (never longer than the hostile lab's `MAX_HOLD`), on every such offer or on
the first one only; every other connection is relayed to the s_server, byte for byte. The
s_server meets Mozilla's intermediate profile (its suites, TLS 1.2 and maybe 1.3, an RSA
certificate from the test CA) but for one group, P-521: a scan that reads every group fails
`tls.mozilla_profile` on it, and on it only.

Two offers are ignored here: P-521 alone (sslyze's one-curve test of a curve the server
accepts, which the elimination also makes below TLS 1.3 to confirm a curve the server picked),
and any offer with P-224 in it (the elimination's first offer, every curve at once, and the
one-curve test of P-224; no other handshake of a scan offers it).

Every server stops with its `with` block; every loop is bounded in count and time.
"""

import datetime as dt
import selectors
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import rsa

from tests.servers.hostile import MAX_HOLD, Endpoint, Listener, tarpit
from tests.servers.tls import MOZILLA_INTERMEDIATE_CIPHERS, TlsServer, _leaf, _make_ca, _process, _s_server
from tests.servers.verdicts import client_hello

NET = "127.0.241"
PORT = 443
BACKEND_PORT = 4433
"""Where each front's s_server listens, on the front's own address."""
SECP224R1, SECP521R1 = 0x0015, 0x0019
"""IANA codepoints of the groups named here."""
GROUPS = "X25519:P-256:P-384:P-521"
_SUPPORTED_GROUPS = 0x000A

Offer = Callable[[tuple[int, ...]], bool]


def p521_alone(groups: tuple[int, ...]) -> bool:
    return groups == (SECP521R1,)


def with_p224(groups: tuple[int, ...]) -> bool:
    return SECP224R1 in groups


def offered_groups(hello: bytes) -> tuple[int, ...]:
    """The `supported_groups` of a ClientHello record, in order; empty when it has none (or is
    not a whole ClientHello)."""
    if len(hello) < 44 or hello[0] != 0x16 or hello[5] != 0x01:
        return ()
    at = 44 + hello[43]  # past the random and the session id
    at += 2 + int.from_bytes(hello[at : at + 2], "big")  # cipher suites
    at += 1 + hello[at] if at < len(hello) else 0  # compression methods
    end = min(len(hello), at + 2 + int.from_bytes(hello[at : at + 2], "big"))
    at += 2
    while at + 4 <= end:
        kind, size = int.from_bytes(hello[at : at + 2], "big"), int.from_bytes(hello[at + 2 : at + 4], "big")
        body = hello[at + 4 : at + 4 + size]
        if kind == _SUPPORTED_GROUPS:
            return tuple(int.from_bytes(body[i : i + 2], "big") for i in range(2, len(body) - 1, 2))
        at += 4 + size
    return ()


@dataclass
class CurveServer:
    """One server's setting and what its front did."""

    ip: str
    ignores: Offer | None
    """The offers its front leaves silent; None: a server that answers everything."""
    once: bool = False
    """Only the first such offer is left silent."""
    tls13: bool = False
    """The s_server speaks TLS 1.3 too; else TLS 1.2 at most (the elimination then confirms each
    curve it finds alone)."""
    silenced: int = 0
    """ClientHellos its front left silent."""


class _Front:
    """`server`'s silence on the offers it ignores, the s_server behind it on the others."""

    def __init__(self, server: CurveServer) -> None:
        self.server = server
        self._lock = threading.Lock()

    def _ignores(self, hello: bytes) -> bool:
        if self.server.ignores is None or not self.server.ignores(offered_groups(hello)):
            return False
        with self._lock:
            if self.server.once and self.server.silenced:
                return False
            self.server.silenced += 1
            return True

    def __call__(self, conn: socket.socket, stop: threading.Event) -> None:
        conn.settimeout(MAX_HOLD)
        if self._ignores(client_hello(conn)):
            tarpit(conn, stop)
            return
        with socket.create_connection((self.server.ip, BACKEND_PORT), timeout=5) as backend:
            _relay(conn, backend, stop)


def _relay(client: socket.socket, backend: socket.socket, stop: threading.Event) -> None:
    """Bytes both ways until either side hangs up, the lab stops, or MAX_HOLD passes."""
    deadline = time.monotonic() + MAX_HOLD
    with selectors.DefaultSelector() as selector:
        selector.register(client, selectors.EVENT_READ, (client, backend))
        selector.register(backend, selectors.EVENT_READ, (backend, client))
        while not stop.is_set() and time.monotonic() < deadline:
            for key, _ in selector.select(timeout=0.2):
                source, target = key.data
                data = source.recv(65536)
                if not data:
                    return
                target.sendall(data)


@contextmanager
def curve_servers(
    workdir: Path, servers: list[CurveServer], accept_limit: int | None = None
) -> Iterator[Path]:
    """The servers, each front accepting `accept_limit` connections (the hostile lab's bound if
    None; sslyze's exhaustive enumeration makes about 600); yields the test CA's certificate."""
    now = dt.datetime.now(dt.UTC)
    issuer, ca_file = _make_ca(workdir, now)
    with ExitStack() as stack:
        for server in servers:
            backend = TlsServer(
                f"curves-{server.ip}", server.ip, BACKEND_PORT, f"curves-{server.ip}.attt.test"
            )
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            day = dt.timedelta(days=1)
            cert = _leaf(workdir, backend.name, backend.hostname, key, issuer, now - day, now + 89 * day)
            flags = ["-groups", GROUPS, "-cipher", MOZILLA_INTERMEDIATE_CIPHERS]
            flags += [] if server.tls13 else ["-no_tls1_3"]
            stack.enter_context(_process(_s_server(backend, *cert, *flags), backend, workdir))
            front = Listener(Endpoint(f"curves-{server.ip}", server.ip, PORT), _Front(server), accept_limit)
            stack.enter_context(front.running())
        yield ca_file
