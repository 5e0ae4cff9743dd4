"""The one module that speaks sslyze: scan many TLS endpoints at once, return `TlsData` facts.

The scans run on the process's shared job pool (`_pool.py`: one set of workers for the run, a
per-IP connection cap, cancellation). Their results are turned here into our own frozen models,
so that nothing else in attt depends on sslyze's classes.
"""

import atexit
import functools
import math
import re
import shutil
import socket
import ssl
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from traceback import TracebackException
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.ocsp import OCSPCertStatus, OCSPResponse, OCSPResponseStatus
from nassl.ssl_client import ExtendedMasterSecretSupportEnum, SslClient

# sslyze's package root re-exports these implicitly, which strict typing does not accept.
from sslyze.connection_helpers.opportunistic_tls_helpers import ProtocolWithOpportunisticTlsEnum
from sslyze.plugins.certificate_info.implementation import CertificateInfoExtraArgument
from sslyze.plugins.scan_commands import ScanCommand
from sslyze.scanner.models import (
    ScanCommandsExtraArguments,
    ServerScanRequest,
    ServerScanResult,
    ServerScanStatusEnum,
)
from sslyze.scanner.scan_command_attempt import ScanCommandAttemptStatusEnum
from sslyze.server_connectivity import ServerConnectivityInfo, TlsVersionEnum
from sslyze.server_setting import ServerNetworkConfiguration, ServerNetworkLocation

from attt.checks.tls import _pool
from attt.checks.tls import x509 as x509_facts
from attt.checks.tls.models import (
    HTTP_STEP,
    SUITE_STEPS,
    Certificate,
    CertificateStatus,
    Hsts,
    IssuerKey,
    KeyExchange,
    Protocol,
    StartTls,
    TlsData,
    Vulnerabilities,
    static_key_suites,
)
from attt.scanner.models.observation import bound_text


@dataclass(frozen=True)
class Endpoint:
    """One TLS service: the pinned address, the port, the name to send as SNI, and STARTTLS."""

    ip: str
    port: int
    sni: str | None = None
    starttls: StartTls | None = None
    http: bool = True
    """Send an HTTP request over TLS (for HSTS); never done over STARTTLS (see `asks_http`)."""

    @property
    def asks_http(self) -> bool:
        return self.http and self.starttls is None


@dataclass(frozen=True)
class ScanOptions:
    connect_timeout: float
    """Per connection and read, in seconds."""
    deadline: float
    """One endpoint's whole scan, in seconds from its first connection; not done by then, it is
    reported as a failure."""
    silence: float = 30.0
    """Seconds without any answer from the server after which its scan is given up (the probe
    passes `--timeout`)."""
    trust_anchors: tuple[Path, ...] = ()
    max_connections_per_server: int = 3
    """Connections at once to one IP address, across all its ports."""
    exhaustive: bool = False
    """Cipher suites one handshake each (sslyze's way) instead of by elimination."""


@dataclass(frozen=True)
class ScanFailure:
    """The endpoint could not be scanned; `reason` is for people and is bounded."""

    reason: str


ScanOutcome = TlsData | ScanFailure

