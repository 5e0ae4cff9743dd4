"""Servers configured the way a competent administrator hardens them today, on 127.0.209.0/24.

- 127.0.209.1:22 OpenSSH hardened after ssh-audit's "Hardened OpenSSH Server" and Mozilla's
  OpenSSH guidelines: curve25519/sntrup761 and DH group 16/18 key exchange, chacha20-poly1305,
  AES-GCM and AES-CTR, EtM MACs only, ed25519 and rsa-sha2 host keys (RSA 3072, what
  `ssh-keygen -A` makes), no passwords, no root login, bounded tries, idle timeout, no
  forwarding, LogLevel VERBOSE. Root may log in with the test key from 127.0.0.1 only (a
  `Match` block, which `sshd -T` without `-C` does not print), so that a credentialed scan reads
  the global settings.
- 127.0.209.11-.14, ports 80 and 443: nginx with Mozilla's "intermediate" profile (TLS 1.2 and
  1.3, ECDHE with AEAD suites) on RSA-2048, RSA-3072 and ECDSA P-256 certificates, and the
  "modern" profile (TLS 1.3 only) on ECDSA P-256. Every certificate comes from a test CA that the
  scan gets as a trust anchor, names its host and lives 90 days. Port 80 redirects to HTTPS;
  HTTPS sends HSTS (2 years) and the usual security headers, and no server version; the modern
  site frames nothing through CSP alone and sets a `__Host-` session cookie.
"""

import datetime as dt
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.servers import stop_process
from tests.servers.sshd import _keygen, _wait_for_banner
from tests.servers.tls import MOZILLA_INTERMEDIATE_CIPHERS, TlsServer, _leaf, _make_ca, _process

NET = "127.0.209"
SSH_ADDRESS = f"{NET}.1"
DOMAIN = "hardened.attt.test"
START_TIMEOUT = 10.0

_SSHD = """\
ListenAddress {ip}:22
HostKey {dir}/ssh_host_ed25519_key
HostKey {dir}/ssh_host_rsa_key
KexAlgorithms sntrup761x25519-sha512@openssh.com,curve25519-sha256,curve25519-sha256@libssh.org,\
diffie-hellman-group16-sha512,diffie-hellman-group18-sha512
Ciphers chacha20-poly1305@openssh.com,aes256-gcm@openssh.com,aes128-gcm@openssh.com,\
aes256-ctr,aes192-ctr,aes128-ctr
MACs hmac-sha2-512-etm@openssh.com,hmac-sha2-256-etm@openssh.com,umac-128-etm@openssh.com
HostKeyAlgorithms ssh-ed25519,rsa-sha2-512,rsa-sha2-256
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitEmptyPasswords no
HostbasedAuthentication no
IgnoreRhosts yes
PermitRootLogin no
MaxAuthTries 3
LoginGraceTime 60
ClientAliveInterval 300
ClientAliveCountMax 3
X11Forwarding no
AllowAgentForwarding no
AllowTcpForwarding no
LogLevel VERBOSE
UsePAM no
PidFile none
StrictModes no
AuthorizedKeysFile {dir}/authorized_keys
Match User root Address 127.0.0.1
    PermitRootLogin prohibit-password
"""

_HEADERS = """\
        add_header Strict-Transport-Security "max-age=63072000; includeSubDomains; preload" always;
        add_header Content-Security-Policy "default-src 'self'; frame-ancestors 'none'; base-uri 'self'; \
form-action 'self'; object-src 'none'" always;
        add_header X-Content-Type-Options nosniff always;
        add_header Referrer-Policy strict-origin-when-cross-origin always;
        add_header Permissions-Policy "geolocation=(), camera=(), microphone=()" always;
        add_header Cross-Origin-Opener-Policy same-origin always;
"""

_PAGE = '<!doctype html><html lang="vi"><head><title>ok</title></head><body>ok</body></html>'


@dataclass(frozen=True)
class Site:
    name: str
    address: str
    hostname: str


@dataclass(frozen=True)
class HardenedLab:
    ca_file: Path
    sites: tuple[Site, ...]
    ssh_address: str
    client_key: Path
    """Authorised for root from 127.0.0.1, for the credentialed `sshd -T`."""
    sshd_config: Path


