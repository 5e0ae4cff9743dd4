"""One pool of sslyze jobs for the whole run, instead of one sslyze `Scanner` per host.

sslyze splits a server scan into jobs of at most one connection each (a connectivity test,
then one handshake per cipher suite, one per vulnerability test, ...). Its `Scanner` runs them
on 10 servers x 3 threads of its own; one per host made hundreds of threads at a modest
`--concurrency`, all competing, and a scan that gave up kept its threads busy for the others.
Here every probe of the process feeds the same workers:

- Threads are started only as work arrives, up to `MAX_WORKERS` for the whole run.
- At most `per_ip` connections to one IP address at a time, whatever its ports.
- Jobs run in the order their endpoints were submitted: an endpoint that has started gets the
  workers before one submitted later, so a busy run delays whole endpoints, never starves
  every endpoint a little.
- An endpoint's budget starts when its first job starts, not while it waits for a worker;
  its silence counts only while one of its jobs is on the wire.
- Handshakes are CPU work done under the GIL (nassl holds it through a handshake): jobs are
  admitted only as fast as the process can finish them (`Admission`), so a busy run queues
  whole jobs instead of stretching every handshake in flight past its server's silence budget.
- A scan that gives up is cancelled: its queued jobs are dropped and never run.
- Cipher suites and curves are enumerated by elimination (`_elimination.py`), a few jobs per
  version instead of one per suite, one job instead of one per curve, unless a scan asks to be
  exhaustive.
- The client-renegotiation test goes last, alone: it is the one job that asks the server for
  something it may punish (OpenSSL's own `s_server` sleeps a second after refusing it, with
  every other connection queued behind), so no other job of the scan waits behind it.
- ROBOT waits for the cipher suites (fast path only): a server that accepted no RSA key
  exchange suite at any version cannot complete sslyze's ROBOT handshakes (they offer only
  those suites), so ROBOT's answer is sslyze's "RSA not supported" without its 6 connections.
- A scan may carry extra probes of its own (`extras`), run as jobs alongside sslyze's.
- sslyze's connections go out with Nagle's algorithm off (`_open_socket_without_delay`).
- A vulnerability test whose verdict sslyze may draw from a connection the server never
  answered is asked again once, and then fails rather than read as "not vulnerable"
  (`_earned`). A suite's own handshake on the exhaustive path that got no answer is asked
  again once before it reads as rejected (`_elimination.one_suite`), as an elimination's is;
  a curve's, before it reads as rejected or, left silent again, as not observed
  (`_elimination.one_curve`).

This module drives sslyze's job model (`sslyze.scanner._mass_scanner`, private in name), so
sslyze is pinned to one major version in pyproject.toml.
"""

import heapq
import itertools
import socket
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from http.client import HTTPResponse
from pathlib import Path
from traceback import TracebackException, clear_frames
from typing import Any

from nassl._nassl import WantReadError
from nassl.ssl_client import BaseSslClient
from sslyze.connection_helpers import tls_connection
from sslyze.connection_helpers.http_response_parser import HttpResponseParser
from sslyze.connection_helpers.tls_connection import NoCiphersAvailableBugInSSlyze
from sslyze.errors import (
    ConnectionToServerFailed,
    ConnectionToServerTimedOut,
    TlsHandshakeFailed,
    TlsHandshakeTimedOut,
)
from sslyze.plugins import http_headers_plugin
from sslyze.plugins.certificate_info._get_cert_chain import get_certificate_chain
from sslyze.plugins.compression_plugin import _test_compression_support
from sslyze.plugins.elliptic_curves_plugin import _test_curve
from sslyze.plugins.fallback_scsv_plugin import _test_scsv
from sslyze.plugins.heartbleed_plugin import _test_heartbleed
from sslyze.plugins.http_headers_plugin import StrictTransportSecurityHeader
from sslyze.plugins.openssl_ccs_injection_plugin import _test_for_ccs_injection
from sslyze.plugins.openssl_cipher_suites._test_cipher_suite import (
    CipherSuiteAcceptedByServer,
    connect_with_cipher_suite,
)
from sslyze.plugins.robot._robot_tester import ServerDoesNotSupportRsa, test_robot
from sslyze.plugins.scan_commands import ScanCommand
from sslyze.plugins.session_renegotiation_plugin import _test_client_renegotiation, _test_secure_renegotiation
from sslyze.scanner._jobs_worker_thread import CompletedScanJob
from sslyze.scanner._mass_scanner import (
    _generate_result_for_completed_server_scan,
    _generate_scan_jobs_for_server_scan,
    _OngoingServerScan,
)
from sslyze.scanner.models import (
    ServerConnectivityStatusEnum,
    ServerScanRequest,
    ServerScanResult,
    ServerScanStatusEnum,
)
from sslyze.server_connectivity import ServerConnectivityInfo, check_connectivity_to_server
from sslyze.server_setting import ServerNetworkLocation

