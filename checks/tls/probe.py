"""Which endpoints of a target speak TLS, and the probe that scans them all at once."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from attt.checks.ports.models import PortsData, ports_seen

# A module import, not names: `_sslyze` imports this package's models, so either may load first.
from attt.checks.tls.models import StartTls, TlsSettings
from attt.scanner.models.observation import Observation
from attt.scanner.models.target import Target
from attt.scanner.plugin import ProbeContext

if TYPE_CHECKING:  # sslyze loads only when a TLS probe runs: a ports-only scan starts faster
    from attt.checks.tls import _sslyze

CHECK = "tls"
IMPLICIT_TLS_PORTS = frozenset(
    {443, 465, 636, 853, 989, 990, 992, 993, 994, 995, 3269, 4443, 5061, 5986, 8443, 9443}
)
"""Ports where TLS starts with the connection (HTTPS, SMTPS, LDAPS, FTPS, IMAPS, POP3S, ...)."""
NOT_HTTP_TLS_PORTS = frozenset({465, 636, 853, 989, 990, 992, 993, 994, 995, 3269, 5061})
"""Implicit-TLS ports of well-known services that are not HTTP (SMTPS, LDAPS, DNS over TLS,
FTPS, telnets, IMAPS, IRCS, POP3S, LDAPS global catalogue, SIPS): no HTTP request is sent there.
Every other TLS endpoint is asked for HTTP, and a failed answer is a failed step, not "no web"."""
STARTTLS_PORTS: Mapping[int, StartTls] = {
    21: "ftp",
    25: "smtp",
    587: "smtp",
    110: "pop3",
    143: "imap",
    389: "ldap",
}
"""FTP, mail and directory ports scanned through AUTH TLS / STARTTLS (Circular 39/2017 items
4.3-4.5): a service that refuses the upgrade is recorded as plain, not as a failed scan."""
_STARTTLS_KINDS: Mapping[str, StartTls] = {
    "ftp": "ftp",
    "smtp": "smtp",
    "imap": "imap",
    "pop3": "pop3",
    "ldap": "ldap",
}
_TLS_SERVICE_NAMES = frozenset(
    {"https", "https-alt", "imaps", "pop3s", "smtps", "submissions", "ldaps", "ftps"}
)
_DEADLINE_MARGIN = 0.9
"""Part of the probe budget given to one endpoint's scan; the rest turns results into observations."""
_MIN_SCAN_SECONDS = 60.0
"""An endpoint's scan is a few hundred handshakes: with a short --timeout (which bounds each
wait on the network, see `ScanOptions.silence`) a healthy server still gets this long."""


def tls_endpoints(
    target: Target, settings: TlsSettings, prior: Iterable[Observation]
) -> dict[int, StartTls | None]:
    """Port → STARTTLS protocol (None for implicit TLS), from the inventory's declared
    services, the ports check's open ports and the settings; settings win, then the inventory."""
    found: dict[int, StartTls | None] = {}
    ports = ports_seen(prior)
    for port, name in _open_ports(ports):
        if name in _STARTTLS_KINDS:
            found[port] = None if port in IMPLICIT_TLS_PORTS else _STARTTLS_KINDS[name]
        elif _speaks_tls(name) or port in IMPLICIT_TLS_PORTS or port in settings.extra_tls_ports:
            found[port] = None
        elif port in STARTTLS_PORTS:
            found[port] = STARTTLS_PORTS[port]
    for service in target.host.services:
        if service.kind == "tls":
            found[service.port] = None
        elif service.kind in _STARTTLS_KINDS:
            found[service.port] = (
                None if service.port in IMPLICIT_TLS_PORTS else _STARTTLS_KINDS[service.kind]
            )
    for port, protocol in settings.starttls.items():
        if port in found or _is_open(ports, port):
            found[port] = protocol
    return dict(sorted(found.items()))


def _speaks_tls(service: str) -> bool:
    return "ssl" in service or "tls" in service or service in _TLS_SERVICE_NAMES


def _open_ports(ports: PortsData | None) -> list[tuple[int, str]]:
    if ports is None:
        return []
    return [(p.port, p.service.lower()) for p in ports.open if p.protocol == "tcp"]


def _is_open(ports: PortsData | None, port: int) -> bool:
    return ports is not None and port in ports.open_ports()


def probe_target(target: Target, ctx: ProbeContext[TlsSettings], settings: TlsSettings) -> list[Observation]:
    endpoints = tls_endpoints(target, settings, ctx.prior)
    if not endpoints:
        ports = [o for o in ctx.prior if o.check == "ports"]
        if any(o.status == "error" for o in ports) or not ports:
            # Without the ports check's view and with nothing declared, HTTPS is the one
            # TLS service worth assuming; an error there is better than a silent "no TLS".
            endpoints = {443: None}
        else:
            return []
    from attt.checks.tls import _sslyze

    sni = target.server_name
    wanted = [
        _sslyze.Endpoint(
            ip=target.ip,
            port=port,
            sni=sni,
            starttls=starttls,
            http=port not in NOT_HTTP_TLS_PORTS,
        )
        for port, starttls in endpoints.items()
    ]
    options = _sslyze.ScanOptions(
        connect_timeout=ctx.connect_timeout,
        deadline=max(_MIN_SCAN_SECONDS, ctx.timeout * _DEADLINE_MARGIN - ctx.connect_timeout),
        silence=ctx.timeout,
        trust_anchors=tuple(Path(p) for p in settings.trust_anchors),
        max_connections_per_server=settings.max_connections_per_server,
        exhaustive=settings.exhaustive_suites,
    )
    outcomes = _sslyze.scan(wanted, options, ctx.keepalive)
    return [_observation(target, endpoint, outcomes[endpoint]) for endpoint in wanted]


def _observation(target: Target, endpoint: _sslyze.Endpoint, outcome: _sslyze.ScanOutcome) -> Observation:
    from attt.checks.tls import _sslyze

    if isinstance(outcome, _sslyze.ScanFailure):
        where = f" (STARTTLS {endpoint.starttls})" if endpoint.starttls else ""
        return Observation.failed(CHECK, target, f"{outcome.reason}{where}", port=endpoint.port)
    return Observation.ok(CHECK, target, outcome, port=endpoint.port)