_STARTTLS = {
    "smtp": ProtocolWithOpportunisticTlsEnum.SMTP,
    "imap": ProtocolWithOpportunisticTlsEnum.IMAP,
    "pop3": ProtocolWithOpportunisticTlsEnum.POP3,
    "ldap": ProtocolWithOpportunisticTlsEnum.LDAP,
    "ftp": ProtocolWithOpportunisticTlsEnum.FTP,
    "xmpp": ProtocolWithOpportunisticTlsEnum.XMPP,
    "postgres": ProtocolWithOpportunisticTlsEnum.POSTGRES,
    "rdp": ProtocolWithOpportunisticTlsEnum.RDP,
}
_SUITE_COMMANDS: dict[Protocol, tuple[Any, str]] = {
    "SSLv2": (ScanCommand.SSL_2_0_CIPHER_SUITES, SUITE_STEPS["SSLv2"]),
    "SSLv3": (ScanCommand.SSL_3_0_CIPHER_SUITES, SUITE_STEPS["SSLv3"]),
    "TLSv1.0": (ScanCommand.TLS_1_0_CIPHER_SUITES, SUITE_STEPS["TLSv1.0"]),
    "TLSv1.1": (ScanCommand.TLS_1_1_CIPHER_SUITES, SUITE_STEPS["TLSv1.1"]),
    "TLSv1.2": (ScanCommand.TLS_1_2_CIPHER_SUITES, SUITE_STEPS["TLSv1.2"]),
    "TLSv1.3": (ScanCommand.TLS_1_3_CIPHER_SUITES, SUITE_STEPS["TLSv1.3"]),
}
_COMMON_COMMANDS = frozenset(
    {
        ScanCommand.CERTIFICATE_INFO,
        ScanCommand.ELLIPTIC_CURVES,
        ScanCommand.HEARTBLEED,
        ScanCommand.ROBOT,
        ScanCommand.OPENSSL_CCS_INJECTION,
        ScanCommand.SESSION_RENEGOTIATION,
        ScanCommand.TLS_COMPRESSION,
        ScanCommand.TLS_FALLBACK_SCSV,
        ScanCommand.TLS_EXTENDED_MASTER_SECRET,
        *(command for command, _ in _SUITE_COMMANDS.values()),
    }
)
_OTHER_FIELDS = (
    "certificate_info",
    "elliptic_curves",
    "heartbleed",
    "robot",
    "openssl_ccs_injection",
    "session_renegotiation",
    "tls_compression",
    "tls_fallback_scsv",
    "tls_extended_master_secret",
)
"""Fields of sslyze's results for the commands besides the suites (HTTP headers are optional)."""
# sslyze names two groups the OpenSSL way; the data speaks IANA's TLS group names.
_GROUP_NAMES = {"X25519": "x25519", "X448": "x448"}
# X25519 keys are 253 bits long but rank with 256-bit curves, which is how profiles size them.
_ECDH_STRENGTH = {"X25519": 256}
_FAILURE_TEXT = {
    "ServerRejectedConnection": "connection refused",
    "ConnectionToServerTimedOut": "connection timed out",
    "TlsHandshakeTimedOut": "no answer to the TLS handshake (the port accepts connections but stays silent)",
    "ServerTlsConfigurationNotSupported": "no TLS handshake possible (not TLS, or no protocol in common)",
    "ServerRejectedTlsHandshake": "the server rejected every TLS handshake",
    # A refusal in the protocol's own words is a plain service (`_upgrade_refused`); what is left
    # is a dialogue that broke off (a hang-up, an error reply) before any upgrade.
    "ServerRejectedOpportunisticTlsNegotiation": "the STARTTLS dialogue ended without an upgrade",
}
MAX_REASON_CHARS = 300
_REFUSED = "ServerRejectedOpportunisticTlsNegotiation"
# sslyze's own texts for a server that answered and declined the upgrade (as opposed to one that
# broke the dialogue): "FTP AUTH TLS was rejected", "IMAP START TLS was rejected", "Server does
# not support STARTTLS with SMTP" (its EHLO reply does not list it), "LDAP AUTH TLS was rejected;
# returned: b'...'" unless nothing was returned (the server hung up: no answer at all).
_REFUSAL = re.compile(r"(START ?TLS|AUTH TLS) was rejected(?!; returned: b'')|does not support STARTTLS")
_DECLINED = "SMTP STARTTLS rejected: "
"""sslyze's text for an SMTP server that listed STARTTLS in its EHLO reply and then answered the
command with something other than 220 (RFC 3207's 454 "TLS not available due to temporary
reason", say): a service with TLS that this scan did not see, not a service without it."""
_ROBOT_NO_RSA = "NOT_VULNERABLE_RSA_NOT_SUPPORTED"
"""sslyze's ROBOT answer when its handshakes found no RSA key exchange."""
_OCSP_SUCCESSFUL = "successful"
_OCSP_STATUS = {
    OCSPResponseStatus.SUCCESSFUL: _OCSP_SUCCESSFUL,
    OCSPResponseStatus.MALFORMED_REQUEST: "malformedRequest",
    OCSPResponseStatus.INTERNAL_ERROR: "internalError",
    OCSPResponseStatus.TRY_LATER: "tryLater",
    OCSPResponseStatus.SIG_REQUIRED: "sigRequired",
    OCSPResponseStatus.UNAUTHORIZED: "unauthorized",
}
"""RFC 6960's names of an OCSP response's status: only a successful one carries the certificate's
status, which is what stapling is for."""
_LOOK_EVERY = 1.0
"""Seconds at most between two looks at a probe's scans while none ends or can overrun, each
calling the probe's keepalive. Every probe waiting on the pool looked every 0.1 s: at
`--concurrency 256`, 2,560 wake-ups a second, each taking its process's interpreter lock, which
the pool's workers need to read their servers' answers."""
_PAST = 0.01
"""How far past a budget's end the scan is looked at again: `_overrun` gives up only once it
is exceeded."""
_CUSTOM_STORE_NAME = "Supplied CA file"
"""The name sslyze gives the trust store made of the CA file a scan passes it."""


