"""The web check's HTTP client: GET only, to one pinned address, bounded in bytes and time.

Built on httpcore, the transport layer of httpx, through its public network-backend interface:
the backend is where every connection is made, so it is the one place that (a) connects to the
target's pinned address whatever name the URL carries, and refuses any other name, (b) enforces
one deadline across connect, TLS handshake and every read, so a server that drips a byte a
second cannot hold the probe past its budget, and (c) counts the bytes a response delivers, so
64 KiB of headers or a 10 MB header line end the request instead of filling memory. The URL
keeps the system's host name, so SNI, `Host` and certificate name checks all use it.
"""

from __future__ import annotations

import socket
import ssl
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import httpcore

from attt.checks.tls.names import name_matches, wildcard_over_suffix
from attt.checks.web.models import MAX_HEADER_BYTES, is_address

USER_AGENT = "attt-scanner (compliance scan; GET only)"
_HEADERS: list[tuple[bytes | str, bytes | str]] = [
    ("User-Agent", USER_AGENT),
    ("Accept", "*/*"),
    # One connection per request: a body read only in part is never drained to reuse it.
    ("Connection", "close"),
]
FailureKind = Literal[
    "refused", "unreachable", "timeout", "certificate", "tls", "protocol", "too_large", "budget", "scope"
]
"""What went wrong; `refused` is an observed closed port, `unreachable`, `timeout` and `budget`
leave the endpoint unknown."""


class FetchError(Exception):
    """A request that did not produce a complete status line and headers."""

    def __init__(self, kind: FailureKind, message: str, *, broken: bool = False) -> None:
        super().__init__(message)
        self.kind: FailureKind = kind
        self.broken = broken
        """A `tls` failure where the connection broke off (reset, closed mid-handshake) rather
        than the server refusing what was offered: nothing learned about what it accepts."""


@dataclass(frozen=True)
class Fetched:
    status: int
    headers: tuple[tuple[str, str], ...]
    """(lower-cased name, value), in the order sent; values decoded as UTF-8, bad bytes replaced."""
    body: bytes
    """The start of the body, at most the limit the caller asked for, its Content-Encoding
    (gzip, deflate) undone."""
    undecoded: str | None = None
    """A Content-Encoding that could not be undone: `body` is then the bytes as sent, which say
    nothing of what the content is."""
    decoded: str | None = None
    """The Content-Encoding undone to get `body`, if any."""


class _Refused(httpcore.ConnectError):
    """The port refused the connection: an observed fact, unlike a timeout."""


class _Unreachable(httpcore.ConnectError):
    """No TCP connection for another reason than a refusal: nothing learned about the port."""


class _CertificateRejected(httpcore.ConnectError):
    """The TLS handshake failed certificate verification."""


class _HandshakeBroken(httpcore.ConnectError):
    """The connection broke off during the TLS handshake (a reset, an unexpected close)."""


class _TooLarge(httpcore.ReadError):
    """The response went past the byte budget of its current phase."""


class _OutOfScope(httpcore.ConnectError):
    """The URL names a host other than the target: never connected."""


@dataclass
class _Budget:
    """One request's limits: the probe's deadline and the bytes its response may still send."""

    deadline: float
    limit: int
    received: int = 0

    def seconds_left(self, timeout: float | None) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise httpcore.ReadTimeout("the probe's time budget ran out")
        return left if timeout is None else min(timeout, left)


class _Stream(httpcore.NetworkStream):
    def __init__(self, sock: socket.socket, budget: _Budget) -> None:
        self._sock = sock
        self._budget = budget

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        room = self._budget.limit - self._budget.received
        if room <= 0:
            raise _TooLarge("the response is larger than the limit")
        self._sock.settimeout(self._budget.seconds_left(timeout))
        try:
            data = self._sock.recv(min(max_bytes, room))
        except TimeoutError as exc:
            raise httpcore.ReadTimeout("no answer in time") from exc
        except OSError as exc:
            raise httpcore.ReadError(_os_reason(exc)) from exc
        self._budget.received += len(data)
        return data

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._sock.settimeout(self._budget.seconds_left(timeout))
        try:
            self._sock.sendall(buffer)
        except TimeoutError as exc:
            raise httpcore.WriteTimeout("could not send in time") from exc
        except OSError as exc:
            raise httpcore.WriteError(_os_reason(exc)) from exc

    def close(self) -> None:
        self._sock.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        self._sock.settimeout(self._budget.seconds_left(timeout))
        try:
            tls = ssl_context.wrap_socket(self._sock, server_hostname=server_hostname)
        except ssl.SSLCertVerificationError as exc:
            raise _CertificateRejected(exc.verify_message or "certificate rejected") from exc
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout("TLS handshake not finished in time") from exc
        except (ssl.SSLEOFError, ssl.SSLZeroReturnError, ssl.SSLSyscallError, ConnectionError) as exc:
            raise _HandshakeBroken(f"TLS handshake broken off: {_os_reason(exc)}") from exc
        except (ssl.SSLError, OSError) as exc:
            raise httpcore.ConnectError(f"TLS handshake failed: {_os_reason(exc)}") from exc
        if ssl_context.check_hostname and server_hostname is not None:
            refusal = _browser_refusal(tls.getpeercert() or {}, server_hostname)
            if refusal is not None:
                tls.close()
                raise _CertificateRejected(refusal)
        return _Stream(tls, self._budget)

    def get_extra_info(self, info: str) -> Any:
        if info == "ssl_object" and isinstance(self._sock, ssl.SSLSocket):
            return self._sock._sslobj  # type: ignore[attr-defined]  # what httpcore's own backend returns
        return None


