"""The hostile lab: broken and malicious servers on 127.0.50.0/24, for the robustness tests.

Each host misbehaves in one way that real networks produce every day: a tarpit, an instant
reset, random bytes, a 1 MiB banner, a one-byte-per-second drip, an SSH server whose KEXINIT
is garbage, a TLS certificate full of markup and terminal escapes, and a host that answers the
port scan and is gone by the time the TLS and SSH probes come. Two well-behaved servers
(openssl s_server and sshd) share the lab so tests can show that the others' results are
unaffected.

Every server here stops with the session. Every loop is bounded in count and time: a server
thread never outlives `MAX_HOLD` seconds per connection, and the lab accepts at most
`MAX_CONNECTIONS` connections per listener.
"""

import datetime as dt
import secrets
import shutil
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.servers import stop_process

NET = "127.0.50"
START_TIMEOUT = 15.0
MAX_HOLD = 30.0
"""Seconds a lab server keeps one connection open at most (tarpit, drip)."""
MAX_CONNECTIONS = 256
"""Connections one listener accepts in a session; more are refused by closing at once."""
BANNER_BYTES = 1024 * 1024
DRIP_BYTES = 40

HOSTILE_CN = '<script>alert("attt")</script>'
HOSTILE_O = "Evil \"quoted\" 'single' & \x1b[31mRED\x1b[0m \x1b]0;pwned\x07"
HOSTILE_OU = "\u202etxt.exe \u2066isolate\u2069"
HOSTILE_SANS = ('<script>"x".attt.test', "bad'quote.attt.test", "\x1b[31mred.attt.test")
"""SAN DNS names that are not host names at all: X.509 libraries may refuse to parse them."""
HOSTILE_CERT_NAME = "hostile.attt.test"
HOSTILE_MARKERS = ("<script>", "\x1b[", "\u202e")
"""What must never reach an output in raw form."""

Handler = Callable[[socket.socket, threading.Event], None]


@dataclass(frozen=True)
class Endpoint:
    name: str
    ip: str
    port: int


@dataclass(frozen=True)
class HostileLab:
    """Where each lab server listens. `good_*` are well-behaved servers for comparison."""

    endpoints: dict[str, Endpoint]
    ca_file: Path

    def __getitem__(self, name: str) -> Endpoint:
        return self.endpoints[name]


# --- connection handlers: each is bounded in bytes and in time ---------------------------------


def hold(conn: socket.socket, stop: threading.Event) -> None:
    """Read and discard what the client sends until it leaves, the lab stops, or MAX_HOLD passes."""
    conn.settimeout(0.2)
    deadline = time.monotonic() + MAX_HOLD
    while not stop.is_set() and time.monotonic() < deadline:
        try:
            if not conn.recv(4096):
                return
        except TimeoutError:
            continue
        except OSError:
            return


def tarpit(conn: socket.socket, stop: threading.Event) -> None:
    hold(conn, stop)


def reset(conn: socket.socket, stop: threading.Event) -> None:
    """Close with SO_LINGER 0: the kernel sends RST instead of FIN."""
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def random_bytes(conn: socket.socket, stop: threading.Event) -> None:
    try:
        conn.sendall(secrets.token_bytes(16 * 1024))
    except OSError:
        return
    hold(conn, stop)


def megabanner(conn: socket.socket, stop: threading.Event) -> None:
    """A 1 MiB first line, the way a greeting would come: nothing sane reads it all into a report."""
    try:
        conn.sendall(b"SSH-2.0-" + b"A" * BANNER_BYTES + b"\r\n")
    except OSError:
        return
    hold(conn, stop)


def drip(conn: socket.socket, stop: threading.Event) -> None:
    """One byte per second of a plausible greeting, DRIP_BYTES at most."""
    for byte in b"SSH-2.0-OpenSSH_9.2p1 slow slow slow slow slow"[:DRIP_BYTES]:
        if stop.wait(1.0):
            return
        try:
            conn.sendall(bytes([byte]))
        except OSError:
            return


