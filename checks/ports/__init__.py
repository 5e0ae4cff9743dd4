"""The `ports` check: which TCP ports of a host accept connections, seen by an nmap connect scan.

The set scanned always covers every port a rule or the inventory names (see `ports_to_scan`),
so a rule is never judged on a port nobody looked at. Service detection (`-sV`) is optional
and best-effort: it runs as a second nmap pass over the ports the connect scan found open, and
when it fails or runs out of time the open ports stand as found, named from nmap's port table.
"""

import time
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from pydantic import BaseModel

from attt.checks.ports import _nmap
from attt.checks.ports.controls import CONTROLS, ports_to_scan
from attt.checks.ports.models import (
    ALL_TCP_PORTS,
    MAX_PRODUCT_CHARS,
    MAX_SERVICE_CHARS,
    MAX_VERSION_CHARS,
    OpenPort,
    PortsData,
    PortsSettings,
)
from attt.scanner.models.observation import Observation, bound_text
from attt.scanner.models.target import Target
from attt.scanner.plugin import API_VERSION, Control, ProbeContext

__all__ = ["PortsCheck", "PortsData", "PortsSettings"]


class PortsCheck:
    """One observation per host: its open TCP ports among those scanned."""

    name: ClassVar[str] = "ports"
    api_version: ClassVar[int] = API_VERSION
    data_model: ClassVar[type[BaseModel]] = PortsData
    settings_model: ClassVar[type[BaseModel]] = PortsSettings
    after: ClassVar[tuple[str, ...]] = ()
    controls: ClassVar[Mapping[str, Control[Any, Any]]] = CONTROLS

    def __init__(self, nmap_binary: str = "nmap") -> None:
        self._binary = nmap_binary

    def probe(self, target: Target, ctx: ProbeContext[PortsSettings]) -> Iterable[Observation]:
        settings = ctx.settings
        ports = ports_to_scan(target, settings, ctx.rules)
        deadline = time.monotonic() + ctx.timeout
        # With -sV to follow, the connect scan gets part of the budget and -sV the rest.
        share = 0.4 if settings.service_detection else 1.0
        try:
            command = _nmap.build_command(
                target.ip, ports, timeout=ctx.timeout * share, service_detection=False
            )
            data = connect_scan_data(_nmap.run(command, self._binary), ports)
        except ValueError as exc:
            return [Observation.failed(self.name, target, f"cannot build the nmap scan: {exc}")]
        except (_nmap.NmapMissingError, _nmap.NmapFailedError) as exc:
            return [Observation.failed(self.name, target, str(exc))]
        if not data.open:
            # Every port refused: nothing of the registered system is in service here, and a
            # report must not score that as a compliant host.
            return [Observation.failed(self.name, target, nothing_answered(data.scanned_count))]
        if settings.service_detection and data.open:
            data = self._detect_services(target, data, deadline - time.monotonic(), ctx)
        return [Observation.ok(self.name, target, data)]

    def _detect_services(
        self, target: Target, data: PortsData, budget: float, ctx: ProbeContext[PortsSettings]
    ) -> PortsData:
        """Name the services on the open ports; on failure keep the connect-scan result."""
        if budget < 1.0:
            return data.model_copy(update={"service_detection_error": "no time left for service detection"})
        try:
            command = _nmap.build_command(
                target.ip, data.open_ports(), timeout=budget, service_detection=True
            )
            detected = {p.port: p for p in _nmap.run(command, self._binary).listed}
        except (_nmap.NmapMissingError, _nmap.NmapFailedError) as exc:
            ctx.logger.warning("service detection on %s failed: %s", target.ip, exc)
            return data.model_copy(update={"service_detection_error": str(exc)})
        named = tuple(_open_port(detected[p.port]) if p.port in detected else p for p in data.open)
        return data.model_copy(update={"open": named, "service_detection": True})


def nothing_answered(scanned: int) -> str:
    return f"nothing answered: no port of {scanned} scanned is open; is the host still in service?"


def connect_scan_data(scan: _nmap.ScanResult, ports: tuple[int, ...]) -> PortsData:
    """The observation of a completed connect scan; raises when it proves nothing."""
    if scan.count("open") + scan.count("closed") == 0:
        # Not one port answered: a host that is down or unreachable looks exactly like this,
        # so "no open port" would be a guess.
        raise _nmap.NmapFailedError(
            f"no port of {len(ports)} answered (all filtered): host down or unreachable;"
            " is the host still in service?"
        )
    full = len(ports) == ALL_TCP_PORTS
    return PortsData(
        scanned=() if full else ports,
        full_range=full,
        open=tuple(_open_port(p) for p in scan.open_ports),
        nmap_version=scan.nmap_version,
    )


def _open_port(state: _nmap.PortState) -> OpenPort:
    return OpenPort(
        port=state.port,
        service=_clean(state.service, MAX_SERVICE_CHARS),
        product=_clean(state.product, MAX_PRODUCT_CHARS),
        version=_clean(state.version, MAX_VERSION_CHARS),
    )


def _clean(text: str, limit: int) -> str:
    """Hostile text from the target: printable characters only, bounded."""
    return bound_text("".join(c if c.isprintable() else "?" for c in text), limit)