class _PinnedBackend(httpcore.NetworkBackend):
    def __init__(self, ip: str, names: frozenset[str], budget: _Budget) -> None:
        self._ip = ip
        self._names = names
        self._budget = budget

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        if host.lower().strip("[]") not in self._names:
            raise _OutOfScope(f"{host} is not the target")
        try:
            sock = socket.create_connection((self._ip, port), timeout=self._budget.seconds_left(timeout))
        except ConnectionRefusedError as exc:
            raise _Refused("connection refused") from exc
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout("no connection in time") from exc
        except OSError as exc:
            raise _Unreachable(_os_reason(exc)) from exc
        return _Stream(sock, self._budget)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        raise _OutOfScope("not a network target")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


@dataclass
class PinnedClient:
    """Sends every request of one probe to `ip`, for URLs naming `names` only, before `deadline`
    (a `time.monotonic()` value), at most `max_requests` of them, `min_interval` seconds apart."""

    ip: str
    names: frozenset[str]
    deadline: float
    max_requests: int
    min_interval: float
    io_timeout: float
    verifying: ssl.SSLContext | None
    """A browser's handshake (`verifying_context`); None when none can be judged, for
    `unverifiable`'s reason: no request then asks for verification."""
    unverifiable: str | None = None
    sent: int = 0
    last_sent: float = 0.0
    """When the latest request started, after its wait for the pace: what its time counts from."""

    def in_scope(self, host: str | None) -> bool:
        """A redirect may be followed only to the target itself: its name or its address."""
        return host is not None and host.lower() in self.names

    def get(self, url: str, *, body_limit: int, verify: bool = False, origin: str | None = None) -> Fetched:
        """GET `url` and read its headers and at most `body_limit` bytes of body; with `origin`,
        as a script on that origin would ask (the `Origin` header)."""
        if verify and self.verifying is None:
            raise ValueError(f"no browser's handshake can be judged: {self.unverifiable}")
        if self.sent >= self.max_requests:
            raise FetchError("budget", f"request budget of {self.max_requests} per host used up")
        self._pace()
        self.sent += 1
        budget = _Budget(deadline=self.deadline, limit=MAX_HEADER_BYTES)
        backend = _PinnedBackend(self.ip, self.names, budget)
        timeouts = dict.fromkeys(("connect", "read", "write", "pool"), self.io_timeout)
        try:
            with (
                httpcore.ConnectionPool(
                    ssl_context=self.verifying if verify else _UNVERIFIED,
                    network_backend=backend,
                    max_keepalive_connections=0,
                    retries=0,
                ) as pool,
                pool.stream(
                    "GET",
                    url,
                    headers=_HEADERS if origin is None else [*_HEADERS, ("Origin", origin)],
                    extensions={"timeout": timeouts},
                ) as response,
            ):
                # Headers are in: the body gets its own allowance of bytes and of time, so a
                # body dripped a byte at a time costs one I/O timeout, not the whole budget.
                budget.limit = budget.received + body_limit
                budget.deadline = min(budget.deadline, time.monotonic() + self.io_timeout)
                body = _read_body(response, body_limit)
                headers = tuple(
                    (k.decode("latin-1").lower(), v.decode("utf-8", "replace")) for k, v in response.headers
                )
                # Sent though not asked for (no Accept-Encoding): a browser decodes it, so must we.
                encoding = ", ".join(v for k, v in headers if k == "content-encoding")
                decoded = _decoded(body, encoding, body_limit) if body else body
                if decoded is None:
                    return Fetched(response.status, headers, body, undecoded=encoding[:100])
                return Fetched(
                    status=response.status,
                    headers=headers,
                    body=decoded,
                    decoded=encoding[:100] if decoded is not body else None,
                )
        except _OutOfScope as exc:
            raise FetchError("scope", str(exc)) from exc
        except _Refused as exc:
            raise FetchError("refused", str(exc)) from exc
        except _Unreachable as exc:
            raise FetchError("unreachable", str(exc)) from exc
        except _CertificateRejected as exc:
            raise FetchError("certificate", str(exc)) from exc
        except _TooLarge as exc:
            raise FetchError("too_large", f"headers larger than {MAX_HEADER_BYTES // 1024} KiB") from exc
        except httpcore.TimeoutException as exc:
            raise FetchError("timeout", str(exc) or "timed out") from exc
        except _HandshakeBroken as exc:
            raise FetchError("tls", str(exc), broken=True) from exc
        except httpcore.ConnectError as exc:  # raised by start_tls: the handshake failed
            raise FetchError("tls", str(exc)) from exc
        except (httpcore.ProtocolError, httpcore.NetworkError, httpcore.UnsupportedProtocol) as exc:
            raise FetchError("protocol", f"not a valid HTTP answer: {exc}") from exc

    def _pace(self) -> None:
        wait = self.last_sent + self.min_interval - time.monotonic()
        if wait > 0:
            if time.monotonic() + wait >= self.deadline:
                raise FetchError("budget", "no time left for another request")
            time.sleep(wait)
        self.last_sent = time.monotonic()


