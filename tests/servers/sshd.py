"""Session fixtures: real SSH servers on 127.0.40.x, port 22, started once and stopped at the end.

- 127.0.40.1 hardened OpenSSH (curve25519/sntrup, chacha20/AES-GCM, EtM MACs, ed25519, no passwords)
- 127.0.40.2 Debian's default OpenSSH settings (root may log in with the test key)
- 127.0.40.3 weak OpenSSH (group14-sha1, AES-CBC, hmac-sha1, ssh-rsa, RSA-1024, passwords, root login)
- 127.0.40.4 paramiko server without strict KEX, offering CBC with EtM MACs (Terrapin-exposed)
- 127.0.40.5 speaks garbage; 127.0.40.6 accepts and never answers; 127.0.40.7 speaks only SSH-1
"""

import contextlib
import logging
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import paramiko
import paramiko.common
import pytest

PORT = 22
NET = "127.0.40"
HARDENED, DEBIAN, WEAK, TERRAPIN, GARBAGE, SILENT, SSH1 = (f"{NET}.{n}" for n in range(1, 8))
START_TIMEOUT = 10.0
AUTH_BANNER = "Chỉ dành cho người được phép <script>alert(1)</script>\n"
GARBAGE_BYTES = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n\x00\xff\xfe garbage \x01\x02"

_COMMON = """\
ListenAddress {ip}:{port}
UsePAM no
PidFile none
StrictModes no
AuthorizedKeysFile {authorized_keys}
"""

_HARDENED = """\
HostKey {dir}/ssh_host_ed25519_key
KexAlgorithms sntrup761x25519-sha512@openssh.com,curve25519-sha256,curve25519-sha256@libssh.org
Ciphers chacha20-poly1305@openssh.com,aes256-gcm@openssh.com,aes128-gcm@openssh.com
MACs hmac-sha2-512-etm@openssh.com,hmac-sha2-256-etm@openssh.com
HostKeyAlgorithms ssh-ed25519
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
MaxAuthTries 3
Banner {dir}/banner.txt
"""

_DEBIAN = """\
HostKey {dir}/ssh_host_rsa_key
HostKey {dir}/ssh_host_ecdsa_key
HostKey {dir}/ssh_host_ed25519_key
KbdInteractiveAuthentication no
X11Forwarding yes
PrintMotd no
"""

_WEAK = """\
HostKey {dir}/ssh_host_rsa1024_key
KexAlgorithms +diffie-hellman-group14-sha1
Ciphers +aes128-cbc,aes256-cbc
MACs +hmac-sha1
HostKeyAlgorithms +ssh-rsa
RequiredRSASize 1024
PasswordAuthentication yes
PermitRootLogin yes
"""


@dataclass(frozen=True)
class SshServers:
    hardened: str
    debian: str
    weak: str
    terrapin: str
    garbage: str
    silent: str
    ssh1: str
    port: int
    client_key: Path
    """Private key (ed25519) authorised for root on the OpenSSH servers."""
    debian_config: Path
    """The Debian-default server's sshd_config, for `sshd -T -f`."""
    terrapin_key_sha256: str
    terrapin_connections: Callable[[], int]
    """How many connections the Terrapin server has accepted so far (politeness checks)."""


def _keygen(path: Path, kind: str, bits: int | None = None) -> None:
    args = ["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", "attt-test", "-f", str(path)]
    if bits is not None:
        args += ["-b", str(bits)]
    subprocess.run(args, check=True, timeout=30, capture_output=True)


def _wait_for_banner(ip: str, port: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((ip, port), timeout=1) as sock:
            sock.settimeout(1)
            if sock.recv(4):
                return
        time.sleep(0.05)
    raise RuntimeError(f"no SSH server came up on {ip}:{port}")


class _ThreadServer:
    """A listening socket served by a bounded accept loop in a daemon thread."""

    def __init__(self, ip: str, serve_one: "_Handler | None") -> None:
        self.sock = socket.create_server((ip, PORT), backlog=16)
        self.sock.settimeout(0.2)
        self._serve_one = serve_one
        self._stop = threading.Event()
        self._accepted = 0
        self._thread = threading.Thread(target=self._loop, daemon=True)
        if serve_one is not None:
            self._thread.start()

    def _loop(self) -> None:
        assert self._serve_one is not None
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._accepted += 1
            threading.Thread(target=self._serve_one, args=(conn,), daemon=True).start()

    def accepted(self) -> int:
        return self._accepted

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)
        self.sock.close()


class _Handler:
    def __call__(self, conn: socket.socket) -> None:
        raise NotImplementedError


