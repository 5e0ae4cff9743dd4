"""Real TLS servers for tests and the TLS benchmark, on 127.0.30.0/24.

Everything is made here, per session: a test CA (never installed anywhere; scans get it as a
trust anchor), the leaf certificates, and one server process per configuration. `tls_lab()`
is a plain context manager so that `tests/bench/bench_tls.py` can start the same servers
outside pytest; the `tls_lab` fixture wraps it for the test session.
"""

import datetime as dt
import ipaddress
import os
import shutil
import socket
import ssl
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
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

from tests.servers import stop_process

NET = "127.0.30"
DOMAIN = "attt.test"
START_TIMEOUT = 15.0
# gnutls-serv cannot bind one address, so it gets a port no other test session uses.
GNUTLS_PORT = 30443

MOZILLA_INTERMEDIATE_CIPHERS = ":".join(
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
    )
)
# TLS 1.0-1.2 with 3DES and static RSA key exchange: what OpenSSL 3 here can no longer offer.
GNUTLS_LEGACY_PRIORITY = (
    "NONE:+VERS-TLS1.2:+VERS-TLS1.1:+VERS-TLS1.0:+RSA:+ECDHE-RSA:+AES-128-CBC:+3DES-CBC"
    ":+SHA1:+SIGN-ALL:+COMP-NULL:+GROUP-SECP256R1:+CTYPE-X509"
)


def openssl_system_conf(*settings: str) -> str:
    """An OPENSSL_CONF file that changes the system default TLS settings of one process."""
    head = (
        "openssl_conf = default_conf",
        "[default_conf]",
        "ssl_conf = ssl_sect",
        "[ssl_sect]",
        "system_default = system_default_sect",
        "[system_default_sect]",
    )
    return "\n".join((*head, *settings)) + "\n"


# Lets one OpenSSL process speak TLS 1.0 and use an RSA-1024 / SHA-1 certificate.
OPENSSL_LEGACY_CONF = openssl_system_conf("MinProtocol = TLSv1", "CipherString = DEFAULT@SECLEVEL=0")


@dataclass(frozen=True)
class TlsServer:
    """One endpoint of the lab: where it listens and the name a client should ask for."""

    name: str
    ip: str
    port: int
    hostname: str


@dataclass(frozen=True)
class TlsLab:
    ca_file: Path
    servers: dict[str, TlsServer]
    now: dt.datetime
    """When the certificates were made: their validity dates are relative to it."""


def lab_servers(net: str) -> dict[str, TlsServer]:
    """The lab's endpoints on `net` (the first three octets), so the demo can run its own copy."""
    return {
        "modern": TlsServer("modern", f"{net}.1", 443, f"modern.{DOMAIN}"),
        "intermediate": TlsServer("intermediate", f"{net}.2", 443, f"intermediate.{DOMAIN}"),
        "legacy": TlsServer("legacy", f"{net}.3", 443, f"legacy.{DOMAIN}"),
        "tripledes": TlsServer("tripledes", f"{net}.4", GNUTLS_PORT, f"tripledes.{DOMAIN}"),
        "expired": TlsServer("expired", f"{net}.5", 443, f"expired.{DOMAIN}"),
        "selfsigned": TlsServer("selfsigned", f"{net}.6", 443, f"selfsigned.{DOMAIN}"),
        "plaintcp": TlsServer("plaintcp", f"{net}.7", 443, f"plaintcp.{DOMAIN}"),
        "tarpit": TlsServer("tarpit", f"{net}.8", 443, f"tarpit.{DOMAIN}"),
        "smtp": TlsServer("smtp", f"{net}.10", 25, f"smtp.{DOMAIN}"),
        "imap": TlsServer("imap", f"{net}.11", 143, f"imap.{DOMAIN}"),
        "pop3": TlsServer("pop3", f"{net}.12", 110, f"pop3.{DOMAIN}"),
    }


SERVERS = lab_servers(NET)
CLOSED = TlsServer("closed", f"{NET}.9", 443, f"closed.{DOMAIN}")
"""Nothing listens here: connections are refused."""


# --- certificates -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Issuer:
    name: x509.Name
    key: ec.EllipticCurvePrivateKey


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "attt tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _write_key(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, path: Path) -> Path:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return path


