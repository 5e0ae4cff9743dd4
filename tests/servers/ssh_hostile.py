"""Hostile SSH servers on 127.0.202.0/24 for the ssh check's hardening tests.

Each one is correct up to a point and then misbehaves in one way:

- `stall`: a valid greeting and KEXINIT, then silence (the key exchange never finishes);
  it listens on two ports so a target can carry two such endpoints.
- `prelude`: the same, after 40 lines of text before its identification string (RFC 4253 §4.2
  lets a server send such lines; OpenSSH's client accepts 1024 of them).
- `reset_on_auth`: paramiko's server side; it finishes the key exchange and resets the TCP
  connection when asked for `none` authentication.
- `garbled_auth`: paramiko's server side; it answers `none` authentication with a method list
  that is not UTF-8, which paramiko's client fails to decode in its reader thread.
- `slow_kex`: paramiko's server side; its host key takes `SLOW_SIGN` seconds to sign the
  exchange hash, and it never answers the authentication request.
- `empty_auth` (on 127.0.243.1): paramiko's server side; it answers `none` authentication with
  an empty method list, as a server that tells unknown users apart may.
- `alt_ssh` and `alt_http` (on 127.0.243.3 and .4, port 2222): the stalling SSH server, and an
  HTTP server as a hosting panel runs there.

Every handler is bounded in time by `MAX_HOLD` (tests/servers/hostile.py) or by the lab's stop.
"""

import contextlib
import io
import logging
import os
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass

import paramiko
import paramiko.common
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from tests.servers.hostile import MAX_HOLD, Endpoint, Handler, Listener, hold

