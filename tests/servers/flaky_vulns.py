"""TLS servers that give no answer to the handshake of one vulnerability test, on 127.0.207.0/24.

Each is the verdicts lab's TLS 1.0 to 1.2 server (tests/servers/verdicts.py, `Tls10`) behind a
front that closes the connection without a TLS alert (`drop`), or stays silent until the client
hangs up (`stall`), on the ClientHellos of one test, the first one only (`once`) or every one:

- `fallback`: a ClientHello offering TLS_FALLBACK_SCSV (sslyze's downgrade probe);
- `heartbeat`: a ClientHello followed at once by a heartbeat record (sslyze's Heartbleed probe);
- `no-sni`: a ClientHello without the server_name and supported_versions extensions: the
  Heartbleed and CCS injection probes (and the certificate fetched without SNI); attt's own
  "does anything answer?" handshake offers TLS 1.3 and is served;
- `legacy`: a ClientHello offering DEFLATE compression, as the legacy OpenSSL client sslyze
  uses for the renegotiation, compression and fallback tests does. Its server speaks TLS 1.2
  and 1.3 (`Tls13`), where sslyze reads a refused TLS 1.2 handshake as "secure renegotiation",
  "renegotiation refused" and "no compression";
- `robot`: a TLS 1.2 ClientHello offering DEFLATE and AES128-GCM-SHA256 (0x009C) and no
  0xC0xx suite, as ROBOT's legacy handshakes that fetch the RSA key do (cipher lists
  "AES128-GCM-SHA256:AES256-GCM-SHA384", then "RSA"); the legacy client's elimination of TLS
  1.2 suites offers anonymous ECDH suites (0xC015...) with them, and ROBOT's payloads go out
  from the modern client. Its server speaks TLS 1.2 and 1.3 with an RSA key, AES128-GCM-SHA256
  and ECDHE-RSA-AES128-GCM-SHA256 (`Tls13`);
- `robot-gcm`: only the first of those (AES128-GCM-SHA256 and AES256-GCM-SHA384 alone), as a
  server that resets a handshake offering no suite it has would; same server.
- `robot-payload`: the ClientHello of a ROBOT payload's connection (the modern client, the same
  two suites, no DEFLATE), answered with a fatal handshake_failure alert (`alert`): the payload
  is then never sent, yet sslyze records the empty text as the server's answer to it. With
  `positions`, only the payload connections at those places of each run of five (the scan must
  then make one connection at a time for the places to be ROBOT's payloads); same server.
- `rsa-certificate`: sslyze's handshake for the certificate sent to clients that offer only RSA
  authentication (TLS 1.2, the OCSP status_request extension, ECDHE-RSA-AES128-GCM-SHA256 and no
  ECDSA suite). Its server speaks TLS 1.2 and 1.3 and holds an ECDSA and an RSA certificate
  (`Tls13`, `dual`).

Every server stops with its `with` block; every loop is bounded in count and time (the
hostile lab's `Listener`).
"""

import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from attt.checks.tls._sslyze import Endpoint as ScanEndpoint
from attt.checks.tls._sslyze import ScanOptions, scan
from attt.checks.tls.models import TlsData
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

DEFLATE = 0x01
RSA_GCM = b"\x00\x9c"
ROBOT_GCM = {RSA_GCM, b"\x00\x9d", b"\x00\xff"}
ROBOT_PAYLOADS = 5
"""Connections of one ROBOT run that carry a payload, one each, in sslyze's order."""
HANDSHAKE_FAILURE = b"\x15\x03\x03\x00\x02\x02\x28"
"""A fatal handshake_failure alert record."""
STATUS_REQUEST = 0x0005
ECDHE_RSA_GCM = b"\xc0\x2f"
ECDHE_ECDSA_GCM = b"\xc0\x2b"
Test = Literal[
    "fallback", "heartbeat", "no-sni", "legacy", "robot", "robot-gcm", "robot-payload", "rsa-certificate"
]


class Tls13:
    """Accepts TLS 1.2 and 1.3, and answers one request; with `rsa` (its key is RSA) TLS 1.2
    offers AES128-GCM-SHA256 (RSA key exchange) and ECDHE-RSA-AES128-GCM-SHA256 only. `second`
    is one more certificate and key (of the other key type: OpenSSL keeps one of each)."""

    def __init__(
        self, cert: Path, key: Path, *, rsa: bool = False, second: tuple[Path, Path] | None = None
    ) -> None:
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._context.minimum_version = ssl.TLSVersion.TLSv1_2
        if rsa:
            self._context.set_ciphers("AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256")
        self._context.load_cert_chain(cert, key)
        if second is not None:
            self._context.load_cert_chain(*second)

    def __call__(self, conn: socket.socket) -> None:
        with self._context.wrap_socket(conn, server_side=True) as tls:
            if tls.recv(4096):
                tls.sendall(b"HTTP/1.0 200 OK\r\n\r\nok\n")


def rsa_self_signed(directory: Path, address: str) -> tuple[Path, Path]:
    """An RSA certificate for `address` (an IP SAN) and its key."""
    cert, key = directory / "rsa.pem", directory / "rsa.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "2", "-subj", "/CN=attt flaky probe", "-addext", f"subjectAltName=IP:{address}"],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    return cert, key


