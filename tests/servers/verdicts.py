"""The verdicts lab: servers that tempt a scanner into an unearned verdict, on 127.0.111.0/24.

Each one was once scored `pass` or `not_applicable` without the scan proving it: a TLS server
whose first TLS 1.0 handshake fails (the rest succeed), a port that is open but outside the
default scan list, a host where nothing listens, HTTPS servers whose answer is 1 MiB of headers
or comes too late, an SSH server that authenticates and then refuses every session channel,
a certificate whose SAN entries are markup, an escape byte and a spreadsheet formula, and a
mail server that offers no STARTTLS on its three ports. `legacy_tls_server` is a TLS 1.0 server
a test starts and stops itself (a host that goes down between two runs).

Every server stops with the `with` block; every loop is bounded in count and time.
"""

import datetime as dt
import logging
import socket
import ssl
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import paramiko
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

NET = "127.0.111"
MAX_CONNECTIONS = 2000
"""Connections one server accepts in a session (sslyze opens a few hundred per endpoint)."""
MAX_HOLD = 20.0
"""Seconds a server keeps one connection at most."""
HUGE_HEADER_BYTES = 1024 * 1024
SLOW_SECONDS = 15.0
"""How long the slow HTTPS server waits before answering: longer than any probe gives it."""
ODD_SANS = ("<b>markup</b>.attt.test", "esc\x1b[31m.attt.test", '=HYPERLINK("http://x")')
ODD_SAN_HOST = "odd-san.attt.test"
TLS10_ALERT = bytes.fromhex("15030100020231")
"""A fatal access_denied alert (49): sslyze does not read it as "suite rejected", so the step fails."""

Handler = Callable[[socket.socket], None]


@dataclass(frozen=True)
class VerdictsLab:
    flaky_tls10: str
    """Accepts TLS 1.0 but answers the first TLS 1.0 ClientHello with an alert."""
    unscanned_port: str
    """Listens on 8080 (allowed) and 31337 (outside the default scan list)."""
    nothing: str
    """A registered address where nothing listens."""
    huge_http: str
    slow_http: str
    no_session: str
    """SSH on 22: authenticates any public key, refuses every session channel."""
    drip_session: str
    """SSH on 22: authenticates any public key, then drips command output a byte at a time."""
    odd_san: str
    mail_without_tls: str
    """SMTP 25, POP3 110, IMAP 143 answer, and refuse every STARTTLS."""
    client_key: Path
    """A key the `no_session` server accepts."""
    tls10_alerts: Callable[[], int]


def _self_signed(workdir: Path, name: str, sans: list[x509.GeneralName]) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=60))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = workdir / f"{name}.crt", workdir / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


class _Server:
    """A TCP listener whose connections each get a thread running `handler`, bounded in count."""

    def __init__(self, ip: str, port: int, handler: Handler) -> None:
        self._handler = handler
        self._stop = threading.Event()
        self._sock = socket.create_server((ip, port), backlog=64)
        self._sock.settimeout(0.2)
        self._accepted = 0
        self._thread = threading.Thread(target=self._serve, name=f"verdicts-{ip}:{port}", daemon=True)

    def _serve(self) -> None:
        while not self._stop.is_set() and self._accepted < MAX_CONNECTIONS:
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._accepted += 1
            conn.settimeout(MAX_HOLD)
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        # Scanners drop connections mid-dialogue on purpose; that is not a server failure.
        with conn, suppress(OSError, ssl.SSLError, paramiko.SSHException, EOFError):
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


def _accept_only(conn: socket.socket) -> None:
    conn.recv(16)


def client_hello(conn: socket.socket) -> bytes:
    """The first bytes the client sent, left unread for the TLS layer (MSG_PEEK)."""
    deadline = time.monotonic() + 5
    seen = b""
    while time.monotonic() < deadline:
        seen = conn.recv(4096, socket.MSG_PEEK)
        if not seen or len(seen) >= 5 + int.from_bytes(seen[3:5], "big"):
            return seen
        time.sleep(0.01)
    return seen