def scan(
    endpoints: Sequence[Endpoint], options: ScanOptions, keepalive: Callable[[], None] = lambda: None
) -> dict[Endpoint, ScanOutcome]:
    """Scan every endpoint on the run's shared job pool; every endpoint gets an outcome.

    An endpoint's time counts from its first job, not while it waits for a worker; it fails
    when the server says nothing for `options.silence` seconds or the scan overruns
    `options.deadline`, and is then cancelled (its queued jobs never run). `keepalive` is
    called while the scan waits for workers or the server is still answering."""
    unique = list(dict.fromkeys(endpoints))
    with ThreadPoolExecutor(
        max_workers=max(1, min(16, len(unique))), thread_name_prefix="attt-tls-pre"
    ) as pre:
        checked = list(pre.map(lambda e: _unresponsive(e, options.connect_timeout), unique))
    early: dict[Endpoint, ScanOutcome] = {e: f for e, f in zip(unique, checked, strict=True) if f is not None}
    remaining = [endpoint for endpoint in unique if endpoint not in early]
    if not remaining:
        return early
    # sslyze's bundled trust stores hold roots that this cryptography release warns about on
    # every load (by sslyze, and by `_anchors` here); the warning is about sslyze's data, not
    # the scanned server.
    warnings.filterwarnings(
        "ignore", category=CryptographyDeprecationWarning, module=r"(sslyze|attt\.checks\.tls\._sslyze)\b"
    )
    try:
        ca_file = _trust_file(options.trust_anchors)
    except (OSError, ValueError) as exc:
        failure = ScanFailure(bound_text(f"trust anchors unusable: {exc}", MAX_REASON_CHARS))
        return {**early, **dict.fromkeys(remaining, failure)}
    jobs = _pool.pool()
    scans = {
        endpoint: jobs.submit(
            _request(endpoint, options, ca_file),
            endpoint.ip,
            options.max_connections_per_server,
            exhaustive=options.exhaustive,
            extras={_EMS_TLS12: _tls12_ems},
        )
        for endpoint in remaining
    }
    return _confirm_refusals({**early, **_await(scans, options, keepalive)}, options.connect_timeout)


def _await(
    scans: dict[Endpoint, _pool.EndpointScan], options: ScanOptions, keepalive: Callable[[], None]
) -> dict[Endpoint, ScanOutcome]:
    """Each scan's outcome, looking at the scans only when one ends, when one could have overrun
    its budget, or `_LOOK_EVERY` seconds have passed (to call `keepalive`)."""
    outcomes: dict[Endpoint, ScanOutcome] = {}
    jobs = _pool.pool()
    every = max(_PAST, min(_LOOK_EVERY, options.silence, options.deadline))  # a zero budget never spins
    while len(outcomes) < len(scans):
        now = time.monotonic()
        alive = False
        look = now + every
        for endpoint, scan in scans.items():
            if endpoint in outcomes:
                continue
            if scan.done.is_set() and scan.result is not None:
                outcomes[endpoint] = _outcome(scan.result, endpoint, scan.extras)
                continue
            failure = _overrun(scan, options, now)
            if failure is not None:
                jobs.cancel(scan)
                outcomes[endpoint] = failure
                continue
            # Waiting for a worker (attt is busy) or the server answered recently: not stalled.
            alive |= (
                scan.started is None
                or scan.running == 0
                or now - (scan.last_progress or now) < options.connect_timeout
            )
            look = min(look, _overrun_due(scan, options, now))
        if alive:
            keepalive()
        pending = [s for e, s in scans.items() if e not in outcomes]
        if pending:
            pending[0].done.wait(max(0.0, look - time.monotonic()))
    return outcomes


def _overrun_due(scan: _pool.EndpointScan, options: ScanOptions, now: float) -> float:
    """The earliest time `_overrun` could give the scan up, should nothing change meanwhile
    (an answer or a held job only puts it later); infinite while attt holds every job back."""
    if scan.started is None or scan.running == 0:
        return math.inf
    silent_until = (scan.last_progress or scan.started) + options.silence
    return min(silent_until, now + options.deadline - scan.active(now)) + _PAST


def _overrun(scan: _pool.EndpointScan, options: ScanOptions, now: float) -> ScanFailure | None:
    """Why the scan is given up, judged on the time its jobs were on the wire: none while attt
    held all of them back (silence is a server's, not attt's)."""
    if scan.started is None or scan.running == 0:
        return None
    if now - (scan.last_progress or scan.started) > options.silence:
        return ScanFailure(f"the server stopped answering the TLS scan for {options.silence:g} s")
    if scan.active(now) > options.deadline:
        return ScanFailure(f"TLS scan did not finish within {options.deadline:.0f} s of starting")
    return None


def _unresponsive(endpoint: Endpoint, timeout: float) -> ScanFailure | None:
    """A failure when the port refuses or never answers a ClientHello, else None.

    sslyze tries every protocol version in turn and waits its full network timeout on each,
    so a silent port would cost minutes; one handshake attempt settles it in `timeout`.
    STARTTLS services speak first, so sslyze's own dialogue handles them.
    """
    if endpoint.starttls is not None:
        return None
    # Only "does anything answer?" matters here: no certificate is judged from this handshake.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    stage = "connect"
    try:
        with socket.create_connection((endpoint.ip, endpoint.port), timeout=timeout) as sock:
            stage = "handshake"
            with context.wrap_socket(sock, server_hostname=endpoint.sni or None):
                return None
    except ConnectionRefusedError:
        return ScanFailure("connection refused")
    except TimeoutError:
        if stage == "connect":
            return ScanFailure(f"connection timed out after {timeout:.0f} s")
        return ScanFailure(
            f"the port accepts connections but sent nothing back to a TLS ClientHello within {timeout:.0f} s"
        )
    except OSError as exc:
        if stage == "connect":
            return ScanFailure(bound_text(f"connection failed: {exc}", MAX_REASON_CHARS))
        # The port answered, even if not with TLS we like: sslyze will tell what it speaks.
        return None