def _site_block(site: Site, cert: Path, key: Path, modern: bool) -> str:
    protocols = "TLSv1.3" if modern else "TLSv1.2 TLSv1.3"
    ciphers = "" if modern else f"ssl_ciphers {MOZILLA_INTERMEDIATE_CIPHERS};"
    # Intermediate sites also send X-Frame-Options; the modern one relies on CSP frame-ancestors
    # alone and sets a session cookie with a __Host- prefix, as current web guidance has it.
    extra = (
        '        add_header Set-Cookie "__Host-sid=4f2a9c; Path=/; Secure; HttpOnly; SameSite=Lax" always;'
        if modern
        else "        add_header X-Frame-Options DENY always;"
    )
    return f"""
    server {{
        listen {site.address}:80; server_name {site.hostname};
        return 301 https://{site.hostname}$request_uri;
    }}
    server {{
        listen {site.address}:443 ssl; server_name {site.hostname};
        ssl_certificate {cert}; ssl_certificate_key {key};
        ssl_protocols {protocols}; ssl_ecdh_curve X25519:prime256v1:secp384r1; {ciphers}
        ssl_prefer_server_ciphers off; ssl_session_tickets off;
{_HEADERS}{extra}
        location / {{ default_type text/html; return 200 '{_PAGE}'; }}
    }}"""


def _nginx_conf(workdir: Path, blocks: list[str]) -> Path:
    temp = workdir / "nginx-temp"
    temp.mkdir()
    paths = " ".join(f"{kind}_temp_path {temp}/{kind};" for kind in ("proxy", "fastcgi", "uwsgi", "scgi"))
    conf = workdir / "nginx.conf"
    conf.write_text(
        f"daemon off; master_process off; worker_processes 1; pid {workdir}/nginx.pid;\n"
        f"error_log {workdir}/nginx-error.log warn; events {{ worker_connections 256; }}\n"
        f"http {{ server_tokens off; access_log off; client_body_temp_path {temp}/body; {paths}\n"
        + "".join(blocks)
        + "\n}\n"
    )
    return conf


def _start_sshd(workdir: Path) -> tuple["subprocess.Popen[bytes]", Path, Path]:
    ssh_dir = workdir / "ssh"
    ssh_dir.mkdir()
    _keygen(ssh_dir / "ssh_host_ed25519_key", "ed25519")
    _keygen(ssh_dir / "ssh_host_rsa_key", "rsa", 3072)
    client_key = ssh_dir / "client_ed25519"
    _keygen(client_key, "ed25519")
    (ssh_dir / "authorized_keys").write_text(client_key.with_suffix(".pub").read_text())
    config = ssh_dir / "sshd_config"
    config.write_text(_SSHD.format(ip=SSH_ADDRESS, dir=ssh_dir))
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    process = subprocess.Popen(
        ["/usr/sbin/sshd", "-D", "-e", "-f", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return process, config, client_key


@contextmanager
def hardened_lab(workdir: Path) -> Iterator[HardenedLab]:
    """Make the CA, certificates, keys and configs in `workdir`; start nginx and sshd; stop both."""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    day = dt.timedelta(days=1)
    issuer, ca_file = _make_ca(workdir, now)
    keys: dict[str, tuple[rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, bool]] = {
        "intermediate-rsa2048": (rsa.generate_private_key(public_exponent=65537, key_size=2048), False),
        "intermediate-rsa3072": (rsa.generate_private_key(public_exponent=65537, key_size=3072), False),
        "intermediate-p256": (ec.generate_private_key(ec.SECP256R1()), False),
        "modern-p256": (ec.generate_private_key(ec.SECP256R1()), True),
    }
    sites: list[Site] = []
    blocks: list[str] = []
    for number, (name, (key, modern)) in enumerate(keys.items(), start=11):
        site = Site(name, f"{NET}.{number}", f"{name}.{DOMAIN}")
        # 90 days, as Mozilla's modern profile and today's ACME CAs issue them.
        cert, key_file = _leaf(workdir, name, site.hostname, key, issuer, now - day, now + 89 * day)
        sites.append(site)
        blocks.append(_site_block(site, cert, key_file, modern))
    nginx = ["nginx", "-c", str(_nginx_conf(workdir, blocks))]
    with ExitStack() as stack:
        first = sites[0]
        stack.enter_context(
            _process(nginx, TlsServer("hardened-nginx", first.address, 443, first.hostname), workdir)
        )
        sshd, config, client_key = _start_sshd(workdir)
        stack.callback(stop_process, sshd)
        _wait_for_banner(SSH_ADDRESS, 22, time.monotonic() + START_TIMEOUT)
        yield HardenedLab(ca_file, tuple(sites), SSH_ADDRESS, client_key, config)