def _make_ca(workdir: Path, now: dt.datetime) -> tuple[_Issuer, Path]:
    # An EC CA, so that an ECDSA leaf can carry the ecdsa-with-SHA256 signature Mozilla's
    # modern profile asks for; RSA leaves get ecdsa-with-SHA256 too, which intermediate allows.
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name("attt test CA")
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    path = workdir / "ca.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(key, workdir / "ca.key")
    return _Issuer(name, key), path


def _leaf(
    workdir: Path,
    stem: str,
    san: str,
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
    issuer: _Issuer | None,
    not_before: dt.datetime,
    not_after: dt.datetime,
    ocsp_url: str | None = None,
    more_sans: tuple[str, ...] = (),
    cn_only: bool = False,
) -> tuple[Path, Path]:
    """A server certificate for `san` (and `more_sans`, names or addresses); self-signed when
    `issuer` is None. With `cn_only`, `san` is in the subject's CN alone, as before browsers
    required a subjectAltName: the extension holds `more_sans` only, and is left out without them."""
    subject = _name(san)
    signer_name, signer_key = (subject, key) if issuer is None else (issuer.name, issuer.key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(signer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    )
    alt_names = [_general_name(name) for name in (more_sans if cn_only else (san, *more_sans))]
    if alt_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), critical=False
        )
    if ocsp_url is not None:
        builder = builder.add_extension(
            x509.AuthorityInformationAccess(
                [
                    x509.AccessDescription(
                        AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(ocsp_url)
                    )
                ]
            ),
            critical=False,
        )
    cert = builder.sign(signer_key, hashes.SHA256())
    cert_path = workdir / f"{stem}.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, _write_key(key, workdir / f"{stem}.key")


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _sha1_rsa1024_leaf(workdir: Path, san: str, days: int) -> tuple[Path, Path]:
    """RSA-1024 signed with ECDSA-SHA1: `cryptography` refuses SHA-1 signatures, the openssl CLI does not."""
    key_path = _write_key(
        rsa.generate_private_key(public_exponent=65537, key_size=1024),  # noqa: S505 - the weak key under test
        workdir / "legacy.key",
    )
    csr_path, ext_path, cert_path = workdir / "legacy.csr", workdir / "legacy.ext", workdir / "legacy.pem"
    ext_path.write_text(
        f"subjectAltName=DNS:{san}\nbasicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\n"
    )
    run = {"check": True, "capture_output": True, "timeout": 30}
    subprocess.run(
        [
            "openssl",
            "req",
            "-new",
            "-key",
            str(key_path),
            "-subj",
            f"/O=attt tests/CN={san}",
            "-out",
            str(csr_path),
        ],
        **run,  # type: ignore[call-overload]
    )
    subprocess.run(
        [
            "openssl",
            "x509",
            "-req",
            "-sha1",
            "-days",
            str(days),
            "-in",
            str(csr_path),
            "-CA",
            str(workdir / "ca.pem"),
            "-CAkey",
            str(workdir / "ca.key"),
            "-set_serial",
            "4242",
            "-extfile",
            str(ext_path),
            "-out",
            str(cert_path),
        ],
        **run,  # type: ignore[call-overload]
    )
    return cert_path, key_path


# --- servers ----------------------------------------------------------------------------------