def _is_tls10_hello(hello: bytes) -> bool:
    """A TLS 1.0 ClientHello that is not a fallback probe (TLS_FALLBACK_SCSV, 0x5600, absent)."""
    if len(hello) < 44 or hello[0] != 0x16 or hello[5] != 0x01 or hello[9:11] != b"\x03\x01":
        return False
    session_end = 44 + hello[43]
    suites_len = int.from_bytes(hello[session_end : session_end + 2], "big")
    suites = hello[session_end + 2 : session_end + 2 + suites_len]
    return b"\x56\x00" not in [suites[i : i + 2] for i in range(0, len(suites), 2)]


class Tls10:
    """Accepts TLS 1.0 to 1.2. With `flaky`, answers the first plain TLS 1.0 ClientHello with a
    fatal access_denied alert, which sslyze does not read as "suite rejected": its TLS 1.0 step
    fails, while every later TLS 1.0 handshake succeeds."""

    def __init__(self, cert: Path, key: Path, *, flaky: bool) -> None:
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            self._context.minimum_version = ssl.TLSVersion.TLSv1
            self._context.maximum_version = ssl.TLSVersion.TLSv1_2
        self._context.set_ciphers("ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES128-GCM-SHA256:@SECLEVEL=0")
        self._context.load_cert_chain(cert, key)
        self._lock = threading.Lock()
        self._flaky = flaky
        self.alerts = 0

    def __call__(self, conn: socket.socket) -> None:
        if self._flaky and _is_tls10_hello(client_hello(conn)):
            with self._lock:
                first = self.alerts == 0
                self.alerts += 1 if first else 0
            if first:
                conn.sendall(TLS10_ALERT)
                return
        with self._context.wrap_socket(conn, server_side=True) as tls:
            if tls.recv(4096):
                tls.sendall(b"HTTP/1.0 200 OK\r\nStrict-Transport-Security: max-age=63072000\r\n\r\nok\n")


def _https(cert: Path, key: Path, answer: Callable[[ssl.SSLSocket], None]) -> Handler:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)

    def handle(conn: socket.socket) -> None:
        with context.wrap_socket(conn, server_side=True) as tls:
            if tls.recv(4096):
                answer(tls)

    return handle