def bad_kexinit(conn: socket.socket, stop: threading.Event) -> None:
    """A valid identification string, then a KEXINIT packet whose first name-list claims 4 GiB."""
    payload = bytes([20]) + secrets.token_bytes(16) + struct.pack(">I", 0xFFFFFFF0) + b"curve25519-sha256"
    padding = 8 - (len(payload) + 5) % 8 + 8
    packet = struct.pack(">IB", len(payload) + padding + 1, padding) + payload + bytes(padding)
    try:
        conn.sendall(b"SSH-2.0-OpenSSH_9.9 hostile\r\n" + packet + secrets.token_bytes(64))
    except OSError:
        return
    hold(conn, stop)


def absurd_packet(conn: socket.socket, stop: threading.Event) -> None:
    """A valid identification string, then a packet length of 2 GiB followed by garbage."""
    try:
        conn.sendall(b"SSH-2.0-OpenSSH_9.9 hostile\r\n" + struct.pack(">IB", 0x7FFFFFF0, 4) + bytes(60))
    except OSError:
        return
    hold(conn, stop)


# --- listeners -------------------------------------------------------------------------------------


class Listener:
    """A TCP listener in this process that hands each connection to `handler` in its own thread.

    With `accept_limit`, the listening socket is closed after that many connections: later
    connections are refused, as when a host goes down after the port scan saw it.
    """

    def __init__(self, endpoint: Endpoint, handler: Handler, accept_limit: int | None = None) -> None:
        self.endpoint = endpoint
        self._handler = handler
        self._limit = MAX_CONNECTIONS if accept_limit is None else accept_limit
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._sock = socket.create_server((endpoint.ip, endpoint.port), backlog=64)
        self._sock.settimeout(0.2)
        self._thread = threading.Thread(target=self._serve, name=f"hostile-{endpoint.name}", daemon=True)
        self.accepted = 0

    def _serve(self) -> None:
        while not self._stop.is_set() and self.accepted < self._limit:
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            worker = threading.Thread(target=self._handle, args=(conn,), daemon=True)
            self._threads.append(worker)
            worker.start()
        self._sock.close()

    def _handle(self, conn: socket.socket) -> None:
        with conn, suppress(OSError):
            self._handler(conn, self._stop)

    @contextmanager
    def running(self) -> Iterator["Listener"]:
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join(timeout=5)
            self._sock.close()
            for worker in self._threads:
                worker.join(timeout=2)


# --- certificates and real server processes -----------------------------------------------------


def _write_pem_key(key: ec.EllipticCurvePrivateKey, path: Path) -> Path:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return path