from attt.checks.tls import _elimination
from attt.checks.web.observatory import hsts_max_age
from attt.scanner.models.observation import bound_text

MAX_WORKERS = 64
"""Worker threads for the whole run: each holds at most one connection, mostly waiting on the
network; more would only add GIL contention on a small machine."""
ADMISSION_FLOOR = 4
"""Jobs always admitted at once, however busy the process: progress for a few endpoints."""
_SILENT = (ConnectionToServerTimedOut, TlsHandshakeTimedOut)
"""Job failures that mean the server said nothing in time: not progress."""
_LAST = (_test_client_renegotiation,)
"""Jobs run only once every other job of their scan has finished (see the module docstring)."""
_SUITE_COMMANDS = frozenset(
    {
        ScanCommand.SSL_2_0_CIPHER_SUITES,
        ScanCommand.SSL_3_0_CIPHER_SUITES,
        ScanCommand.TLS_1_0_CIPHER_SUITES,
        ScanCommand.TLS_1_1_CIPHER_SUITES,
        ScanCommand.TLS_1_2_CIPHER_SUITES,
        ScanCommand.TLS_1_3_CIPHER_SUITES,
    }
)
_RSA_KEY_EXCHANGE = "TLS_RSA_"
"""How the names of the suites with RSA key exchange begin (TLS_RSA_WITH_*, TLS_RSA_EXPORT_*, and
TLS_RSA_PSK_*, which ROBOT never offers: counting them only makes ROBOT run more often)."""

_ONE_ANSWER = (
    _test_scsv,
    _test_heartbleed,
    _test_for_ccs_injection,
    test_robot,
    _test_secure_renegotiation,
    _test_client_renegotiation,
    _test_compression_support,
    get_certificate_chain,
)
"""sslyze's tests that read a connection the server closed, reset or left silent as its answer:
"protected" for the fallback SCSV, "not vulnerable" for Heartbleed, CCS injection and ROBOT (no
RSA, or the same non-answer to every payload), "secure", "refused" and "no compression" for the
renegotiation and compression tests of a TLS 1.3 server, "no such certificate" for the
handshakes that fetch each certificate the server deploys. Each runs through `_earned`."""
_REFUSALS: dict[Callable[..., Any], type[Exception]] = {
    test_robot: ServerDoesNotSupportRsa,
    get_certificate_chain: TlsHandshakeFailed,
}
"""The exception that is a test's answer when the server refused what it asked: ROBOT's "no RSA
key exchange", or no certificate for a client of one kind (sslyze leaves that deployment out).
Earned, as any answer, only where the server answered (`_all_answered`)."""


_SSLYZE_OPEN_SOCKET = tls_connection._open_socket
_LISTENING = threading.local()
"""`connections`: the list every connection a job opens is added to while `_earned` listens on
its thread (None otherwise)."""


class _Heard(socket.socket):
    """A connection that notes whether the server sent anything once the client's TLS began
    (a STARTTLS dialogue before it is not an answer to the test), and whether a client key
    exchange went out on it (ROBOT's payload)."""

    tls = False
    heard = False
    key_exchange_sent = False

    def _sending(self, data: Any) -> None:
        head = bytes(data[:6])
        self.tls = self.tls or head[:1] == _TLS_HANDSHAKE
        self.key_exchange_sent = self.key_exchange_sent or (
            head[:1] == _TLS_HANDSHAKE and head[5:6] == _CLIENT_KEY_EXCHANGE
        )

    def send(self, data: Any, flags: int = 0) -> int:
        self._sending(data)
        return super().send(data, flags)

    def sendall(self, data: Any, flags: int = 0) -> None:
        self._sending(data)
        super().sendall(data, flags)

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        data = super().recv(bufsize, flags)
        self.heard = self.heard or (self.tls and bool(data))
        return data