def _huge_headers(tls: ssl.SSLSocket) -> None:
    line = b"X-Padding: " + b"a" * 1000 + b"\r\n"
    tls.sendall(b"HTTP/1.1 200 OK\r\n" + line * (HUGE_HEADER_BYTES // len(line)) + b"\r\n")
    tls.recv(1)  # let the client read it all and leave first


def _slow(stop: threading.Event) -> Callable[[ssl.SSLSocket], None]:
    def answer(tls: ssl.SSLSocket) -> None:
        if not stop.wait(SLOW_SECONDS):
            tls.sendall(b"HTTP/1.1 200 OK\r\nStrict-Transport-Security: max-age=63072000\r\n\r\n")

    return answer


def _hsts_ok(tls: ssl.SSLSocket) -> None:
    tls.sendall(
        b"HTTP/1.1 200 OK\r\nStrict-Transport-Security: max-age=63072000\r\nContent-Length: 0\r\n\r\n"
    )


_MAIL_DIALOGUE = {
    25: (b"220 mail.attt.test ESMTP\r\n", b"502 5.5.1 no STARTTLS here\r\n"),
    110: (b"+OK POP3 ready\r\n", b"-ERR no STLS here\r\n"),
    143: (b"* OK IMAP4rev1 ready\r\n", b"a NO no STARTTLS here\r\n"),
}


def _mail_without_tls(port: int) -> Handler:
    greeting, refusal = _MAIL_DIALOGUE[port]

    def handle(conn: socket.socket) -> None:
        conn.sendall(greeting)
        reader = conn.makefile("rb")
        for _ in range(10):
            if not reader.readline(512):
                return
            conn.sendall(refusal)

    return handle


class _NoSessionInterface(paramiko.ServerInterface):
    """Any public key logs in; no session channel ever opens."""

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_none(self, username: str) -> int:
        return paramiko.common.AUTH_FAILED

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        return paramiko.common.AUTH_SUCCESSFUL

    def check_channel_request(self, kind: str, chanid: int) -> int:
        return paramiko.common.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED


class _DripInterface(_NoSessionInterface):
    """Opens the session and runs any command by sending one byte of output every half second."""

    def check_channel_request(self, kind: str, chanid: int) -> int:
        return paramiko.common.OPEN_SUCCEEDED

    def check_channel_exec_request(self, channel: paramiko.Channel, command: bytes) -> bool:
        threading.Thread(target=self._drip, args=(channel,), daemon=True).start()
        return True

    @staticmethod
    def _drip(channel: paramiko.Channel) -> None:
        with suppress(OSError, EOFError, paramiko.SSHException):
            for byte in b"port 22\npermitrootlogin no\n" * 20:
                if channel.closed:
                    return
                channel.send(bytes([byte]))
                time.sleep(0.5)


def _ssh_server(host_key: paramiko.PKey, interface: type[_NoSessionInterface]) -> Handler:
    """paramiko's server side with `interface` deciding what a logged-in client may do."""

    def handle(conn: socket.socket) -> None:
        transport = paramiko.Transport(conn)
        transport.set_log_channel("tests.verdicts.ssh")
        try:
            transport.add_server_key(host_key)
            transport.start_server(server=interface())
            deadline = time.monotonic() + MAX_HOLD
            while transport.is_active() and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            transport.close()

    return handle


@contextmanager
def legacy_tls_server(workdir: Path, ip: str) -> Iterator[None]:
    """A TLS 1.0-1.2 server on ip:443 with a self-signed certificate, for as long as the block runs."""
    with _Server(ip, 443, Tls10(*_plain_certificate(workdir), flaky=False)).running():
        yield


def _plain_certificate(workdir: Path) -> tuple[Path, Path]:
    return _self_signed(workdir, "verdicts.attt.test", [x509.DNSName("verdicts.attt.test")])


@contextmanager
def verdicts_lab(workdir: Path) -> Iterator[VerdictsLab]:
    """Make the keys and certificates in `workdir`, start every server, stop them all on exit."""
    names = ("flaky_tls10", "unscanned_port", "nothing", "huge_http", "slow_http", "no_session", "odd_san",
             "mail_without_tls", "drip_session")  # fmt: skip
    ips = {name: f"{NET}.{n}" for n, name in enumerate(names, 1)}
    plain = _plain_certificate(workdir)
    odd = _self_signed(workdir, ODD_SAN_HOST, [x509.DNSName(name) for name in ODD_SANS])
    host_key = paramiko.ECDSAKey.generate()
    client_path = workdir / "client_ecdsa"
    paramiko.ECDSAKey.generate().write_private_key_file(str(client_path))
    # paramiko logs every early close with a traceback; scanners close early on purpose.
    server_log = logging.getLogger("tests.verdicts.ssh")
    server_log.propagate = False
    server_log.addHandler(logging.NullHandler())
    flaky = Tls10(*plain, flaky=True)
    stop = threading.Event()
    servers = [
        _Server(ips["flaky_tls10"], 443, flaky),
        _Server(ips["unscanned_port"], 8080, _accept_only),
        _Server(ips["unscanned_port"], 31337, _accept_only),
        _Server(ips["huge_http"], 443, _https(*plain, _huge_headers)),
        _Server(ips["slow_http"], 443, _https(*plain, _slow(stop))),
        _Server(ips["no_session"], 22, _ssh_server(host_key, _NoSessionInterface)),
        _Server(ips["drip_session"], 22, _ssh_server(host_key, _DripInterface)),
        _Server(ips["odd_san"], 443, _https(*odd, _hsts_ok)),
        *(_Server(ips["mail_without_tls"], port, _mail_without_tls(port)) for port in _MAIL_DIALOGUE),
    ]
    with ExitStack() as stack:
        stack.callback(stop.set)
        for server in servers:
            stack.enter_context(server.running())
        yield VerdictsLab(**ips, client_key=client_path, tls10_alerts=lambda: flaky.alerts)


@pytest.fixture(scope="session")
def verdicts_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VerdictsLab]:
    with verdicts_lab(tmp_path_factory.mktemp("verdicts")) as lab:
        yield lab