def _offers(hello: bytes) -> tuple[set[bytes], set[int], set[int]]:
    """The cipher suites, compression methods and extension types of a ClientHello record
    (empty if it is none)."""
    if len(hello) < 44 or hello[0] != 0x16 or hello[5] != 0x01:
        return set(), set(), set()
    at = 44 + hello[43]
    length = int.from_bytes(hello[at : at + 2], "big")
    body = hello[at + 2 : at + 2 + length]
    suites = {body[i : i + 2] for i in range(0, len(body) - 1, 2)}
    at += 2 + length
    compressions = set(hello[at + 1 : at + 1 + hello[at]])
    at += 1 + hello[at]
    end = at + 2 + int.from_bytes(hello[at : at + 2], "big")
    extensions: set[int] = set()
    at += 2
    while at + 4 <= min(end, len(hello)):
        extensions.add(int.from_bytes(hello[at : at + 2], "big"))
        at += 4 + int.from_bytes(hello[at + 2 : at + 4], "big")
    return suites, compressions, extensions


def _without_sni(hello: bytes) -> bool:
    suites, _, extensions = _offers(hello)
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
        return FALLBACK_SCSV in _offers(hello)[0]
    if test == "legacy":
        return DEFLATE in _offers(hello)[1]
    if test == "robot-gcm":
        return _offers(hello)[0] == ROBOT_GCM
    if test == "rsa-certificate":
        suites, _, extensions = _offers(hello)
        asks_status = STATUS_REQUEST in extensions and hello[9:11] == b"\x03\x03"
        return asks_status and ECDHE_RSA_GCM in suites and ECDHE_ECDSA_GCM not in suites
    if test == "robot-payload":
        suites, compressions, _ = _offers(hello)
        return suites == ROBOT_GCM and DEFLATE not in compressions
    if test == "robot":
        suites, compressions, _ = _offers(hello)
        tls12 = hello[9:11] == b"\x03\x03"
        rsa_only = RSA_GCM in suites and all(suite[0] != 0xC0 for suite in suites)
        return tls12 and DEFLATE in compressions and rsa_only
    if not _without_sni(hello):
        return False
    return test == "no-sni" or _followed_by_heartbeat(conn, hello)


@dataclass
class FlakyProbe:
    """One server: which test's handshakes it leaves unanswered, how, and how many it did."""

    ip: str
    test: Test
    misbehaviour: Misbehaviour | Literal["alert"]
    once: bool
    positions: frozenset[int] | None = None
    """`robot-payload` only: the places (0 to 4) in each run of five payloads it misbehaves on."""
    misbehaved: int = 0
    seen: int = 0
    """ClientHellos of its test seen so far."""


class _Front:
    def __init__(self, flaky: FlakyProbe, cert: Path, key: Path) -> None:
        self.flaky = flaky
        self._tls: Callable[[socket.socket], None] = Tls10(cert, key, flaky=False)
        if flaky.test == "legacy":
            self._tls = Tls13(cert, key)
        elif flaky.test.startswith("robot"):
            self._tls = Tls13(cert, key, rsa=True)
        elif flaky.test == "rsa-certificate":
            self._tls = Tls13(cert, key, second=rsa_self_signed(cert.parent, flaky.ip))
        self._lock = threading.Lock()

    def _misbehaves(self, conn: socket.socket, hello: bytes) -> bool:
        if not _is_test(self.flaky.test, conn, hello):
            return False
        with self._lock:
            place = self.flaky.seen % ROBOT_PAYLOADS
            self.flaky.seen += 1
            if self.flaky.positions is not None and place not in self.flaky.positions:
                return False
            if self.flaky.once and self.flaky.misbehaved:
                return False
            self.flaky.misbehaved += 1
            return True

    def __call__(self, conn: socket.socket, stop: threading.Event) -> None:
        conn.settimeout(MAX_HOLD)
        hello = client_hello(conn)
        misbehaves = self._misbehaves(conn, hello)
        conn.settimeout(MAX_HOLD)
        if not misbehaves:
            self._tls(conn)
        elif self.flaky.misbehaviour == "stall":
            tarpit(conn, stop)
        elif self.flaky.misbehaviour == "alert":
            conn.recv(len(hello))  # the ClientHello read, as a server refusing it would
            conn.sendall(HANDSHAKE_FAILURE)


@contextmanager
def flaky_probe_servers(workdir: Path, servers: list[FlakyProbe]) -> Iterator[list[FlakyProbe]]:
    with ExitStack() as stack:
        for flaky in servers:
            (workdir / flaky.ip).mkdir()
            keys = rsa_self_signed if flaky.test.startswith("robot") else self_signed
            front = _Front(flaky, *keys(workdir / flaky.ip, flaky.ip))
            stack.enter_context(Listener(Endpoint(f"probe-{flaky.ip}", flaky.ip, PORT), front).running())
        yield servers


def scan_flaky_probes(
    workdir: Path, servers: dict[str, FlakyProbe], options: ScanOptions
) -> dict[str, TlsData]:
    """Each named server's facts, scanned together while they run; every one must be scanned."""
    endpoints = {name: ScanEndpoint(ip=s.ip, port=PORT, http=False) for name, s in servers.items()}
    with flaky_probe_servers(workdir, list(servers.values())):
        outcomes = scan(list(endpoints.values()), options)
    found: dict[str, TlsData] = {}
    for name, endpoint in endpoints.items():
        outcome = outcomes[endpoint]
        assert isinstance(outcome, TlsData), (name, outcome)
        found[name] = outcome
    return found