def _trust_file(anchors: tuple[Path, ...]) -> Path | None:
    """sslyze takes one extra CA file per scan: the configured anchors joined into one.

    The file is made once per process, in a private temporary directory removed when attt
    exits: a scan abandoned at its deadline may still be reading it, so no scan can remove it
    (one directory per timed-out scan was left behind when each scan had its own)."""
    if not anchors:
        return None
    with _ANCHOR_LOCK:
        if anchors not in _ANCHOR_FILES:
            pems: list[bytes] = []
            for anchor in anchors:
                certs = x509.load_pem_x509_certificates(anchor.read_bytes())
                pems.extend(cert.public_bytes(Encoding.PEM) for cert in certs)
            tmp = Path(tempfile.mkdtemp(prefix="attt-tls-"))
            atexit.register(shutil.rmtree, tmp, ignore_errors=True)
            joined = tmp / "anchors.pem"
            joined.write_bytes(b"".join(pems))
            _ANCHOR_FILES[anchors] = joined
        return _ANCHOR_FILES[anchors]


_ANCHOR_FILES: dict[tuple[Path, ...], Path] = {}
_ANCHOR_LOCK = threading.Lock()


def _request(endpoint: Endpoint, options: ScanOptions, ca_file: Path | None) -> ServerScanRequest:
    # sslyze wants a host name even when it connects by IP; it never resolves it when
    # `ip_address` is set, so the pinned address is the only one contacted.
    location = ServerNetworkLocation(
        hostname=endpoint.sni or endpoint.ip, port=endpoint.port, ip_address=endpoint.ip
    )
    network = ServerNetworkConfiguration(
        tls_server_name_indication=endpoint.sni or endpoint.ip,
        tls_opportunistic_encryption=_STARTTLS[endpoint.starttls] if endpoint.starttls else None,
        network_timeout=max(1, math.ceil(options.connect_timeout)),
        network_max_retries=1,
    )
    commands = set(_COMMON_COMMANDS)
    if endpoint.asks_http:
        commands.add(ScanCommand.HTTP_HEADERS)
    extra = ScanCommandsExtraArguments(
        certificate_info=CertificateInfoExtraArgument(custom_ca_file=ca_file) if ca_file else None
    )
    return ServerScanRequest(
        server_location=location,
        network_configuration=network,
        scan_commands=commands,
        scan_commands_extra_arguments=extra,
    )


def _outcome(result: ServerScanResult, endpoint: Endpoint, extras: dict[str, Any]) -> ScanOutcome:
    if result.scan_status != ServerScanStatusEnum.COMPLETED or result.scan_result is None:
        if endpoint.starttls is not None and _upgrade_refused(result.connectivity_error_trace):
            return _plain_service(endpoint, datetime.now(UTC))
        return ScanFailure(_failure_reason(result.connectivity_error_trace))
    try:
        data = _tls_data(result.scan_result, endpoint, datetime.now(UTC))
        return data.model_copy(update={"vulnerabilities": _ems_on_tls12(data, extras.get(_EMS_TLS12))})
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        # A certificate too broken to describe is still a fact about the endpoint, but not one
        # our model can hold: report it rather than pretend the endpoint was judged.
        return ScanFailure(bound_text(f"could not interpret the scan result: {exc}", MAX_REASON_CHARS))


def _upgrade_refused(trace: TracebackException | None) -> bool:
    """The server answered its plain protocol and said no to STARTTLS / AUTH TLS, as opposed to
    a connection that failed: only sslyze's refusal messages count."""
    if trace is None or trace.exc_type is None or trace.exc_type.__name__ != _REFUSED:
        return False
    return bool(_REFUSAL.search("".join(trace.format_exception_only())))


@dataclass(frozen=True)
class _Upgrade:
    """How a plain protocol asks for TLS, and how its greeting and its "no" begin."""

    command: bytes
    greeting: tuple[bytes, ...]
    refusal: tuple[bytes, ...]
    ends_greeting: Callable[[bytes], bool]
    ends_reply: Callable[[bytes], bool]


def _first_line(_line: bytes) -> bool:
    return True


def _ftp_last_line(line: bytes) -> bool:
    """The last line of an FTP reply: its code and a space ("220-" lines continue it)."""
    return line[:3].isdigit() and line[3:4] != b"-"


_UPGRADES: dict[StartTls, _Upgrade] = {
    "imap": _Upgrade(
        b"a STARTTLS\r\n",
        (b"* OK", b"* PREAUTH"),
        (b"a NO", b"a BAD"),
        _first_line,
        lambda line: line[:2] == b"a ",
    ),
    "pop3": _Upgrade(b"STLS\r\n", (b"+OK",), (b"-ERR",), _first_line, _first_line),
    # 5yz is a permanent no; 4yz (421 busy, 431 unavailable) is for now only.
    "ftp": _Upgrade(b"AUTH TLS\r\n", (b"220",), (b"5",), _ftp_last_line, _ftp_last_line),
}
_REPLY_LINES = 20
_LINE_BYTES = 1024