NET = "127.0.202"
STALL, PRELUDE, RESET_ON_AUTH, GARBLED_AUTH, SLOW_KEX = (f"{NET}.{n}" for n in range(1, 6))
EMPTY_AUTH = "127.0.243.1"
ALT_SSH, ALT_HTTP = "127.0.243.3", "127.0.243.4"
ALT_PORT = 2222
STALL_PORTS = (22, 2222)
PRELUDE_LINES = 40
SLOW_SIGN = 0.8
"""Seconds the slow server's host key takes to sign: most of a one-second connection budget."""
BANNER = b"SSH-2.0-OpenSSH_9.9 attt-hostile\r\n"
KEX = ("curve25519-sha256", "curve25519-sha256@libssh.org", "kex-strict-s-v00@openssh.com")
HOST_KEY_ALGORITHMS = ("ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "rsa-sha2-512")
CIPHERS = ("aes256-gcm@openssh.com",)
MACS = ("hmac-sha2-256-etm@openssh.com",)
_LOG_CHANNEL = "tests.ssh_hostile"


def kexinit_packet() -> bytes:
    """An unencrypted SSH_MSG_KEXINIT packet (RFC 4253 §6, §7.1) offering the lists above."""
    lists = (KEX, HOST_KEY_ALGORITHMS, CIPHERS, CIPHERS, MACS, MACS, ("none",), ("none",), (), ())
    payload = bytes([20]) + os.urandom(16)
    for names in lists:
        raw = ",".join(names).encode()
        payload += struct.pack(">I", len(raw)) + raw
    payload += b"\x00" + bytes(4)
    padding = 8 - (len(payload) + 5) % 8
    padding += 8 if padding < 4 else 0
    return struct.pack(">IB", len(payload) + padding + 1, padding) + payload + bytes(padding)


def _stall(conn: socket.socket, stop: threading.Event) -> None:
    conn.sendall(BANNER + kexinit_packet())
    hold(conn, stop)


def _http(conn: socket.socket, stop: threading.Event) -> None:
    conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")


def _prelude(conn: socket.socket, stop: threading.Event) -> None:
    lines = b"".join(b"Authorised use only. Line %d of the notice.\r\n" % n for n in range(PRELUDE_LINES))
    conn.sendall(lines + BANNER + kexinit_packet())
    hold(conn, stop)


class _ResetOnAuth(paramiko.ServerInterface):
    def __init__(self, conn: socket.socket) -> None:
        self._conn = conn

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_none(self, username: str) -> int:
        # Linger 0 turns the close into a TCP reset, which the client reads as ECONNRESET.
        self._conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self._conn.close()
        return paramiko.common.AUTH_FAILED


class _GarbledAuth(paramiko.ServerInterface):
    def get_allowed_auths(self, username: str) -> str:
        # paramiko sends whatever this returns as an SSH string; bytes pass through unchanged.
        return b"publickey,\xff\xfe"  # type: ignore[return-value]


class _EmptyAuth(paramiko.ServerInterface):
    def get_allowed_auths(self, username: str) -> str:
        return ""


class _SilentAuth(paramiko.ServerInterface):
    def __init__(self, stop: threading.Event) -> None:
        self._stop = stop

    def get_allowed_auths(self, username: str) -> str:
        return "publickey,password"

    def check_auth_none(self, username: str) -> int:
        # Blocks the server's transport thread: the authentication request is never answered.
        self._stop.wait(MAX_HOLD)
        return paramiko.common.AUTH_FAILED

    def check_auth_password(self, username: str, password: str) -> int:
        # A login is never answered either: the probe's time runs out while it waits.
        return self.check_auth_none(username)


class _SlowKey(paramiko.Ed25519Key):
    def sign_ssh_data(self, data: bytes, algorithm: str | None = None) -> paramiko.Message:
        threading.Event().wait(SLOW_SIGN)
        return super().sign_ssh_data(data, algorithm)


def _paramiko_server(
    key: paramiko.PKey, interface: Callable[[socket.socket, threading.Event], paramiko.ServerInterface]
) -> Handler:
    def serve(conn: socket.socket, stop: threading.Event) -> None:
        transport = paramiko.Transport(conn)
        transport.set_log_channel(_LOG_CHANNEL)
        try:
            transport.add_server_key(key)
            transport.start_server(server=interface(conn, stop))
            deadline = time.monotonic() + MAX_HOLD
            while transport.is_active() and not stop.is_set() and time.monotonic() < deadline:
                stop.wait(0.1)
        except (paramiko.SSHException, OSError, EOFError):
            pass
        finally:
            transport.close()

    return serve


@dataclass(frozen=True)
class HostileSsh:
    stall: str
    stall_ports: tuple[int, ...]
    prelude: str
    reset_on_auth: str
    garbled_auth: str
    slow_kex: str
    empty_auth: str
    alt_ssh: str
    alt_http: str
    host_key_sha256: str
    """The fingerprint of the paramiko servers' ed25519 host key."""


@contextlib.contextmanager
def running_hostile_ssh() -> Iterator[HostileSsh]:
    # The paramiko servers log every reset and early close with a traceback: tests do it on purpose.
    log = logging.getLogger(_LOG_CHANNEL)
    log.propagate = False
    log.addHandler(logging.NullHandler())
    pem = (
        ed25519.Ed25519PrivateKey.generate()
        .private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
        )
        .decode()
    )
    plain = paramiko.Ed25519Key.from_private_key(io.StringIO(pem))
    slow = _SlowKey.from_private_key(io.StringIO(pem))
    handlers: list[tuple[str, int, Handler]] = [
        *((STALL, port, _stall) for port in STALL_PORTS),
        (PRELUDE, 22, _prelude),
        (RESET_ON_AUTH, 22, _paramiko_server(plain, lambda conn, _: _ResetOnAuth(conn))),
        (GARBLED_AUTH, 22, _paramiko_server(plain, lambda *_: _GarbledAuth())),
        (SLOW_KEX, 22, _paramiko_server(slow, lambda _, stop: _SilentAuth(stop))),
        (EMPTY_AUTH, 22, _paramiko_server(plain, lambda *_: _EmptyAuth())),
        (ALT_SSH, ALT_PORT, _stall),
        (ALT_HTTP, ALT_PORT, _http),
    ]
    with ExitStack() as stack:
        for ip, port, handler in handlers:
            stack.enter_context(Listener(Endpoint(f"{ip}:{port}", ip, port), handler).running())
        yield HostileSsh(
            STALL,
            STALL_PORTS,
            PRELUDE,
            RESET_ON_AUTH,
            GARBLED_AUTH,
            SLOW_KEX,
            EMPTY_AUTH,
            ALT_SSH,
            ALT_HTTP,
            plain.fingerprint,
        )


@pytest.fixture(scope="module")
def hostile_ssh() -> Iterator[HostileSsh]:
    with running_hostile_ssh() as servers:
        yield servers
