"""The `ports` check: which TCP ports of a host accept connections, seen by an nmap connect scan.

The set scanned always covers every port a rule or the inventory names (see `ports_to_scan`),
so a rule is never judged on a port nobody looked at. Service detection (`-sV`) is optional
and best-effort: it runs as a second nmap pass over the ports the connect scan found open, and
when it fails or runs out of time the open ports stand as found, named from nmap's port table.

The engine hands the check many hosts at once (`probe_batch`): one nmap run scans them all, at
most `--concurrency` at a time (nmap host groups), and its result is split per host, each host
keeping only the ports asked for it.
"""

import logging
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel

from attt.checks.ports import _nmap
from attt.checks.ports.controls import CONTROLS, ports_named, ports_to_scan
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

_LOG = logging.getLogger("attt.checks")


class PortsCheck:
    """One observation per host: its open TCP ports among those scanned."""

    name: ClassVar[str] = "ports"
    api_version: ClassVar[int] = API_VERSION
    data_model: ClassVar[type[BaseModel]] = PortsData
    settings_model: ClassVar[type[BaseModel]] = PortsSettings
    after: ClassVar[tuple[str, ...]] = ()
    controls: ClassVar[Mapping[str, Control[Any, Any]]] = CONTROLS

    batch_size: ClassVar[int] = 1024
    """Hosts per nmap run (the union of their ports), host group after host group."""
    streams: ClassVar[bool] = True
    """Each host's observation is handed over as soon as nmap has written it."""

    def __init__(self, nmap_binary: str = "nmap") -> None:
        self._binary = nmap_binary

    def probe(self, target: Target, ctx: ProbeContext[PortsSettings]) -> Iterable[Observation]:
        return self.probe_batch([(target, ctx)])

    max_batched_ports: ClassVar[int] = 1024
    """A host with more ports to scan than this gets its own nmap run."""

    def batchable(self, target: Target, ctx: ProbeContext[PortsSettings]) -> bool:
        """A batch scans the union of its hosts' ports on each of them, within each host's budget:
        one host's long list (every TCP port, or thousands declared as services) would be every
        other host's work, and they would run out of time. Such a host is scanned alone."""
        if ports_named(target, ctx.settings, ctx.rules) <= self.max_batched_ports:
            return True  # at most that many without working the set out (a province's hosts, each)
        return len(ports_to_scan(target, ctx.settings, ctx.rules)) <= self.max_batched_ports

    def probe_batch(
        self, jobs: Sequence[tuple[Target, ProbeContext[PortsSettings]]]
    ) -> Iterator[Observation]:
        """Scan many hosts with one nmap run per address family; one observation per target,
        each as soon as nmap has finished its host (`streams`)."""
        families: dict[int, list[_Job]] = {}
        # Hosts with the same settings, rules and registered ports scan the same list: a province's
        # thousand hosts have a few such lists, and working one out per host delayed nmap by 0.03 s.
        # Keyed by identity: the contexts (their settings and rules) live as long as `jobs`.
        lists: dict[tuple[object, ...], tuple[int, ...]] = {}
        for target, ctx in jobs:
            try:
                address = _nmap.scannable_ip(target.ip)
            except ValueError as exc:
                yield Observation.failed(self.name, target, f"cannot build the nmap scan: {exc}")
                continue
            same = (
                id(ctx.settings),
                target.declared_ports(),
                target.system.allowed_ports,
                *map(id, ctx.rules),
            )
            ports = lists.get(same)
            if ports is None:
                ports = lists[same] = ports_to_scan(target, ctx.settings, ctx.rules)
            if not ports:
                yield Observation.failed(self.name, target, _NO_PORT_TO_SCAN)
                continue
            families.setdefault(address.version, []).append(_Job(target, ctx.settings, ports, str(address)))
        # Each host group (at most --concurrency hosts probed at once) gets the budget.
        budget = min((ctx.timeout for _, ctx in jobs), default=0.0)
        at_once = max(1, min((ctx.concurrency for _, ctx in jobs), default=1))
        for same_family in families.values():
            yield from self._scan(same_family, budget, at_once)

    def _scan(self, jobs: list["_Job"], budget: float, at_once: int) -> Iterator[Observation]:
        deadline = time.monotonic() + budget * -(-len(jobs) // at_once)
        # With -sV to follow, the connect scan gets part of the budget and -sV the rest.
        share = 0.4 if any(job.settings.service_detection for job in jobs) else 1.0
        by_ip: dict[str, list[_Job]] = {}
        for job in jobs:
            by_ip.setdefault(job.address, []).append(job)
        ports = {p for job in jobs for p in job.ports}
        detect: list[tuple[_Job, PortsData]] = []
        try:
            command = self._command(jobs, ports, budget * share, at_once, detect=False)
            for ip, result in _nmap.stream(command, self._binary):
                for job in by_ip[ip]:
                    try:
                        data = connect_scan_data(job.own(result), job.ports)
                    except _nmap.NmapFailedError as exc:
                        yield Observation.failed(self.name, job.target, str(exc))
                        continue
                    if not data.open:
                        # Every port refused: nothing of the registered system is in service here,
                        # and a report must not score that as a compliant host.
                        yield Observation.failed(self.name, job.target, nothing_answered(data.scanned_count))
                    elif (answered_for := _answers_for_everything(data, job.target)) is not None:
                        yield Observation.failed(self.name, job.target, answered_for)
                    elif job.settings.service_detection:
                        detect.append((job, data))
                    else:
                        yield Observation.ok(self.name, job.target, data)
        except (_nmap.NmapMissingError, _nmap.NmapFailedError) as exc:
            # Raised before nmap said anything: every host's scan proves nothing.
            yield from (Observation.failed(self.name, job.target, str(exc)) for job in jobs)
            return
        named = self._detect_services(detect, deadline - time.monotonic(), at_once) if detect else {}
        yield from (
            Observation.ok(self.name, job.target, named.get(job.target.key, data)) for job, data in detect
        )

    def _command(
        self, jobs: Sequence["_Job"], ports: Iterable[int], timeout: float, at_once: int, *, detect: bool
    ) -> _nmap.NmapCommand:
        """One nmap run over `jobs`' hosts, `at_once` at a time, `timeout` seconds per group."""
        try:
            return _nmap.build_command(
                [job.target.ip for job in jobs],
                ports,
                timeout=timeout,
                service_detection=detect,
                at_once=at_once,
            )
        except ValueError as exc:
            raise _nmap.NmapFailedError(f"cannot build the nmap scan: {exc}") from None

    def _detect_services(
        self, found: list[tuple["_Job", PortsData]], budget: float, at_once: int
    ) -> dict[tuple[str, str], PortsData]:
        """Name the services on the open ports within `budget` seconds in all; where that fails
        keep the connect-scan result."""
        budget /= -(-len(found) // at_once)  # per host group
        if budget < 1.0:
            why = "no time left for service detection"
            return {
                job.target.key: data.model_copy(update={"service_detection_error": why})
                for job, data in found
            }
        try:
            command = self._command(
                [job for job, _ in found],
                {p for _, d in found for p in d.open_ports()},
                budget,
                at_once,
                detect=True,
            )
            results = _nmap.run(command, self._binary)[1]
        except (_nmap.NmapMissingError, _nmap.NmapFailedError) as exc:
            failed = _nmap.NmapFailedError(str(exc))
            results = {job.address: failed for job, _ in found}
        named: dict[tuple[str, str], PortsData] = {}
        for job, data in found:
            result = results[job.address]
            if isinstance(result, Exception):
                _LOG.warning("service detection on %s failed: %s", job.target.ip, result)
                named[job.target.key] = data.model_copy(update={"service_detection_error": str(result)})
                continue
            detected = {p.port: p for p in result.ports}
            gone = [p.port for p in data.open if p.port in detected and detected[p.port].state != "open"]
            if gone:
                # nmap names a port it could not probe from its port table: no service was seen.
                why = f"no longer open when service detection probed it: port {_nmap.port_spec(gone)}"
                named[job.target.key] = data.model_copy(update={"service_detection_error": why})
                continue
            ports = tuple(_open_port(detected[p.port]) if p.port in detected else p for p in data.open)
            update: dict[str, object] = {"open": ports, "service_detection": True}
            unidentified, why = _unidentified(data, detected)
            if unidentified:
                update |= {"service_detection_error": why, "unidentified": unidentified}
            named[job.target.key] = data.model_copy(update=update)
        return named


_TCPWRAPPED = "tcpwrapped"
"""nmap's name for a port that closed the connection before any probe got an answer (`ssl/`
in front when it did so inside TLS)."""


def _unidentified(data: PortsData, detected: Mapping[int, _nmap.PortState]) -> tuple[tuple[int, ...], str]:
    """The open ports without an identified service (none: every one has), and why.

    Two names say "unknown" although nmap writes them like any other. A name no probe matched is
    nmap's guess from the port number (a Telnet server on a port of its own would be named after
    the number). `tcpwrapped` is marked "probed", but it means the service hung up before it said
    anything: a TCP wrapper refusing the scanner, or any service that does, Telnet included. Either
    way the step that names services is incomplete, so a rule that needs names to decide
    (`ports.forbidden` with `services`) cannot pass on a name nobody saw: it is `error` unless
    what was seen fails it. The port itself accepted the connection: a rule on port numbers
    alone judges it open."""
    guessed = [p.port for p in data.open if p.port in detected and not detected[p.port].probed]
    wrapped = [
        p.port
        for p in data.open
        if p.port in detected
        and detected[p.port].probed
        and detected[p.port].service.removeprefix("ssl/") == _TCPWRAPPED
    ]
    why = []
    if guessed:
        why.append(f"no service identified on port {_nmap.port_spec(guessed)} (nmap guessed from the number)")
    if wrapped:
        why.append(
            f"no service identified on port {_nmap.port_spec(wrapped)}"
            " (tcpwrapped: it closed the connection before answering a probe)"
        )
    return tuple(sorted({*guessed, *wrapped})), "; ".join(why)


@dataclass(frozen=True)
class _Job:
    target: Target
    settings: PortsSettings
    ports: tuple[int, ...]
    """This host's ports; the nmap run may cover more (the union over its batch)."""
    address: str
    """The target's IP as nmap is given it and names it back (`0:0::1` is `::1`)."""

    def own(self, result: _nmap.HostResult) -> _nmap.ScanResult:
        """This host's ports out of a run over the union; raises when its part failed."""
        if isinstance(result, _nmap.NmapFailedError):
            raise result
        if len(result.ports) == len(self.ports):
            return result  # the run's ports (one state each) are this host's: most batches' case
        mine = set(self.ports)
        return _nmap.ScanResult(result.nmap_version, tuple(p for p in result.ports if p.port in mine))


_NO_PORT_TO_SCAN = (
    "no port to scan: the policy's port list is empty, the inventory declares no service for the host"
    " and allows no port for its system, and no rule names one"
)


def nothing_answered(scanned: int) -> str:
    return f"nothing answered: no port of {scanned} scanned is open; is the host still in service?"


_IMPLAUSIBLY_MANY = 20
"""Unregistered ports that, all open with every other probed port, no real host serves: a real
one refuses somewhere. Fewer prove nothing (a small scan list can be exactly a host's services)."""


def _answers_for_everything(data: PortsData, target: Target) -> str | None:
    """Why the open ports are not the host's own, or None when they may be.

    A SYN proxy (or a tarpit) in front of a host completes the handshake of a connect scan on
    every port, whether anything listens behind it or not. Each of those ports would then be an
    open forbidden port, a `fail` resting on nothing the host does: when every probed port
    accepted and many of them are registered for nothing, the observation is an error."""
    if len(data.open) != data.scanned_count:
        return None
    registered = {*target.declared_ports(), *(target.system.allowed_ports or ())}
    unregistered = len(data.open_ports() - registered)
    if unregistered < _IMPLAUSIBLY_MANY:
        return None
    return (
        f"every probed port accepted ({len(data.open)} of {data.scanned_count}, {unregistered} of them"
        " registered for no service): a SYN proxy or tarpit answers for the host, so which ports really"
        " listen was not observed"
    )


def connect_scan_data(scan: _nmap.ScanResult, ports: tuple[int, ...]) -> PortsData:
    """The observation of a completed connect scan; raises when it proves nothing."""
    by_state: dict[str, list[_nmap.PortState]] = {}
    for port in scan.ports:
        by_state.setdefault(port.state, []).append(port)
    if "open" not in by_state and "closed" not in by_state:
        # Not one port answered: a host that is down or unreachable looks exactly like this,
        # so "no open port" would be a guess.
        raise _nmap.NmapFailedError(
            f"no port of {len(ports)} answered (all filtered): host down or unreachable;"
            " is the host still in service?"
        )
    # A connect scan knows three answers; any other word (or none) says nothing about the port,
    # and read as "not open" it would pass a forbidden-port rule.
    odd = next((found[0] for state, found in by_state.items() if state not in _CONNECT_STATES), None)
    if odd is not None:
        raise _nmap.NmapFailedError(
            bound_text(
                f"nmap reported port {odd.port} as {odd.state!r}, not open, closed or filtered",
                _nmap.MAX_ERROR_CHARS,
            )
        )
    full = len(ports) == ALL_TCP_PORTS
    return PortsData(
        scanned=() if full else ports,
        full_range=full,
        open=tuple(_open_port(p) for p in by_state.get("open", ())),
        filtered=_nmap.port_spec(p.port for p in by_state.get("filtered", ())),
        nmap_version=scan.nmap_version,
    )


_CONNECT_STATES = frozenset({"open", "closed", "filtered"})
"""open: the handshake completed; closed: refused; filtered: no answer at all."""


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