def _confirm_refusals(outcomes: dict[Endpoint, ScanOutcome], timeout: float) -> dict[Endpoint, ScanOutcome]:
    """Every refused upgrade of `outcomes`, heard once more before it stands (`_refusal_heard`)."""
    refused = [e for e, o in outcomes.items() if isinstance(o, TlsData) and o.starttls_refused]
    if not refused:
        return outcomes
    with ThreadPoolExecutor(max_workers=min(16, len(refused)), thread_name_prefix="attt-tls-refusal") as pool:
        heard = dict(zip(refused, pool.map(lambda e: _refusal_heard(e, timeout), refused), strict=True))
    return {
        endpoint: outcome if heard.get(endpoint, True) else ScanFailure(_unheard(endpoint))
        for endpoint, outcome in outcomes.items()
    }


def _unheard(endpoint: Endpoint) -> str:
    protocol = (endpoint.starttls or "").upper()
    return (
        f"no answer to the upgrade to TLS: the {protocol} service did not refuse it for good (it hung"
        " up, greeted with an error or a busy reply, or declined for now), so whether it speaks TLS"
        " was not observed"
    )


def _refusal_heard(endpoint: Endpoint, timeout: float) -> bool:
    """Whether the service, on a connection of its own, greets as its protocol does and answers
    the upgrade command with its protocol's "no". sslyze reports a refusal also for a service
    that hung up, or greeted with IMAP's BYE or FTP's 421 (too many connections): that is no
    refusal, and failing a busy mail server for cleartext logins would be a verdict never earned.
    A protocol without a dialogue here keeps sslyze's word."""
    upgrade = _UPGRADES.get(endpoint.starttls) if endpoint.starttls else None
    if upgrade is None:
        return True
    deadline = time.monotonic() + 2 * timeout
    try:
        with (
            socket.create_connection((endpoint.ip, endpoint.port), timeout=timeout) as sock,
            sock.makefile("rb") as reader,
        ):
            if not _reply(sock, reader, upgrade.ends_greeting, deadline).startswith(upgrade.greeting):
                return False
            sock.sendall(upgrade.command)
            return _reply(sock, reader, upgrade.ends_reply, deadline).startswith(upgrade.refusal)
    except OSError:
        return False


def _reply(sock: socket.socket, reader: Any, ends: Callable[[bytes], bool], deadline: float) -> bytes:
    """The line that ends a reply, or b"" when the server hangs up; bounded in lines, bytes and
    time (a timeout raises)."""
    for _ in range(_REPLY_LINES):
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        line: bytes = reader.readline(_LINE_BYTES)
        if not line or ends(line):
            return line
    return b""


def _plain_service(endpoint: Endpoint, scanned_at: datetime) -> TlsData:
    """An observed fact: this service speaks only its plain protocol."""
    return TlsData(
        scanned_at=scanned_at,
        sni=endpoint.sni,
        starttls=endpoint.starttls,
        starttls_refused=True,
        protocols=(),
        cipher_suites={},
        forward_secrecy=False,
        groups=None,
        certificate=None,
        ocsp_stapling=False,
        vulnerabilities=Vulnerabilities(**dict.fromkeys(Vulnerabilities.model_fields)),
        http=False,
    )


_EMS_TLS12 = "ems_tls12"
"""The extra probe (`_pool.EndpointScan.extras`) asking for the extended master secret on TLS 1.2."""


def _tls12_ems(server: ServerConnectivityInfo) -> ExtendedMasterSecretSupportEnum | None:
    """Whether a TLS 1.2 handshake uses the extended master secret, asked only of a server whose
    highest version is TLS 1.3 (sslyze's own test answers for the others); None when not asked.
    It runs on the pool as one of the scan's jobs, not after them on a connection of its own."""
    if server.tls_probing_result.highest_tls_version_supported != TlsVersionEnum.TLS_1_3:
        return None
    connection = server.get_preconfigured_tls_connection(
        override_tls_version=TlsVersionEnum.TLS_1_2, should_use_legacy_openssl=False
    )
    try:
        connection.connect()
        client = connection.ssl_client
        if not isinstance(client, SslClient):
            raise TypeError("sslyze gave the legacy client where the modern one was asked for")
        return client.get_extended_master_secret_support()
    finally:
        connection.close()


