"""Plain-protocol services that upgrade to TLS, or refuse to, on 127.0.57.0/24: real vsftpd
servers with and without AUTH TLS (explicit FTPS), an IMAP server that refuses STARTTLS, and
an OpenSSL server that offers TLS 1.2 and 1.3 but no extended master secret on TLS 1.2."""

import datetime as dt
import shutil
import socket
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tests.servers.tls import (
    DOMAIN,
    TlsServer,
    _leaf,
    _make_ca,
    _process,
    _s_server,
    _SocketServer,
    openssl_system_conf,
)

NET = "127.0.57"
VSFTPD = "/usr/sbin/vsftpd"
SERVERS = {
    "ftps": TlsServer("ftps", f"{NET}.1", 21, f"ftps.{DOMAIN}"),
    "ftp": TlsServer("ftp", f"{NET}.2", 21, f"ftp.{DOMAIN}"),
    "imap-plain": TlsServer("imap-plain", f"{NET}.3", 143, f"imap-plain.{DOMAIN}"),
    "no-ems": TlsServer("no-ems", f"{NET}.4", 443, f"no-ems.{DOMAIN}"),
}
# Turns off the extended master secret (RFC 7627) for one OpenSSL process.
NO_EMS_CONF = openssl_system_conf("Options = -ExtendedMasterSecret")


@dataclass(frozen=True)
class UpgradeLab:
    ca_file: Path
    servers: dict[str, TlsServer]


def _vsftpd_conf(workdir: Path, server: TlsServer, tls: tuple[Path, Path] | None) -> Path:
    """Anonymous, read-only, in the foreground; AUTH TLS only when a certificate is given."""
    empty = workdir / "ftp-empty"
    empty.mkdir(exist_ok=True)
    lines = [
        "listen=YES",
        "listen_ipv6=NO",
        f"listen_address={server.ip}",
        f"listen_port={server.port}",
        "background=NO",
        "anonymous_enable=YES",
        f"anon_root={empty}",
        "local_enable=NO",
        "write_enable=NO",
        f"secure_chroot_dir={empty}",
        "seccomp_sandbox=NO",
        f"ssl_enable={'YES' if tls else 'NO'}",
    ]
    if tls is not None:
        cert, key = tls
        lines += [
            f"rsa_cert_file={cert}",
            f"rsa_private_key_file={key}",
            "allow_anon_ssl=YES",
            # vsftpd's default cipher list (DES-CBC3-SHA) is refused by OpenSSL 3.
            "ssl_ciphers=ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384",
        ]
    conf = workdir / f"{server.name}.conf"
    conf.write_text("\n".join(lines) + "\n")
    return conf


def _refuse_starttls(conn: socket.socket) -> None:
    plain = conn.makefile("rb")
    conn.sendall(b"* OK attt lab IMAP4rev1, no TLS here\r\n")
    for _ in range(10):
        words = plain.readline(512).split()
        if not words:
            return
        conn.sendall(words[0] + b" BAD STARTTLS not supported\r\n")


@contextmanager
def upgrade_lab(workdir: Path) -> Iterator[UpgradeLab]:
    if not Path(VSFTPD).exists() or shutil.which("openssl") is None:
        raise RuntimeError("vsftpd and openssl are needed (make system-deps)")
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    day = dt.timedelta(days=1)
    issuer, ca_file = _make_ca(workdir, now)
    s = SERVERS

    def leaf(name: str) -> tuple[Path, Path]:
        key = ec.generate_private_key(ec.SECP256R1())
        return _leaf(workdir, name, s[name].hostname, key, issuer, now - day, now + 89 * day)

    ftps, no_ems = leaf("ftps"), leaf("no-ems")
    no_ems_conf = workdir / "openssl-no-ems.cnf"
    no_ems_conf.write_text(NO_EMS_CONF)
    with ExitStack() as stack:
        stack.enter_context(
            _process([VSFTPD, str(_vsftpd_conf(workdir, s["ftps"], ftps))], s["ftps"], workdir)
        )
        stack.enter_context(_process([VSFTPD, str(_vsftpd_conf(workdir, s["ftp"], None))], s["ftp"], workdir))
        stack.enter_context(_SocketServer(s["imap-plain"], _refuse_starttls).running())
        stack.enter_context(
            _process(
                _s_server(s["no-ems"], *no_ems, "-groups", "X25519:P-256"),
                s["no-ems"],
                workdir,
                {"OPENSSL_CONF": str(no_ems_conf)},
            )
        )
        yield UpgradeLab(ca_file=ca_file, servers=s)


@pytest.fixture(scope="session")
def upgrade_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpgradeLab]:
    """FTPS, plain FTP, an IMAP server refusing STARTTLS and a TLS server without EMS."""
    with upgrade_lab(tmp_path_factory.mktemp("upgrade-lab")) as lab:
        yield lab