class _Garbage(_Handler):
    def __call__(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(2)
            with contextlib.suppress(OSError):
                conn.sendall(GARBAGE_BYTES)
                # Reading the client's greeting first makes the close orderly (FIN, not RST).
                conn.recv(256)


class _Ssh1Only(_Handler):
    def __call__(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(2)
            with contextlib.suppress(OSError):
                conn.sendall(b"SSH-1.5-LegacyBox_1.0\r\n")
                conn.recv(256)


class _TerrapinServerInterface(paramiko.ServerInterface):
    def get_allowed_auths(self, username: str) -> str:
        return "publickey,password"

    def check_auth_none(self, username: str) -> int:
        return paramiko.common.AUTH_FAILED


class _Terrapin(_Handler):
    """paramiko's server side with strict KEX off, offering CBC ciphers and EtM MACs."""

    def __init__(self, host_key: paramiko.PKey) -> None:
        self._host_key = host_key

    def __call__(self, conn: socket.socket) -> None:
        transport = paramiko.Transport(conn, strict_kex=False)
        transport.set_log_channel("tests.sshd.terrapin")
        try:
            options = transport.get_security_options()
            options.ciphers = ("aes128-cbc", "aes256-cbc", "aes128-ctr")
            options.digests = ("hmac-sha2-256-etm@openssh.com", "hmac-sha2-256")
            options.kex = ("curve25519-sha256@libssh.org", "diffie-hellman-group14-sha256")
            transport.add_server_key(self._host_key)
            transport.start_server(server=_TerrapinServerInterface())
            deadline = time.monotonic() + 10
            while transport.is_active() and time.monotonic() < deadline:
                time.sleep(0.1)
        except (paramiko.SSHException, OSError, EOFError):
            pass
        finally:
            transport.close()


def _start_sshd(
    directory: Path, name: str, ip: str, body: str, authorized_keys: Path
) -> tuple[subprocess.Popen[bytes], Path]:
    config = directory / f"sshd_{name}.conf"
    fields = {"ip": ip, "port": PORT, "dir": directory, "authorized_keys": authorized_keys}
    config.write_text(body.format(**fields) + _COMMON.format(**fields))
    process = subprocess.Popen(
        ["/usr/sbin/sshd", "-D", "-e", "-f", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return process, config


@contextlib.contextmanager
def running_ssh_servers(directory: Path, net: str = NET) -> Iterator[SshServers]:
    """Start every server on `net` with keys and configs under `directory`; stop them all on exit."""
    hardened, debian, weak, terrapin_ip, garbage, silent, ssh1 = (f"{net}.{n}" for n in range(1, 8))
    for name, kind, bits in (
        ("ed25519", "ed25519", None),
        ("ecdsa", "ecdsa", 256),
        ("rsa", "rsa", 3072),
        ("rsa1024", "rsa", 1024),
    ):
        _keygen(directory / f"ssh_host_{name}_key", kind, bits)
    client_key = directory / "client_ed25519"
    _keygen(client_key, "ed25519")
    authorized_keys = directory / "authorized_keys"
    authorized_keys.write_text(client_key.with_suffix(".pub").read_text())
    (directory / "banner.txt").write_text(AUTH_BANNER)
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    # The Terrapin server logs every early close with a traceback; scanners close early on purpose.
    server_log = logging.getLogger("tests.sshd.terrapin")
    server_log.propagate = False
    server_log.addHandler(logging.NullHandler())

    processes: list[subprocess.Popen[bytes]] = []
    threads: list[_ThreadServer] = []
    try:
        configs: dict[str, Path] = {}
        for name, ip, body in (
            ("hardened", hardened, _HARDENED),
            ("debian", debian, _DEBIAN),
            ("weak", weak, _WEAK),
        ):
            process, configs[name] = _start_sshd(directory, name, ip, body, authorized_keys)
            processes.append(process)
        terrapin_key = paramiko.Ed25519Key.from_private_key_file(str(directory / "ssh_host_ed25519_key"))
        terrapin = _ThreadServer(terrapin_ip, _Terrapin(terrapin_key))
        threads += [
            terrapin,
            _ThreadServer(garbage, _Garbage()),
            _ThreadServer(silent, None),
            _ThreadServer(ssh1, _Ssh1Only()),
        ]
        deadline = time.monotonic() + START_TIMEOUT
        for ip in (hardened, debian, weak, terrapin_ip):
            _wait_for_banner(ip, PORT, deadline)
        yield SshServers(
            hardened=hardened,
            debian=debian,
            weak=weak,
            terrapin=terrapin_ip,
            garbage=garbage,
            silent=silent,
            ssh1=ssh1,
            port=PORT,
            client_key=client_key,
            debian_config=configs["debian"],
            terrapin_key_sha256=terrapin_key.fingerprint,
            terrapin_connections=terrapin.accepted,
        )
    finally:
        for thread_server in threads:
            thread_server.close()
        _stop(processes)


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@dataclass(frozen=True)
class Sshd:
    """One real sshd started by `one_sshd`."""

    ip: str
    port: int
    config: Path
    """Its sshd_config, for `sshd -T -f`."""
    client_key: Path
    """Private key (ed25519) authorised for root."""


@contextlib.contextmanager
def one_sshd(
    directory: Path, ip: str, settings: str, host_keys: dict[str, tuple[str, int | None]]
) -> Iterator[Sshd]:
    """One sshd on `ip`:22 with `settings` (sshd_config lines) and the host keys named in
    `host_keys` (name -> ssh-keygen type and bits), made under `directory`; stopped on exit."""
    directory.mkdir(parents=True, exist_ok=True)
    lines = []
    for name, (kind, bits) in host_keys.items():
        _keygen(directory / f"ssh_host_{name}_key", kind, bits)
        lines.append(f"HostKey {directory}/ssh_host_{name}_key")
    client_key = directory / "client_ed25519"
    _keygen(client_key, "ed25519")
    authorized_keys = directory / "authorized_keys"
    authorized_keys.write_text(client_key.with_suffix(".pub").read_text())
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    body = "\n".join([*lines, settings, ""])
    process, config = _start_sshd(directory, "one", ip, body, authorized_keys)
    try:
        _wait_for_banner(ip, PORT, time.monotonic() + START_TIMEOUT)
        yield Sshd(ip=ip, port=PORT, config=config, client_key=client_key)
    finally:
        _stop([process])


def can_run_sshd() -> bool:
    return os.geteuid() == 0 and Path("/usr/sbin/sshd").is_file() and shutil.which("ssh-keygen") is not None


@pytest.fixture(scope="session")
def sshd_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServers]:
    if not can_run_sshd():
        pytest.skip("real sshd fixtures need root and openssh-server")
    with running_ssh_servers(tmp_path_factory.mktemp("sshd")) as servers:
        yield servers