def _ems_on_tls12(data: TlsData, support: object) -> Vulnerabilities:
    """sslyze reports the extended master secret as supported whenever TLS 1.3 is offered; the
    question only matters for TLS 1.2, so it is asked on a TLS 1.2 handshake (`_tls12_ems`,
    whose answer or exception is `support`; None if that fails)."""
    facts = data.vulnerabilities
    if "TLSv1.2" not in data.protocols:
        # Without TLS 1.2 (TLS 1.3 has the extended master secret built in) nothing is exposed;
        # with only older versions sslyze's own answer stands.
        only_tls13 = data.protocols == ("TLSv1.3",)
        return facts.model_copy(update={"extended_master_secret": False}) if only_tls13 else facts
    if "TLSv1.3" not in data.protocols:
        return facts
    # Any failure (an exception, the probe never run) leaves the fact unobserved, never "not exposed".
    if support == ExtendedMasterSecretSupportEnum.USED_IN_CURRENT_SESSION:
        return facts.model_copy(update={"extended_master_secret": False})
    if support == ExtendedMasterSecretSupportEnum.NOT_USED_IN_CURRENT_SESSION:
        return facts.model_copy(update={"extended_master_secret": True})
    return facts.model_copy(update={"extended_master_secret": None})


def lifetime_days(not_before: datetime, not_after: datetime) -> int:
    """Whole days of validity, rounded down as sslyze and Mozilla's checker count them."""
    return (not_after - not_before).days


def _failure_reason(trace: TracebackException | None) -> str:
    if trace is None:
        return "TLS scan failed for an unknown reason"
    name = trace.exc_type.__name__ if trace.exc_type is not None else "error"
    detail = "".join(trace.format_exception_only()).strip().rsplit("->", 1)[-1].strip(' ".')
    text = _FAILURE_TEXT.get(name)
    reason = f"{text}: {detail}" if text else f"{name}: {detail}"
    if detail.startswith(_DECLINED):
        reply = detail.removeprefix(_DECLINED)
        reason = (
            f"the SMTP server lists STARTTLS but declined to start it ({reply}): its TLS was not observed"
        )
    return bound_text(reason, MAX_REASON_CHARS)


def _completed(attempt: Any) -> Any:
    """The result of a scan command attempt, or None when it did not complete."""
    return attempt.result if attempt.status == ScanCommandAttemptStatusEnum.COMPLETED else None


def _step_errors(attempts: Any, endpoint: Endpoint) -> dict[str, str]:
    """Every requested step (scan command) that did not complete, with why; an HTTP request
    that got no valid answer (refused, too slow, too large, not HTTP) is one of them."""
    steps = [*(field for _, field in _SUITE_COMMANDS.values()), *_OTHER_FIELDS]
    if endpoint.asks_http:
        steps.append(HTTP_STEP)
    errors: dict[str, str] = {}
    for name in steps:
        attempt = getattr(attempts, name)
        if attempt.status != ScanCommandAttemptStatusEnum.COMPLETED:
            errors[name] = _trace_text(attempt.error_trace, str(attempt.status.value))
        elif name == HTTP_STEP and attempt.result.http_error_trace is not None:
            errors[name] = _trace_text(attempt.result.http_error_trace, "no valid HTTP answer")
    return errors


def _trace_text(trace: TracebackException | None, fallback: str) -> str:
    if trace is None:
        return fallback
    name = trace.exc_type.__name__ if trace.exc_type is not None else "error"
    detail = "".join(trace.format_exception_only()).strip().splitlines()[-1:]
    text = detail[0].split(": ", 1)[-1] if detail else ""
    return bound_text(f"{name}: {text}" if text and text != name else name, MAX_REASON_CHARS)


def _tls_data(attempts: Any, endpoint: Endpoint, scanned_at: datetime) -> TlsData:
    step_errors = _step_errors(attempts, endpoint)
    suites: dict[Protocol, tuple[str, ...]] = {}
    dh_bits: list[int] = []
    ecdh_bits: list[int] = []
    for protocol, (_, field) in _SUITE_COMMANDS.items():
        result = _completed(getattr(attempts, field))
        if result is None or not result.accepted_cipher_suites:
            continue
        suites[protocol] = tuple(accepted.cipher_suite.name for accepted in result.accepted_cipher_suites)
        for accepted in result.accepted_cipher_suites:
            key = accepted.ephemeral_key
            if key is not None and key.type_name == "DH":
                dh_bits.append(key.size)
            elif key is not None and key.type_name == "ECDH":
                ecdh_bits.append(_ECDH_STRENGTH.get(getattr(key, "curve_name", ""), key.size))
    certificate, other_certificates, ocsp_responder, stapled = _certificates(
        _completed(attempts.certificate_info), endpoint, scanned_at
    )
    http, hsts = _http(attempts, endpoint)
    vulnerabilities = _vulnerabilities(attempts)
    unearned = _robot_without_rsa(attempts, suites)
    if unearned is not None:
        vulnerabilities = vulnerabilities.model_copy(update={"robot": None})
        step_errors["robot"] = unearned
    return TlsData(
        scanned_at=scanned_at,
        sni=endpoint.sni,
        starttls=endpoint.starttls,
        protocols=tuple(suites),
        cipher_suites=suites,
        forward_secrecy=bool(suites) and not static_key_suites(suites),
        key_exchange=KeyExchange(
            dh_min_bits=min(dh_bits) if dh_bits else None, ecdh_min_bits=min(ecdh_bits) if ecdh_bits else None
        ),
        groups=_groups(_completed(attempts.elliptic_curves)),
        certificate=certificate,
        other_certificates=other_certificates,
        ocsp_responder=ocsp_responder,
        ocsp_stapling=stapled == _OCSP_SUCCESSFUL,
        ocsp_stapled_status=stapled,
        vulnerabilities=vulnerabilities,
        http=http,
        http_requested=endpoint.asks_http,
        hsts=hsts,
        incomplete=tuple(sorted(step_errors)),
        step_errors=step_errors,
    )