_TLS_HANDSHAKE = b"\x16"
"""The first byte of a TLS handshake record: the ClientHello that starts a test's TLS."""
_CLIENT_KEY_EXCHANGE = b"\x10"
"""The handshake type, right after a record's 5-byte header, of the record that carries ROBOT's
payload (sslyze writes it as a record of its own)."""


def _open_socket_without_delay(server_location: ServerNetworkLocation, network_timeout: int) -> socket.socket:
    """sslyze's own socket for every connection it makes, with Nagle's algorithm off.

    ROBOT (15 connections per RSA server) and the Heartbleed test write one flight as several
    small records, a send each; with Nagle the later records wait for the server's delayed ACK
    (40 ms on Linux), and a server that serves one connection at a time (OpenSSL's s_server)
    holds every other connection behind that wait: 0.6 s per RSA endpoint. The bytes sent are
    the same, only not held back."""
    sock = _SSLYZE_OPEN_SOCKET(server_location, network_timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    connections: list[_Heard] | None = getattr(_LISTENING, "connections", None)
    if connections is None:
        return sock
    timeout = sock.gettimeout()
    heard = _Heard(sock.family, sock.type, sock.proto, fileno=sock.detach())
    heard.settimeout(timeout)
    connections.append(heard)
    return heard


def _all_answered(test: Callable[..., Any], value: Any, connections: list[_Heard]) -> bool:
    """Whether the server answered every connection `test`'s answer `value` rests on.

    ROBOT's answer is the server's reply to each of its payloads, one connection each and the
    last ones it made; a reply counts only once the payload went out (the server asked for the
    key exchange): a connection refused or dropped before it is recorded by sslyze as an empty
    reply, which would read as the server's answer to a payload it never received. The
    handshakes before them only fetch the RSA key, and one refused with a cipher list is tried
    with another; with no RSA key from any, every one of them is the answer."""
    if test is test_robot and isinstance(value, dict) and value:
        return all(connection.key_exchange_sent for connection in connections[-len(value) :])
    return all(connection.heard for connection in connections)


def _earned(test: Callable[..., Any], *args: Any) -> Any:
    """sslyze's `test`, whose answer stands only if the server sent something on every
    connection the answer rests on (`_all_answered`): one that was closed, reset or left silent
    before any byte came back is asked again once on fresh connections (a flaky server answers
    then), and a second such non-answer fails the test (its fact not observed) instead of
    reading as "protected". A healthy server answers every time: no connection more than
    sslyze's own."""
    for _ in range(2):
        connections: list[_Heard] = []
        _LISTENING.connections = connections
        try:
            value, refused = test(*args), None
        except Exception as exc:
            if not isinstance(exc, _REFUSALS.get(test, ())):
                raise
            value, refused = None, exc
        finally:
            _LISTENING.connections = None
        if _all_answered(test, value, connections):
            if refused is not None:
                raise refused
            return value
    if test is get_certificate_chain:
        raise _elimination.Unanswered(
            "the server closed, reset or left silent the handshake for one of its certificates (the"
            " one sent to clients of one kind), twice: which certificates it deploys was not observed"
        )
    if test is test_robot:
        raise _elimination.Unanswered(
            "the server refused, closed or left silent a connection of ROBOT before its payload"
            " went out (or every handshake for the RSA key), twice: its answer to each payload was"
            " not observed"
        )
    raise _elimination.Unanswered(
        "the server closed, reset or left silent this test's connection twice, without a TLS"
        " answer: whether it is exposed was not observed"
    )


def _http_response(client: BaseSslClient) -> HTTPResponse:
    """sslyze's parse of the HTTP answer to its request, reading what the TLS engine already
    holds before waiting on the network.

    sslyze reads 4 KB at a time through nassl, whose `read` always waits for new bytes from the
    socket first: the rest of a record read in part stayed unread once the server had sent it
    all. A response head over 4 KB (one 6 KB header does it) sent as one record ended in "peer
    closed the connection", or a timeout, on a healthy server, and its HSTS went unobserved."""

    def read(size: int) -> bytes:
        try:
            held: bytes = client._ssl.read(size)
        except WantReadError:  # nothing decrypted or received is left: the network's turn
            return client.read(size)
        return held or client.read(size)

    return HttpResponseParser._parse(read)


class MalformedHsts(ValueError):
    """The server's Strict-Transport-Security header gives no max-age a browser reads."""


def _hsts_header(response: HTTPResponse) -> StrictTransportSecurityHeader | None:
    """sslyze's reading of the Strict-Transport-Security header, by RFC 6797's grammar (6.1):
    sslyze's own failed the whole HTTP step, with a bare "invalid literal for int()", on a
    max-age written as the grammar's quoted string (`max-age="31536000"`). Only the first such
    header counts (8.1, as a browser does); one that has no max-age a browser reads fails the
    step, naming the header."""
    values = response.msg.get_all("strict-transport-security") or []
    if not values:
        return None
    max_age = hsts_max_age(values[0])
    if max_age is None:
        raise MalformedHsts(
            f"malformed Strict-Transport-Security header, which browsers ignore: {bound_text(values[0], 120)}"
        )
    names = {directive.partition("=")[0].strip().lower() for directive in values[0].split(";")}
    return StrictTransportSecurityHeader(
        max_age=max_age, preload="preload" in names, include_subdomains="includesubdomains" in names
    )


# sslyze has no setting for any of them: its one function that opens a connection, its reading
# of an HTTP answer and of its HSTS header are swapped for the process (every sslyze connection
# of attt goes through this pool's jobs).
tls_connection._open_socket = _open_socket_without_delay
HttpResponseParser.parse_from_ssl_connection = staticmethod(_http_response)  # type: ignore[method-assign,assignment]
http_headers_plugin._parse_hsts_header_from_http_response = _hsts_header

Extra = Callable[[ServerConnectivityInfo], Any]
"""A probe of attt's own for one endpoint, given what sslyze's connectivity test found."""


@dataclass(frozen=True)
class _ExtraCommand:
    """Stands for the command of an extra probe's job: its result goes to `extras`, not sslyze."""

    name: str


@dataclass
class EndpointScan:
    """One server scan request in the pool, with what has come back so far."""

    request: ServerScanRequest
    ip: str
    order: int
    exhaustive: bool = False
    """Enumerate cipher suites and curves one handshake each (sslyze's way), not by elimination."""
    extra_probes: dict[str, Extra] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)
    """Each extra probe's value, or the exception it raised; absent when it never ran."""
    last: list[tuple[Any, Callable[..., Any], Sequence[Any]]] = field(default_factory=list)
    """Jobs held back until every other job of the scan has finished."""
    robot: list[tuple[Any, Callable[..., Any], Sequence[Any]]] = field(default_factory=list)
    """ROBOT's jobs, held back until the cipher suites are known (`suite_jobs` is 0) or one of
    them makes ROBOT necessary (`robot_needed`)."""
    suite_jobs: int = 0
    """Cipher-suite elimination jobs not finished yet."""
    robot_needed: bool = False
    """Some suite with RSA key exchange was accepted, or a suite's answer is unknown."""
    started: float | None = None
    """When its first job started (monotonic); its budget counts from there."""
    last_progress: float | None = None
    """When the server last answered anything (monotonic)."""
    result: ServerScanResult | None = None
    cancelled: bool = False
    pending: int = 0
    completed: list[CompletedScanJob] = field(default_factory=list)
    ongoing: _OngoingServerScan | None = None
    """Set once connectivity is established and the commands' jobs are queued."""
    done: threading.Event = field(default_factory=threading.Event)
    running: int = 0
    """Its jobs on the wire now."""
    held: float = 0.0
    """Seconds since it started that it had no job on the wire: attt held it back (a worker,
    its turn, admission), so they count toward neither its silence nor its deadline."""
    held_since: float | None = None

    def active(self, now: float) -> float:
        """Seconds since its first job started that one of its jobs was on the wire."""
        if self.started is None:
            return 0.0
        holding = now - self.held_since if self.held_since is not None else 0.0
        return now - self.started - self.held - holding


