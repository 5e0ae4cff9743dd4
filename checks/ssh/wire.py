"""The clear-text start of an SSH connection, read over a plain socket.

Right after the identification strings (RFC 4253 §4.2) each side sends its KEXINIT packet
(§7.1) unencrypted. paramiko does not expose the peer's lists, so we read them ourselves: one
connection, our identification string sent, theirs and their KEXINIT read, then close. Every
read is bounded in size and in time, because the peer may be anything.
"""

import re
import socket
import struct
import time
from dataclasses import dataclass

CLIENT_IDENTIFICATION = b"SSH-2.0-attt_probe\r\n"

MAX_IDENTIFICATION = 255
"""RFC 4253 §4.2: the identification string, CR LF included, is at most 255 characters."""
MAX_PRELUDE_LINES = 1024
"""Lines a server may send before its identification string (§4.2 sets no limit): OpenSSH's
client accepts this many, so a server that needs no more is reachable by it."""
MAX_LINE_BYTES = 8192
"""The longest line OpenSSH's client reads before the identification string."""
MAX_PRELUDE_BYTES = 64 * 1024
"""All lines before the identification string together: enough for any notice a server prints."""
MAX_PACKET = 35000
"""§6.1: implementations must handle packets of this total size; a KEXINIT never needs more."""
MAX_NAMES = 256
MAX_NAME_LENGTH = 64
"""§6: algorithm names are at most 64 characters."""
SSH_MSG_KEXINIT = 20
_ANY_TIME = frozenset({2, 4})
"""SSH_MSG_IGNORE and SSH_MSG_DEBUG: §11 lets either side send them at any time, even first."""
MAX_PACKETS_BEFORE_KEXINIT = 16

_NAME = re.compile(r"^[\x21-\x7e]{1,64}$")
_PROTOCOL = re.compile(r"^SSH-([0-9]+\.[0-9]+)-")


class WireError(Exception):
    """The peer did not speak SSH as expected; the message says what was seen (bounded)."""


class NoSshHere(WireError):
    """The port refused the connection, or the peer spoke and what it sent before its
    identification string was not SSH: an observed absence, unlike silence or a broken SSH server."""


@dataclass(frozen=True)
class KexInit:
    """The server's algorithm name-lists, in the server's order of preference."""

    kex: tuple[str, ...]
    host_key_algorithms: tuple[str, ...]
    ciphers_c2s: tuple[str, ...]
    ciphers_s2c: tuple[str, ...]
    macs_c2s: tuple[str, ...]
    macs_s2c: tuple[str, ...]
    compression_c2s: tuple[str, ...]
    compression_s2c: tuple[str, ...]


@dataclass(frozen=True)
class ServerHello:
    identification: str
    """The identification string without CR LF, e.g. `SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3`."""
    protocol: str
    """`2.0`, `1.99` (both versions) or a 1.x version (SSH-1 only)."""
    kexinit: KexInit | None
    """None when the server speaks only SSH-1 and therefore sends no KEXINIT."""


def speaks_ssh2(protocol: str) -> bool:
    return protocol in ("2.0", "1.99")


def read_server_hello(ip: str, port: int, timeout: float) -> ServerHello:
    """Connect, exchange identification strings and read the server's KEXINIT within `timeout`."""
    deadline = time.monotonic() + timeout
    try:
        with socket.create_connection((ip, port), timeout=timeout) as sock:
            reader = _Reader(sock, deadline)
            sock.sendall(CLIENT_IDENTIFICATION)
            try:
                identification = _read_identification(reader)
            except (WireError, OSError) as exc:
                if not reader.spoke_not_ssh:
                    raise
                if isinstance(exc, WireError):
                    raise NoSshHere(str(exc)) from None
                cut = exc.strerror or type(exc).__name__
                raise NoSshHere(f"the server sent {_show(reader.last)}, then {cut}") from None
            protocol = _parse_protocol(identification)
            if not speaks_ssh2(protocol):
                return ServerHello(identification, protocol, None)
            return ServerHello(identification, protocol, _read_kexinit(reader))
    except TimeoutError:
        raise WireError(f"no complete SSH greeting within {timeout:.1f} s") from None
    except ConnectionRefusedError:
        raise NoSshHere("connection refused") from None
    except OSError as exc:
        raise WireError(f"connection failed: {exc.strerror or type(exc).__name__}") from None


