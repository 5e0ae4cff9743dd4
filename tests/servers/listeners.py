"""Plain TCP listeners for port-scan tests, and the session fixture the ports tests scan.

`tcp_listeners` is reusable with any loopback address: it binds every (address, port) pair,
serves them all from one thread and closes everything when the `with` block ends. A listener
with `banner=None` is *silent*: it accepts and never says a word, the hardest case for service
detection and for any probe that waits for a greeting.
"""

import selectors
import socket
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress

import pytest

Endpoint = tuple[str, int]

MAX_CONNECTIONS = 64
"""Accepted connections held open at once; beyond that the oldest is dropped, so a scan
storm cannot exhaust file descriptors."""
_POLL_SECONDS = 0.05
_JOIN_SECONDS = 5.0


class _Server:
    """One thread multiplexing every listening socket and the connections they accepted."""

    def __init__(self, listening: list[socket.socket], banner: bytes | None) -> None:
        self._banner = banner
        self._selector = selectors.DefaultSelector()
        self._listening = listening
        self._connections: list[socket.socket] = []
        self._stop = threading.Event()
        for sock in listening:
            sock.setblocking(False)
            self._selector.register(sock, selectors.EVENT_READ)
        self._thread = threading.Thread(target=self._serve, name="tcp-listeners", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(_JOIN_SECONDS)
        for sock in [*self._connections, *self._listening]:
            sock.close()
        self._selector.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            for key, _ in self._selector.select(_POLL_SECONDS):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                if sock in self._listening:
                    self._accept(sock)
                elif sock.fileno() != -1:
                    # Not evicted by an accept earlier in this same round (the round's events
                    # were read before): draining a closed one would kill this thread, and
                    # then every listener with it.
                    self._drain(sock)

    def _accept(self, listening: socket.socket) -> None:
        try:
            conn, _ = listening.accept()
        except OSError:
            return
        conn.setblocking(False)
        if self._banner is not None:
            with suppress(OSError):
                conn.send(self._banner)
        if len(self._connections) >= MAX_CONNECTIONS:
            self._close(self._connections[0])
        self._connections.append(conn)
        self._selector.register(conn, selectors.EVENT_READ)

    def _drain(self, conn: socket.socket) -> None:
        """Read and discard what the client sends; close when it hangs up."""
        try:
            data = conn.recv(4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._close(conn)

    def _close(self, conn: socket.socket) -> None:
        self._selector.unregister(conn)
        self._connections.remove(conn)
        conn.close()


def _bind(address: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # Reruns must not trip over the previous session's TIME_WAIT sockets.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, port))
        sock.listen(16)
    except OSError:
        sock.close()
        raise
    return sock


@contextmanager
def tcp_listeners(endpoints: Iterable[Endpoint], banner: bytes | None = None) -> Iterator[list[Endpoint]]:
    """Listen on every (address, port) pair until the block ends; yields the bound endpoints
    (port 0 asks the kernel for a free port, and the yielded list says which one it gave).

    Each accepted connection gets `banner` (if any), then is held open, its input discarded,
    until the client hangs up or the block ends.
    """
    wanted = list(endpoints)
    listening: list[socket.socket] = []
    try:
        for address, port in wanted:
            listening.append(_bind(address, port))
    except OSError:
        for sock in listening:
            sock.close()
        raise
    bound = [(address, sock.getsockname()[1]) for (address, _), sock in zip(wanted, listening, strict=True)]
    server = _Server(listening, banner)
    server.start()
    try:
        yield bound
    finally:
        server.stop()


# The ports tests' loopback range: 127.0.20.0/24.
PORTS_HOST_MIXED = "127.0.20.1"
"""Telnet (23) and an alternate web port (8080) open."""
PORTS_HOST_TLS = "127.0.20.2"
"""443 only."""
PORTS_HOST_EMPTY = "127.0.20.3"
"""Nothing listens: every port answers with a reset."""
PORTS_HOST_SILENT = "127.0.20.4"
"""One silent port (9999): accepts and never answers."""
SILENT_PORT = 9999


@pytest.fixture(scope="session")
def port_listeners() -> Iterator[dict[str, tuple[int, ...]]]:
    """The listeners the ports tests scan, as address -> open ports."""
    layout = {
        PORTS_HOST_MIXED: (23, 8080),
        PORTS_HOST_TLS: (443,),
        PORTS_HOST_EMPTY: (),
    }
    banner_endpoints = [(address, port) for address, ports in layout.items() for port in ports]
    with (
        tcp_listeners(banner_endpoints, banner=b"220 attt test listener\r\n"),
        tcp_listeners([(PORTS_HOST_SILENT, SILENT_PORT)]),
    ):
        yield {**layout, PORTS_HOST_SILENT: (SILENT_PORT,)}