def _wait_listening(ip: str, port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = log.read_text(errors="replace")[-800:]
            raise RuntimeError(f"server for {ip}:{port} exited with {proc.returncode}: {err}")
        try:
            with socket.create_connection((ip, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {ip}:{port} after {START_TIMEOUT}s")


@contextmanager
def _process(
    argv: list[str], server: TlsServer, workdir: Path, env: dict[str, str] | None = None
) -> Iterator[None]:
    log = workdir / f"{server.name}.log"
    # A file, not a pipe: nobody reads a pipe while the server runs, and a chatty server
    # (gnutls-serv) blocks for good once the pipe buffer is full.
    with log.open("wb") as log_file:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,  # s_server reads commands from stdin; keep it open and silent
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=None if env is None else {**os.environ, **env},
        )
    try:
        _wait_listening(server.ip, server.port, proc, log)
        yield
    finally:
        stop_process(proc)


def _s_server(server: TlsServer, cert: Path, key: Path, *flags: str) -> list[str]:
    return [
        "openssl", "s_server", "-accept", f"{server.ip}:{server.port}", "-cert", str(cert), "-key", str(key),
        "-www", "-quiet", "-naccept", "100000", *flags,
    ]  # fmt: skip


def _nginx_conf(workdir: Path, server: TlsServer, cert: Path, key: Path) -> Path:
    conf = workdir / "nginx.conf"
    temp = workdir / "nginx-temp"
    temp.mkdir(exist_ok=True)
    conf.write_text(
        f"""
daemon off;
master_process off;
worker_processes 1;
pid {workdir}/nginx.pid;
error_log {workdir}/nginx-error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    server {{
        listen {server.ip}:{server.port} ssl;
        server_name {server.hostname};
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_ecdh_curve X25519:prime256v1:secp384r1;
        ssl_ciphers {MOZILLA_INTERMEDIATE_CIPHERS};
        ssl_prefer_server_ciphers off;
        add_header Strict-Transport-Security "max-age=63072000; includeSubDomains" always;
        location / {{ return 200 "ok\\n"; }}
    }}
}}
"""
    )
    return conf


Handler = Callable[[socket.socket], None]


def _reply_once(text: bytes) -> Handler:
    def handle(conn: socket.socket) -> None:
        conn.sendall(text)

    return handle


def _smtp_starttls(context: ssl.SSLContext) -> Handler:
    """A minimal SMTP server that offers STARTTLS, then keeps answering 250 over TLS."""

    def handle(conn: socket.socket) -> None:
        plain = conn.makefile("rb")
        conn.sendall(b"220 smtp.attt.test ESMTP attt lab\r\n")
        for _ in range(10):
            line = plain.readline(512).strip().upper()
            if line.startswith((b"EHLO", b"HELO")):
                conn.sendall(b"250-smtp.attt.test\r\n250 STARTTLS\r\n")
            elif line == b"STARTTLS":
                conn.sendall(b"220 ready to start TLS\r\n")
                _serve_tls(context, conn, b"250 ok\r\n")
                return
            else:
                return

    return handle


def _line_starttls(context: ssl.SSLContext, greeting: bytes, command: bytes, accepted: bytes) -> Handler:
    """A minimal IMAP or POP3 server: a greeting, then the upgrade on `command` (the line's last
    word, after any IMAP tag), then a reply to anything said over TLS."""

    def handle(conn: socket.socket) -> None:
        plain = conn.makefile("rb")
        conn.sendall(greeting)
        for _ in range(10):
            words = plain.readline(512).split()
            if not words:
                return
            if words[-1].upper() == command:
                tag = words[0] + b" " if len(words) > 1 else b""
                conn.sendall(tag + accepted)
                _serve_tls(context, conn, tag + b"OK\r\n")
                return
            conn.sendall(b"-ERR say " + command + b" first\r\n")

    return handle


def _serve_tls(context: ssl.SSLContext, conn: socket.socket, reply: bytes) -> None:
    with context.wrap_socket(conn, server_side=True) as tls:
        for _ in range(10):
            if not tls.recv(4096):
                return
            tls.sendall(reply)


class _SocketServer:
    """A TCP listener in this process. With a handler, each connection gets a thread running
    it; without one, connections are accepted and held open in silence (a tarpit)."""

    def __init__(self, server: TlsServer, handler: Handler | None) -> None:
        self._handler = handler
        self._stop = threading.Event()
        self._held: list[socket.socket] = []
        self._sock = socket.create_server((server.ip, server.port), backlog=64)
        self._sock.settimeout(0.2)
        self._thread = threading.Thread(target=self._serve, name=f"tls-lab-{server.name}", daemon=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self._handler is None:
                self._held.append(conn)
                continue
            conn.settimeout(5)
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        assert self._handler is not None
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
            for conn in self._held:
                conn.close()


@contextmanager
def tls_lab(workdir: Path, net: str = NET) -> Iterator[TlsLab]:
    """Make the CA and certificates in `workdir`, start every server, stop them all on exit."""
    for tool in ("openssl", "nginx", "gnutls-serv"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            raise RuntimeError(f"{tool} is not installed")
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    day = dt.timedelta(days=1)
    issuer, ca_file = _make_ca(workdir, now)
    s = lab_servers(net)

    def ec_key() -> ec.EllipticCurvePrivateKey:
        return ec.generate_private_key(ec.SECP256R1())

    def rsa_key() -> rsa.RSAPrivateKey:
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)

    modern = _leaf(workdir, "modern", s["modern"].hostname, ec_key(), issuer, now - day, now + 89 * day)
    inter = _leaf(
        workdir, "intermediate", s["intermediate"].hostname, rsa_key(), issuer, now - day, now + 89 * day
    )
    tdes = _leaf(workdir, "tripledes", s["tripledes"].hostname, rsa_key(), issuer, now - day, now + 364 * day)
    expired = _leaf(
        workdir,
        "expired",
        s["expired"].hostname,
        ec_key(),
        issuer,
        now - 400 * day,
        now - 10 * day,
        ocsp_url=f"http://{s['expired'].ip}/ocsp",
    )
    selfsigned = _leaf(workdir, "selfsigned", f"wrong.{DOMAIN}", rsa_key(), None, now - day, now + 364 * day)
    legacy = _sha1_rsa1024_leaf(workdir, s["legacy"].hostname, days=825)
    mail = {}
    for name in ("smtp", "imap", "pop3"):
        mail[name] = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        mail[name].load_cert_chain(
            *_leaf(workdir, name, s[name].hostname, ec_key(), issuer, now - day, now + 89 * day)
        )
    legacy_conf = workdir / "openssl-legacy.cnf"
    legacy_conf.write_text(OPENSSL_LEGACY_CONF)

    gnutls = ["gnutls-serv", "--port", str(GNUTLS_PORT), "--http", "--quiet", "--disable-client-cert"]
    legacy_ciphers = "ECDHE-RSA-AES128-SHA:AES128-SHA:AES256-SHA@SECLEVEL=0"
    processes: list[tuple[list[str], TlsServer, dict[str, str] | None]] = [
        (_s_server(s["modern"], *modern, "-tls1_3", "-groups", "X25519:P-256:P-384"), s["modern"], None),
        (["nginx", "-c", str(_nginx_conf(workdir, s["intermediate"], *inter))], s["intermediate"], None),
        (
            _s_server(s["legacy"], *legacy, "-no_tls1_3", "-groups", "P-256", "-cipher", legacy_ciphers),
            s["legacy"],
            {"OPENSSL_CONF": str(legacy_conf)},
        ),
        (
            [
                *gnutls,
                "--x509certfile",
                str(tdes[0]),
                "--x509keyfile",
                str(tdes[1]),
                "--priority",
                GNUTLS_LEGACY_PRIORITY,
            ],
            s["tripledes"],
            None,
        ),
        (_s_server(s["expired"], *expired, "-groups", "X25519:P-256"), s["expired"], None),
        (_s_server(s["selfsigned"], *selfsigned, "-groups", "X25519:P-256"), s["selfsigned"], None),
    ]
    with ExitStack() as stack:
        for argv, server, env in processes:
            stack.enter_context(_process(argv, server, workdir, env))
        stack.enter_context(
            _SocketServer(s["plaintcp"], _reply_once(b"220 plain text, no TLS here\r\n")).running()
        )
        stack.enter_context(_SocketServer(s["smtp"], _smtp_starttls(mail["smtp"])).running())
        imap = _line_starttls(mail["imap"], b"* OK attt lab IMAP4rev1\r\n", b"STARTTLS", b"OK begin TLS\r\n")
        stack.enter_context(_SocketServer(s["imap"], imap).running())
        pop3 = _line_starttls(mail["pop3"], b"+OK attt lab POP3\r\n", b"STLS", b"+OK begin TLS\r\n")
        stack.enter_context(_SocketServer(s["pop3"], pop3).running())
        stack.enter_context(_SocketServer(s["tarpit"], None).running())
        yield TlsLab(ca_file=ca_file, servers=s, now=now)


@pytest.fixture(scope="session")
def tls_lab_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsLab]:
    """Every lab TLS server, running for the whole session."""
    with tls_lab(tmp_path_factory.mktemp("tls-lab")) as lab:
        yield lab