def machine_cpu() -> tuple[float, float] | None:
    """The machine's CPU time so far, (busy, all), in clock ticks over every core: Linux's
    /proc/stat, with time the hypervisor ran others counted busy; None where it cannot be read
    (the machine then never counts as saturated)."""
    try:
        with Path("/proc/stat").open(encoding="ascii") as stat:
            user, nice, system, idle, iowait, irq, softirq, steal = map(int, stat.readline().split()[1:9])
    except (OSError, ValueError):
        return None
    everything = user + nice + system + idle + iowait + irq + softirq + steal
    return everything - idle - iowait, everything


def _share_busy(since: tuple[float, float] | None, now: tuple[float, float] | None) -> float:
    if since is None or now is None or now[1] <= since[1]:
        return 0.0
    return (now[0] - since[0]) / (now[1] - since[1])


class Admission:
    """How many jobs may run at once: fewer while the process or the machine is saturated, more
    while both idle.

    Measured over windows of `window` seconds of CPU time against the clock. A process whose
    threads hold the GIL (handshakes) tops out near one core, and past that point more jobs in
    flight only make each one slower. A machine whose cores are all busy (local servers, other
    programs, a hypervisor taking its time back) finishes each handshake later however little
    this process does: with two CPU-bound programs taking half of a 2-core machine, a scan of
    1,000 healthy endpoints left 155 of them silent past their budget while this process, below
    one core, kept admitting more (none, in 176 s and 252 s, going by the machine too). The
    limit shrinks by a quarter per saturated window (down to `floor`) and grows by two per idle
    one (up to `ceiling`)."""

    SATURATED = 0.85
    """CPU-seconds per second at which the process counts as saturated (the GIL's one core)."""
    IDLE = 0.5
    MACHINE_SATURATED = 0.95
    """The share of the machine's CPU time busy (all cores) at which it counts as saturated."""

    def __init__(
        self,
        ceiling: int,
        floor: int = ADMISSION_FLOOR,
        window: float = 0.5,
        cpu: Callable[[], float] = time.process_time,
        clock: Callable[[], float] = time.monotonic,
        machine: Callable[[], tuple[float, float] | None] = machine_cpu,
    ) -> None:
        self.ceiling, self.floor, self.window = ceiling, min(floor, ceiling), window
        self.limit = min(ceiling, 2 * self.floor)  # grows while the process idles
        self._cpu, self._clock, self._machine = cpu, clock, machine
        self._since, self._cpu_since, self._machine_since = clock(), cpu(), machine()

    def tick(self) -> int:
        """Re-measure when a window has passed; the limit now in force."""
        now = self._clock()
        if now - self._since >= self.window:
            used, machine = self._cpu(), self._machine()
            load = (used - self._cpu_since) / (now - self._since)
            busy = _share_busy(self._machine_since, machine)
            if load >= self.SATURATED or busy >= self.MACHINE_SATURATED:
                self.limit = max(self.floor, self.limit * 3 // 4)
            elif load < self.IDLE:
                self.limit = min(self.ceiling, self.limit + 2)
            self._since, self._cpu_since, self._machine_since = now, used, machine
        return self.limit


@dataclass(order=True)
class _Job:
    key: tuple[int, int]
    scan: EndpointScan = field(compare=False)
    command: Any = field(compare=False)
    """The sslyze ScanCommand, or None for the connectivity test."""
    call: Callable[..., Any] = field(compare=False)
    args: Sequence[Any] = field(compare=False)
    answers: int = field(default=0, compare=False)
    """For an elimination job: how many of sslyze's per-suite jobs it stands for."""


class JobPool:
    """Workers shared by every TLS probe of the process; see the module docstring."""

    def __init__(self, max_workers: int = MAX_WORKERS) -> None:
        self._max_workers = max_workers
        self._lock = threading.Condition()
        self._ready: list[_Job] = []
        self._blocked: defaultdict[str, deque[_Job]] = defaultdict(deque)
        self._active: defaultdict[str, int] = defaultdict(int)
        self._per_ip: dict[str, int] = {}
        self._idle = 0
        self._workers = 0
        self._outstanding: defaultdict[str, int] = defaultdict(int)
        """Jobs of each IP queued, waiting or running."""
        self._capacity = 0
        """Connections the outstanding work could use at once: the per-IP caps of busy IPs."""
        self._running = 0
        self._admission = Admission(max_workers)
        self._orders = itertools.count()
        self._sequence = itertools.count()
        self.started = 0
        """Jobs started so far: for tests and benchmarks."""

    @property
    def workers(self) -> int:
        return self._workers

    def submit(
        self,
        request: ServerScanRequest,
        ip: str,
        per_ip: int,
        *,
        exhaustive: bool = False,
        extras: dict[str, Extra] | None = None,
    ) -> EndpointScan:
        """Queue a server scan; it starts with a connectivity test, then its commands' jobs and
        the `extras` probes."""
        scan = EndpointScan(
            request=request, ip=ip, order=next(self._orders), exhaustive=exhaustive, extra_probes=extras or {}
        )
        with self._lock:
            if self._outstanding[ip] == 0:  # the cap in force while an IP is busy stays
                self._per_ip[ip] = max(1, per_ip)
            self._push(
                scan,
                None,
                check_connectivity_to_server,
                (request.server_location, request.network_configuration),
            )
        return scan

    def cancel(self, scan: EndpointScan) -> None:
        """Give up on a scan: its queued jobs are dropped as workers reach them."""
        with self._lock:
            scan.cancelled = True
            scan.done.set()

    def _push(
        self,
        scan: EndpointScan,
        command: Any,
        call: Callable[..., Any],
        args: Sequence[Any],
        answers: int = 0,
    ) -> None:
        scan.pending += 1
        heapq.heappush(
            self._ready, _Job((scan.order, next(self._sequence)), scan, command, call, args, answers)
        )
        if self._outstanding[scan.ip] == 0:
            self._capacity += self._per_ip[scan.ip]
        self._outstanding[scan.ip] += 1
        # A new thread only when every worker is busy and one more could connect somewhere.
        if self._idle == 0 and self._workers < min(self._max_workers, self._capacity):
            self._workers += 1
            threading.Thread(target=self._work, name=f"attt-tls-{self._workers}", daemon=True).start()
        else:
            self._lock.notify()

    def _take(self) -> _Job:
        with self._lock:
            while True:
                while self._ready and self._running < self._admission.limit:
                    job = heapq.heappop(self._ready)
                    if job.scan.cancelled:
                        self._settle(job.scan.ip)
                        if self._active[job.scan.ip] < self._per_ip[job.scan.ip]:
                            self._unblock(job.scan.ip)
                        continue
                    if self._active[job.scan.ip] >= self._per_ip[job.scan.ip]:
                        self._blocked[job.scan.ip].append(job)
                        continue
                    self._active[job.scan.ip] += 1
                    self._running += 1
                    self.started += 1
                    now = time.monotonic()
                    if job.scan.started is None:
                        job.scan.started = now
                    if job.scan.running == 0:
                        # It waited on attt (a worker, its turn, admission), not on its server.
                        job.scan.last_progress = now
                        if job.scan.held_since is not None:
                            job.scan.held += now - job.scan.held_since
                            job.scan.held_since = None
                    job.scan.running += 1
                    return job
                self._idle += 1
                self._lock.wait()
                self._idle -= 1

    def _work(self) -> None:
        while True:
            job = self._take()
            try:
                value, error = job.call(*job.args), None
            except Exception as exc:  # sslyze reports a failed job as its exception
                value, error = None, _released(exc)
            with self._lock:
                self._active[job.scan.ip] -= 1
                self._running -= 1
                job.scan.running -= 1
                if job.scan.running == 0:
                    job.scan.held_since = time.monotonic()
                self._admission.tick()
                self._lock.notify()  # a worker held back by admission may go
                self._settle(job.scan.ip)
                self._unblock(job.scan.ip)
                try:
                    finished = None if job.scan.cancelled else self._complete(job, value, error)
                except Exception as exc:  # a fault in sslyze ends that scan, never a worker
                    self._fail(job.scan, exc)
                    continue
            if finished is not None:
                # Turning the jobs into sslyze's result parses certificates: outside the lock.
                try:
                    result = _generate_result_for_completed_server_scan(finished)
                except Exception as exc:
                    result = _no_connectivity(job.scan.request, exc)
                with self._lock:
                    job.scan.result = result
                    job.scan.done.set()

    def _fail(self, scan: EndpointScan, exc: Exception) -> None:
        scan.result = _no_connectivity(scan.request, exc)
        scan.cancelled = True  # its other queued jobs are of no use now
        scan.done.set()

    def _unblock(self, ip: str) -> None:
        """A connection to `ip` ended: its next waiting job may go (cancelled ones are dropped
        here, or they would take the turn and leave the live ones behind them waiting)."""
        blocked = self._blocked.get(ip)
        while blocked:
            job = blocked.popleft()
            if not job.scan.cancelled:
                heapq.heappush(self._ready, job)
                self._lock.notify()
                return
            self._settle(ip)

    def _settle(self, ip: str) -> None:
        """A job of `ip` left the pool (done or dropped)."""
        self._outstanding[ip] -= 1
        if self._outstanding[ip] == 0:
            self._capacity -= self._per_ip[ip]

    def _complete(self, job: _Job, value: Any, error: Exception | None) -> _OngoingServerScan | None:
        """Record a finished job; the scan to turn into a result when it was the last one."""
        scan = job.scan
        scan.pending -= 1
        if not isinstance(error, _SILENT):
            scan.last_progress = time.monotonic()
        if job.command is None:
            if error is not None:
                scan.result = _no_connectivity(scan.request, error)
                scan.done.set()
                return None
            self._queue_commands(scan, value)
        elif isinstance(job.command, _ExtraCommand):
            scan.extras[job.command.name] = value if error is None else error
        elif job.answers:
            entries = value if error is None else [(None, error)] * job.answers
            for _, failed in entries:
                if failed is not None:
                    _released(failed)
            scan.completed.extend(CompletedScanJob(scan.request.uuid, job.command, v, e) for v, e in entries)
            if job.call is _elimination.eliminate:
                scan.robot_needed |= any(_robot_may_connect(v, e) for v, e in entries)
                scan.suite_jobs -= 1
                if scan.suite_jobs == 0 or scan.robot_needed:  # settled: no need to wait for the rest
                    self._release_robot(scan)
        else:
            scan.completed.append(CompletedScanJob(scan.request.uuid, job.command, value, error))
        if scan.pending:
            return None
        if scan.last:
            for command, call, args in scan.last:
                self._push(scan, command, call, args)
            scan.last.clear()
            return None
        if scan.ongoing is None:
            return None
        return replace(
            scan.ongoing, completed_scan_jobs=scan.completed, queued_scan_jobs_count=len(scan.completed)
        )

    def _queue_commands(self, scan: EndpointScan, probing: Any) -> None:
        jobs, queuing_errors = _generate_scan_jobs_for_server_scan(scan.request, probing)
        scan.ongoing = _OngoingServerScan(
            server_scan_request=scan.request,
            server_connectivity_result=probing,
            assigned_queue=None,  # type: ignore[arg-type]  # unused: the pool dispatches jobs
            scan_command_errors_during_queuing=queuing_errors,
            queued_scan_jobs_count=0,
            completed_scan_jobs=[],
        )
        eliminated = set()
        for command, command_jobs in jobs.items():
            calls = {one.function_to_call for one in command_jobs}
            if not scan.exhaustive and calls == {test_robot}:
                scan.robot = [
                    (command, *_guarded(one.function_to_call, one.function_arguments)) for one in command_jobs
                ]
                continue
            if not scan.exhaustive and calls == {connect_with_cipher_suite}:
                eliminated.add(command)
                self._queue_elimination(scan, command, command_jobs)
            elif not scan.exhaustive and calls == {_test_curve}:
                curves = [one.function_arguments[1] for one in command_jobs]
                server = command_jobs[0].function_arguments[0]
                self._push(
                    scan,
                    command,
                    _elimination.eliminate_groups,
                    (server, curves, partial(_answered, scan)),
                    len(curves),
                )
            else:
                for one in command_jobs:
                    call, args = _guarded(one.function_to_call, one.function_arguments)
                    if one.function_to_call in _LAST:
                        scan.last.append((command, call, args))
                    else:
                        self._push(scan, command, call, args)
        # Every version's suites must come from elimination for their answers to settle ROBOT.
        scan.robot_needed = not _SUITE_COMMANDS.issubset(eliminated)
        if scan.suite_jobs == 0 or scan.robot_needed:
            self._release_robot(scan)
        if scan.extra_probes:
            server = ServerConnectivityInfo(
                server_location=scan.request.server_location,
                network_configuration=scan.request.network_configuration,
                tls_probing_result=probing,
            )
            for name, probe in scan.extra_probes.items():
                self._push(scan, _ExtraCommand(name), probe, (server,))

    def _queue_elimination(self, scan: EndpointScan, command: Any, jobs: Sequence[Any]) -> None:
        """sslyze's one-handshake-per-suite jobs of one version, as a few elimination jobs."""
        server, version = jobs[0].function_arguments[:2]
        groups: dict[bool, list[Any]] = {}
        for one in jobs:
            suite = one.function_arguments[2]
            groups.setdefault(_elimination.needs_legacy_openssl(version, suite), []).append(suite)
        for legacy, suites in groups.items():
            for chunk in _elimination.chunks(suites):
                scan.suite_jobs += 1
                self._push(
                    scan,
                    command,
                    _elimination.eliminate,
                    (server, version, chunk, legacy, partial(_answered, scan)),
                    len(chunk),
                )

    def _release_robot(self, scan: EndpointScan) -> None:
        """The suites are known: ROBOT's jobs run, or get sslyze's own "RSA not supported"."""
        for command, call, args in scan.robot:
            if scan.robot_needed:
                self._push(scan, command, call, args)
            else:
                skipped = CompletedScanJob(scan.request.uuid, command, None, ServerDoesNotSupportRsa())
                scan.completed.append(skipped)
        scan.robot.clear()


def _guarded(call: Callable[..., Any], args: Sequence[Any]) -> tuple[Callable[..., Any], Sequence[Any]]:
    """A job's function and arguments, through `_earned` when it is one of `_ONE_ANSWER`; a
    suite's or a curve's own handshake (the exhaustive path) through `_elimination.one_suite`
    or `one_curve`, which ask a silent server again before they read "rejected"."""
    if call is connect_with_cipher_suite:
        return _elimination.one_suite, args
    if call is _test_curve:
        return _elimination.one_curve, args
    return (_earned, (call, *args)) if call in _ONE_ANSWER else (call, args)


def _robot_may_connect(value: Any, error: Exception | None) -> bool:
    """Whether one suite's answer leaves ROBOT's handshakes a chance: an accepted suite with RSA
    key exchange, or no answer at all (a suite our OpenSSL cannot offer, which sslyze skips, is
    no chance: ROBOT's client cannot offer it either)."""
    if error is not None:
        return not isinstance(error, NoCiphersAvailableBugInSSlyze)
    return isinstance(value, CipherSuiteAcceptedByServer) and rsa_key_exchange(value.cipher_suite.name)


def rsa_key_exchange(suite: str) -> bool:
    """Whether the suite (IANA name) has RSA key exchange, the kind ROBOT's payloads need."""
    return suite.startswith(_RSA_KEY_EXCHANGE)


def _released(error: Exception) -> Exception:
    """`error` without the local variables of the frames it went through. A job's exception is
    kept until its scan ends, and with its frames the connection it failed on: sslyze's HTTP
    request leaves a handshake that met a certificate request unclosed, and a server that serves
    one connection at a time then waits on it, every later handshake of the scan timing out."""
    clear_frames(error.__traceback__)
    return error


def _answered(scan: EndpointScan) -> None:
    """The server completed a handshake inside a longer job: it is not silent."""
    scan.last_progress = time.monotonic()


def _no_connectivity(request: ServerScanRequest, error: Exception) -> ServerScanResult:
    if not isinstance(error, ConnectionToServerFailed):
        error = ConnectionToServerFailed(
            server_location=request.server_location,
            network_configuration=request.network_configuration,
            error_message=f"TLS scanner failed: {type(error).__name__}: {error}",
        )
    return ServerScanResult(
        uuid=request.uuid,
        server_location=request.server_location,
        network_configuration=request.network_configuration,
        connectivity_status=ServerConnectivityStatusEnum.ERROR,
        connectivity_error_trace=TracebackException.from_exception(error),
        connectivity_result=None,
        scan_status=ServerScanStatusEnum.ERROR_NO_CONNECTIVITY,
        scan_result=None,
    )


_POOL: JobPool | None = None
_POOL_LOCK = threading.Lock()


def pool() -> JobPool:
    """The process's pool, started on first use."""
    global _POOL  # one pool per process is the point
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = JobPool()
        return _POOL