def _certificate(
    workdir: Path, stem: str, subject: x509.Name, sans: list[x509.GeneralName]
) -> tuple[Path, Path]:
    """A self-signed EC certificate: the lab tests what attt does with the fields, not trust."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=90))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path = workdir / f"{stem}.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, _write_pem_key(key, workdir / f"{stem}.key")


def hostile_certificate(workdir: Path, *, hostile_sans: bool) -> tuple[Path, Path]:
    """Markup, quotes, terminal escapes and bidi overrides in the subject; with `hostile_sans`
    in the SAN names too, else a valid SAN (so the certificate can be fully described)."""
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, HOSTILE_CN),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, HOSTILE_O),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, HOSTILE_OU),
        ]
    )
    sans: list[x509.GeneralName] = [x509.DNSName(HOSTILE_CERT_NAME)]
    if hostile_sans:
        sans += [x509.DNSName(name) for name in HOSTILE_SANS]
        sans.append(x509.RFC822Name('"<img src=x onerror=alert(1)>"@attt.test'))
    return _certificate(workdir, "hostile-sans" if hostile_sans else "hostile", subject, sans)


def _wait_listening(endpoint: Endpoint, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise RuntimeError(f"{endpoint.name} exited with {proc.returncode}: {err[-800:]}")
        try:
            with socket.create_connection((endpoint.ip, endpoint.port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {endpoint.ip}:{endpoint.port} after {START_TIMEOUT}s")


@contextmanager
def _process(argv: list[str], endpoint: Endpoint) -> Iterator[None]:
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_listening(endpoint, proc)
        yield
    finally:
        stop_process(proc)


def _s_server(endpoint: Endpoint, cert: Path, key: Path) -> list[str]:
    return [
        "openssl", "s_server", "-accept", f"{endpoint.ip}:{endpoint.port}", "-cert", str(cert),
        "-key", str(key), "-www", "-quiet", "-naccept", "100000", "-groups", "X25519:P-256",
    ]  # fmt: skip


def _sshd(workdir: Path, endpoint: Endpoint) -> list[str]:
    host_key = workdir / "ssh_host_ed25519_key"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key)], check=True, timeout=30
    )
    config = workdir / "sshd_config"
    config.write_text(
        f"ListenAddress {endpoint.ip}:{endpoint.port}\nHostKey {host_key}\nPidFile none\nUsePAM no\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin no\n"
        "AuthorizedKeysFile none\n"
    )
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    sshd = shutil.which("sshd") or "/usr/sbin/sshd"
    return [sshd, "-D", "-e", "-f", str(config)]


ENDPOINTS = {
    "tarpit": Endpoint("tarpit", f"{NET}.1", 443),
    "reset": Endpoint("reset", f"{NET}.2", 443),
    "random": Endpoint("random", f"{NET}.3", 443),
    "megabanner": Endpoint("megabanner", f"{NET}.4", 22),
    "drip": Endpoint("drip", f"{NET}.5", 22),
    "bad_kexinit": Endpoint("bad_kexinit", f"{NET}.6", 22),
    "absurd_packet": Endpoint("absurd_packet", f"{NET}.6", 2222),
    "hostile_cert": Endpoint("hostile_cert", f"{NET}.7", 443),
    "hostile_sans": Endpoint("hostile_sans", f"{NET}.9", 443),
    "vanishing_tls": Endpoint("vanishing_tls", f"{NET}.8", 443),
    "vanishing_ssh": Endpoint("vanishing_ssh", f"{NET}.8", 22),
    "good_tls": Endpoint("good_tls", f"{NET}.20", 443),
    "good_ssh": Endpoint("good_ssh", f"{NET}.20", 22),
}
HANDLERS: dict[str, Handler] = {
    "tarpit": tarpit,
    "reset": reset,
    "random": random_bytes,
    "megabanner": megabanner,
    "drip": drip,
    "bad_kexinit": bad_kexinit,
    "absurd_packet": absurd_packet,
}
UNUSED_IP = f"{NET}.99"
"""Nothing ever listens here: every connection is refused."""


@contextmanager
def hostile_lab(workdir: Path) -> Iterator[HostileLab]:
    """Start every lab server; stop them all on exit."""
    e = ENDPOINTS
    with ExitStack() as stack:
        for name, handler in HANDLERS.items():
            stack.enter_context(Listener(e[name], handler).running())
        for name, hostile_sans in (("hostile_cert", False), ("hostile_sans", True)):
            cert, key = hostile_certificate(workdir, hostile_sans=hostile_sans)
            stack.enter_context(_process(_s_server(e[name], cert, key), e[name]))
        good_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "good.attt.test")])
        good_cert, good_key = _certificate(workdir, "good", good_name, [x509.DNSName("good.attt.test")])
        stack.enter_context(_process(_s_server(e["good_tls"], good_cert, good_key), e["good_tls"]))
        stack.enter_context(_process(_sshd(workdir, e["good_ssh"]), e["good_ssh"]))
        yield HostileLab(endpoints=dict(e), ca_file=good_cert)


@contextmanager
def vanishing_host() -> Iterator[tuple[Listener, Listener]]:
    """A host whose 443 and 22 each accept one connection (the port scan's) and then refuse."""
    with (
        Listener(ENDPOINTS["vanishing_tls"], tarpit, accept_limit=1).running() as tls,
        Listener(ENDPOINTS["vanishing_ssh"], tarpit, accept_limit=1).running() as ssh,
    ):
        yield tls, ssh


@pytest.fixture(scope="session")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostileLab]:
    """The hostile lab, running for the whole session."""
    with hostile_lab(tmp_path_factory.mktemp("hostile-lab")) as lab:
        yield lab