def _read_body(response: httpcore.Response, limit: int) -> bytes:
    """Read at most `limit` body bytes; a body cut off by the server or by our limit is kept as is."""
    body = bytearray()
    try:
        for chunk in response.iter_stream():
            body += chunk
            if len(body) >= limit:
                break
    except (httpcore.ReadError, httpcore.RemoteProtocolError, httpcore.TimeoutException):
        pass  # the headers are what matter; a cut-off body is still evidence of what it holds
    return bytes(body[:limit])


def _decoded(body: bytes, encoding: str, limit: int) -> bytes | None:
    """`body` with the codings of `encoding` undone, last applied first, at most `limit` bytes
    of it (a small body may inflate to gigabytes); None for a coding this cannot undo."""
    codings = [c.strip().lower() for c in encoding.split(",") if c.strip().lower() not in ("", "identity")]
    for coding in reversed(codings):
        if coding not in _WBITS:
            return None
        for wbits in _WBITS[coding]:
            try:
                body = zlib.decompressobj(wbits).decompress(body, limit)
                break
            except zlib.error:
                continue
        else:
            return None
    return body


_WBITS = {
    "gzip": (16 + zlib.MAX_WBITS,),
    "x-gzip": (16 + zlib.MAX_WBITS,),
    # deflate is meant to carry a zlib header; some servers send the raw stream.
    "deflate": (zlib.MAX_WBITS, -zlib.MAX_WBITS),
}


def _browser_refusal(cert: dict[str, Any], host: str) -> str | None:
    """Why a browser refuses, for `host`, the certificate OpenSSL verified; None when it does not.

    OpenSSL's name check (Python's `ssl`) is laxer than a browser's in two ways. With no DNS name
    among the subjectAltName entries, it matches the subject's common name, which browsers
    (Chrome since 58, Firefox since 48) and RFC 9525 ignore. It knows no public suffix, so it
    accepts a wildcard over one (`*.gov.vn` for `x.gov.vn`), which browsers refuse."""
    if is_address(host):
        return None  # matched against address entries only, by OpenSSL as by browsers
    entries = [value for kind, value in cert.get("subjectAltName", ()) if kind == "DNS"]
    if not entries:
        where = (
            "has no subjectAltName"
            if "subjectAltName" not in cert
            else "has no DNS name in its subjectAltName"
        )
        return (
            f"Hostname mismatch: the certificate {where}, so only its subject CN names {host};"
            " browsers ignore the CN"
        )
    wildcard = wildcard_over_suffix(host, entries)
    if wildcard is None or name_matches(host, entries):
        return None
    suffix = wildcard.partition(".")[2]
    return (
        f"Hostname mismatch: the certificate's only name for {host} is the wildcard {wildcard}, over"
        f" {suffix}, a public suffix, where browsers accept no wildcard"
    )


def _os_reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


def _unverified_context() -> ssl.SSLContext:
    # Certificates and protocol versions are the tls check's business; the web check must still
    # read the site's headers when the certificate is bad or the server speaks only TLS 1.0, as
    # a visitor who clicks through (or an old browser) would.
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    context.set_ciphers("ALL:@SECLEVEL=0")
    return context


_UNVERIFIED = _unverified_context()


def verifying_context(trust_anchors: Iterable[str]) -> ssl.SSLContext | str:
    """A browser's handshake, as far as OpenSSL goes: the chain to the trust store and the name;
    or, when none can be judged, why: an anchor file that cannot be read (or holds no
    certificate), or a trust store with no certificate at all (no system store, no anchors),
    where every chain would look untrusted whatever browsers think of it.

    Its name check keeps OpenSSL's fallback on the subject CN (`hostname_checks_common_name`):
    turning it off would refuse a CN-only certificate without a word on why. A handshake that
    succeeds is then held to what browsers accept (`_browser_refusal`), which can say why."""
    context = ssl.create_default_context()
    for anchor in trust_anchors:
        try:
            context.load_verify_locations(cafile=anchor)
        except (OSError, ssl.SSLError) as exc:
            return f"the trust anchor file {anchor} could not be read ({_os_reason(exc)})"
    if not context.cert_store_stats()["x509"] and not _system_directory_holds_certificates():
        return "the trust store holds no certificate (no system CA store, no trust_anchors)"
    return context


def _system_directory_holds_certificates() -> bool:
    """OpenSSL's CA directory (read lazily, so not counted in the store) holds a file."""
    directory = ssl.get_default_verify_paths().capath
    try:
        return directory is not None and any(Path(directory).iterdir())
    except OSError:
        return False