def _groups(result: Any) -> tuple[str, ...] | None:
    if result is None:
        return None
    if not result.supports_ecdh_key_exchange or not result.supported_curves:
        return ()
    return tuple(_GROUP_NAMES.get(curve.name, curve.name) for curve in result.supported_curves)


def _vulnerabilities(attempts: Any) -> Vulnerabilities:
    def fact(attempt: Any, read: Any) -> bool | None:
        result = _completed(attempt)
        return None if result is None else read(result)

    def robot(result: Any) -> bool | None:
        outcome = str(result.robot_result.value)
        return None if outcome.startswith("UNKNOWN") else outcome.startswith("VULNERABLE")

    renegotiation = attempts.session_renegotiation
    return Vulnerabilities(
        heartbleed=fact(attempts.heartbleed, lambda r: r.is_vulnerable_to_heartbleed),
        robot=fact(attempts.robot, robot),
        ccs_injection=fact(attempts.openssl_ccs_injection, lambda r: r.is_vulnerable_to_ccs_injection),
        insecure_renegotiation=fact(renegotiation, lambda r: not r.supports_secure_renegotiation),
        client_renegotiation=fact(renegotiation, lambda r: r.is_vulnerable_to_client_renegotiation_dos),
        compression=fact(attempts.tls_compression, lambda r: r.supports_compression),
        fallback_scsv=fact(attempts.tls_fallback_scsv, lambda r: not r.supports_fallback_scsv),
        extended_master_secret=fact(
            attempts.tls_extended_master_secret, lambda r: not r.supports_ems_extension
        ),
    )


def _robot_without_rsa(attempts: Any, suites: dict[Protocol, tuple[str, ...]]) -> str | None:
    """Why ROBOT's "RSA not supported" is no answer, or None when it is one (or was not given).

    sslyze says so when its handshakes for the RSA key, at one version with its own cipher
    lists, all came back without one; if the same scan saw a suite with RSA key exchange
    accepted, the server does speak it and ROBOT was never run against it."""
    result = _completed(attempts.robot)
    if result is None or str(result.robot_result.value) != _ROBOT_NO_RSA:
        return None
    seen = [name for names in suites.values() for name in names if _pool.rsa_key_exchange(name)]
    if not seen:
        return None
    return bound_text(
        f"ROBOT found no RSA key exchange to test, yet {seen[0]} was accepted: the server's answers"
        " to ROBOT's payloads were not observed",
        MAX_REASON_CHARS,
    )


def _http(attempts: Any, endpoint: Endpoint) -> tuple[bool, Hsts | None]:
    if not endpoint.asks_http:
        return False, None
    result = _completed(attempts.http_headers)
    if result is None or result.http_error_trace is not None:
        return False, None
    header = result.strict_transport_security_header
    if header is None:
        return True, None
    return True, Hsts(
        max_age=header.max_age, include_subdomains=header.include_subdomains, preload=header.preload
    )


# --- certificates -----------------------------------------------------------------------------


def _certificates(
    result: Any, endpoint: Endpoint, scanned_at: datetime
) -> tuple[Certificate | None, tuple[Certificate, ...], str | None, str | None]:
    """The first deployment's leaf facts, the other deployments' (a server may hold an RSA and
    an ECDSA certificate, each sent to the clients that can use it), and the first one's OCSP
    responder URL and the status of the OCSP response stapled (None: none was)."""
    if result is None or not result.certificate_deployments:
        return None, (), None, None
    # sslyze lists them in the order its handshakes finished: sorted, the same server gives the
    # same facts every run (an ECDSA certificate first, as most clients get it).
    deployments = sorted(
        (d for d in result.certificate_deployments if d.received_certificate_chain),
        key=lambda d: _deployment_order(d.received_certificate_chain[0]),
    )
    if not deployments:
        return None, (), None, None
    first, *others = (_certificate(deployment, endpoint, scanned_at) for deployment in deployments)
    leaf = deployments[0].received_certificate_chain[0]
    stapled = deployments[0].ocsp_response
    status = None if stapled is None else _OCSP_STATUS.get(stapled.response_status, "unknown")
    return first, tuple(others), x509_facts.ocsp_url(leaf), status


def _deployment_order(leaf: x509.Certificate) -> tuple[bool, str, bytes]:
    key_type = x509_facts.public_key_facts(leaf)[0]
    return key_type != "EC", key_type, leaf.fingerprint(hashes.SHA256())