class _Reader:
    """Buffered reads from a socket that never run past a deadline."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self._sock = sock
        self._deadline = deadline
        self._buffer = b""
        self._last = b""
        """The last bytes received, to show when the peer closes (the buffer may be consumed)."""
        self._ssh_seen = False

    def _fill(self) -> None:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        self._sock.settimeout(remaining)
        chunk = self._sock.recv(4096)
        if not chunk:
            raise WireError(_closed_message(self._buffer or self._last))
        self._buffer += chunk
        self._last = chunk
        self._ssh_seen = self._ssh_seen or b"SSH-" in chunk

    @property
    def last(self) -> bytes:
        return self._last[:60]

    @property
    def spoke_not_ssh(self) -> bool:
        """The peer sent bytes, none of them the start of an SSH identification string."""
        return bool(self._last) and not self._ssh_seen

    def line(self, limit: int) -> bytes:
        """One line without its terminator (LF, optionally preceded by CR)."""
        while b"\n" not in self._buffer[:limit]:
            if len(self._buffer) >= limit:
                raise WireError(f"line longer than {limit} bytes: {_show(self._buffer[:60])}")
            self._fill()
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.removesuffix(b"\r")

    def exactly(self, count: int) -> bytes:
        while len(self._buffer) < count:
            self._fill()
        data, self._buffer = self._buffer[:count], self._buffer[count:]
        return data


def _closed_message(seen: bytes) -> str:
    if not seen:
        return "connection closed by the server before it sent anything"
    return f"connection closed by the server after {_show(seen[:60])}"


def _show(data: bytes) -> str:
    """Peer bytes as a short, printable, quoted text."""
    return repr(data.decode("ascii", errors="backslashreplace"))[:80]


def _read_identification(reader: _Reader) -> str:
    prelude = 0
    for _ in range(MAX_PRELUDE_LINES + 1):
        line = reader.line(MAX_LINE_BYTES)
        if line.startswith(b"SSH-"):
            if len(line) + 2 > MAX_IDENTIFICATION:
                raise WireError(f"identification string longer than {MAX_IDENTIFICATION} bytes")
            text = line.decode("ascii", errors="strict") if line.isascii() else None
            if text is None or not text.isprintable():
                raise WireError(f"identification string is not printable ASCII: {_show(line)}")
            return text
        prelude += len(line) + 1
        if prelude > MAX_PRELUDE_BYTES:
            break
    raise WireError(f"no SSH identification string; the server sent {_show(line)}")


def _parse_protocol(identification: str) -> str:
    match = _PROTOCOL.match(identification)
    if match is None:
        raise WireError(f"malformed identification string {identification[:80]!r}")
    return match.group(1)


def _read_kexinit(reader: _Reader) -> KexInit:
    for _ in range(MAX_PACKETS_BEFORE_KEXINIT + 1):
        payload = _read_packet(reader)
        if payload[0] not in _ANY_TIME:
            break
    if len(payload) < 17 or payload[0] != SSH_MSG_KEXINIT:
        raise WireError(f"first packet is not a KEXINIT (message type {payload[0]})")
    lists = _NameLists(payload, offset=17).read(10)
    return KexInit(*lists[:8])


def _read_packet(reader: _Reader) -> bytes:
    """The payload of one unencrypted packet (§6), never empty."""
    (packet_length,) = struct.unpack(">I", reader.exactly(4))
    if not 16 <= packet_length <= MAX_PACKET:
        raise WireError(f"packet has an impossible length {packet_length}")
    packet = reader.exactly(packet_length)
    padding = packet[0]
    payload = packet[1 : packet_length - padding]
    if padding < 4 or not payload:
        raise WireError(f"malformed packet before the KEXINIT (padding {padding})")
    return payload


class _NameLists:
    """Reads consecutive RFC 4251 §5 name-lists out of a payload."""

    def __init__(self, payload: bytes, offset: int) -> None:
        self._payload = payload
        self._offset = offset

    def read(self, count: int) -> list[tuple[str, ...]]:
        return [self._one() for _ in range(count)]

    def _one(self) -> tuple[str, ...]:
        start = self._offset + 4
        if start > len(self._payload):
            raise WireError("KEXINIT ends inside a name-list")
        (length,) = struct.unpack(">I", self._payload[self._offset : start])
        end = start + length
        if end > len(self._payload):
            raise WireError("KEXINIT name-list runs past the packet")
        self._offset = end
        raw = self._payload[start:end]
        if not raw:
            return ()
        names = raw.decode("ascii", errors="replace").split(",")
        if len(names) > MAX_NAMES or not all(_NAME.match(name) for name in names):
            raise WireError(f"KEXINIT holds a malformed name-list: {_show(raw[:60])}")
        return tuple(names)