def _certificate(deployment: Any, endpoint: Endpoint, scanned_at: datetime) -> Certificate:
    """The facts of one deployment's leaf and its path to a root."""
    chain: list[x509.Certificate] = deployment.received_certificate_chain
    leaf = chain[0]
    not_before, not_after = leaf.not_valid_before_utc, leaf.not_valid_after_utc
    key_type, key_bits, curve = x509_facts.public_key_facts(leaf)
    trusted, trust_error = _trusted(deployment, leaf, scanned_at)
    anchors = _anchor_index(tuple(result.trust_store.path for result in deployment.path_validation_results))
    path, missing = x509_facts.issuer_path(leaf, chain[1:], anchors)
    name = endpoint.sni or endpoint.ip
    return Certificate(
        subject=x509_facts.bounded_name(leaf.subject),
        issuer=x509_facts.bounded_name(leaf.issuer),
        sans=x509_facts.sans(leaf),
        serial=format(leaf.serial_number, "x")[:64],
        not_before=not_before,
        not_after=not_after,
        key_type=key_type,
        key_bits=key_bits,
        curve=curve,
        signature_algorithm=x509_facts.signature_name(leaf),
        signature_hash=x509_facts.signature_hash(leaf),
        chain_signature_hashes=x509_facts.path_hashes(path),
        chain_keys=tuple(_issuer_key(cert) for cert in path),
        chain_missing=missing,
        self_signed=x509_facts.is_self_signed(leaf),
        trusted=trusted,
        trust_error=trust_error,
        stapled_status=_stapled_status(deployment.ocsp_response, leaf),
        hostname=name,
        hostname_matches=x509_facts.hostname_matches(name, leaf),
        expired=not_after < scanned_at,
        lifetime_days=lifetime_days(not_before, not_after),
    )


def _stapled_status(response: OCSPResponse | None, leaf: x509.Certificate) -> CertificateStatus | None:
    """The leaf's status in a successful stapled OCSP response, if it speaks of the leaf."""
    if response is None or response.response_status != OCSPResponseStatus.SUCCESSFUL:
        return None
    for single in response.responses:
        if single.serial_number == leaf.serial_number:
            return _CERTIFICATE_STATUS[single.certificate_status]
    return None


_CERTIFICATE_STATUS: dict[OCSPCertStatus, CertificateStatus] = {
    OCSPCertStatus.GOOD: "good",
    OCSPCertStatus.REVOKED: "revoked",
    OCSPCertStatus.UNKNOWN: "unknown",
}


def _issuer_key(cert: x509.Certificate) -> IssuerKey:
    key_type, key_bits, curve = x509_facts.public_key_facts(cert)
    return IssuerKey(
        subject=x509_facts.bounded_name(cert.subject), key_type=key_type, key_bits=key_bits, curve=curve
    )


@functools.cache
def _anchors(store: Path) -> list[x509.Certificate]:
    """The certificates of a trust store's PEM file (sslyze's own or the configured anchors),
    read once per process."""
    return x509.load_pem_x509_certificates(store.read_bytes())


@functools.cache
def _anchor_index(stores: tuple[Path, ...]) -> x509_facts.Anchors:
    """Every anchor of `stores` by subject name, made once per process for each set of stores."""
    return x509_facts.Anchors(cert for store in stores for cert in _anchors(store))


def _trusted(deployment: Any, leaf: x509.Certificate, scanned_at: datetime) -> tuple[bool, str | None]:
    """Validate the chain against each trust store sslyze used, for a name the leaf itself
    carries: trust and name are separate facts (`hostname_matches` is the other one).

    A leaf that is itself one of the configured anchors is trusted by that configuration: it is
    how an operator trusts a self-signed certificate (a client pinning it does the same), and
    the validator, which wants an anchor to be a CA above the leaf, refuses it."""
    if any(
        x509_facts.is_anchor(leaf, anchor)
        for result in deployment.path_validation_results
        if result.trust_store.name == _CUSTOM_STORE_NAME
        for anchor in _anchors(result.trust_store.path)
    ):
        return True, None
    subject = x509_facts.own_subject(leaf)
    if subject is None:
        return False, "the certificate has no subjectAltName to validate"
    pems = deployment.received_certificate_chain_as_pem
    errors: dict[str, str] = {}
    for path_result in deployment.path_validation_results:
        store = path_result.trust_store
        try:
            outcome = store.verify_certificate_chain(pems, subject, validation_time=scanned_at)
        except ValueError as exc:
            # The validator cannot parse some part of the chain (a malformed name, say): no
            # client that validates would accept it either.
            errors[store.name] = f"the chain cannot be validated: {exc}"
            continue
        if outcome.was_validation_successful:
            return True, None
        errors[store.name] = str(outcome.validation_error)
    # The configured anchors' verdict is the most telling one to show, then Mozilla's.
    for name in (_CUSTOM_STORE_NAME, "Mozilla", *errors):
        if name in errors:
            return False, bound_text(f"{name}: {errors[name]}", MAX_REASON_CHARS)
    return False, "no trust store available"
