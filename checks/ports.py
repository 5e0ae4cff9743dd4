"""The `ports` check: which TCP ports of a host accept connections, seen by an nmap connect scan.

The set scanned always covers every port a rule or the inventory names (see `ports_to_scan`),
so a rule is never judged on a port nobody looked at. Service detection (`-sV`) is optional
and best-effort: it runs as a second nmap pass over the ports the connect scan found open, and
when it fails or runs out of time the open ports stand as found, named from nmap's port table.
"""

import time
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, Field

from checks import _nmap
from checks.base import API_VERSION, Control, NoParams, Params, ProbeContext, Verdict, controls_of
from scanner.models.base import Frozen
from scanner.models.observation import Observation, bound_text
from scanner.models.policy import ResolvedRule
from scanner.models.target import Port, Target

MAX_SERVICE_CHARS = 64
MAX_PRODUCT_CHARS = 200
MAX_VERSION_CHARS = 120

COMMON_PORTS: tuple[int, ...] = tuple(
    sorted(
        {
            # file transfer, remote shells and terminals
            20, 21, 22, 23, 26, 107, 512, 513, 514, 873, 989, 990, 2222, 2323,
            # mail
            25, 110, 143, 465, 587, 993, 995,
            # name and directory services
            53, 88, 389, 464, 636, 3268, 3269,
            # Windows and Unix file sharing, RPC
            111, 135, 139, 445, 548, 2049, 3260,
            # web, proxies and application servers
            80, 81, 443, 591, 1080, 3000, 3128, 4443, 4848, 5000, 7001, 7002, 8000, 8008,
            8009, 8080, 8081, 8088, 8443, 8888, 9000, 9090, 9443,
            # remote desktop and management consoles
            3389, 5900, 5901, 5902, 5903, 5985, 5986, 6000, 8291, 8728, 10000, 2082, 2083,
            2086, 2087, 7547,
            # databases
            1433, 1521, 3306, 5432, 5984, 6984, 7474, 8086, 9042, 27017, 27018, 50000,
            # caches, search and dashboards
            6379, 11211, 9200, 9300, 5601,
            # message brokers and coordination
            1883, 8883, 5672, 15672, 61616, 8161, 9092, 2181, 4369,
            # container, cluster and monitoring APIs
            2375, 2376, 2379, 2380, 6443, 10250, 9100,
            # VPN and telephony control planes
            1723, 5060, 5061,
        }
    )
)  # fmt: skip
"""TCP ports of common services, weighted toward those a public system must not expose."""


class PortsSettings(Frozen):
    ports: tuple[Port, ...] = COMMON_PORTS
    """Scanned on every host, besides the ports rules and the inventory name."""
    extra_ports: tuple[Port, ...] = ()
    """Added to `ports`, so a policy can extend the default list without repeating it."""
    service_detection: bool = False
    """Run nmap -sV on the open ports to name the service and product; costs seconds per port,
    a minute or more on a port that accepts and never answers."""


class OpenPort(Frozen):
    port: Port
    protocol: Literal["tcp"] = "tcp"
    service: Annotated[str, Field(max_length=MAX_SERVICE_CHARS)] = ""
    """nmap's name for the service: probed with service detection, else from its port table."""
    product: Annotated[str, Field(max_length=MAX_PRODUCT_CHARS)] = ""
    version: Annotated[str, Field(max_length=MAX_VERSION_CHARS)] = ""


class PortsData(Frozen):
    scanned: tuple[Port, ...]
    """Every port probed, sorted."""
    open: tuple[OpenPort, ...]
    scan_type: Literal["connect"] = "connect"
    service_detection: bool = False
    """True when service, product and version come from nmap -sV probes."""
    service_detection_error: str | None = None
    """Why service detection was asked for and did not complete."""
    nmap_version: str

    def open_ports(self) -> frozenset[int]:
        return frozenset(p.port for p in self.open)


class ForbiddenParams(Params):
    ports: tuple[Port, ...] = Field(min_length=1)
    services: tuple[str, ...] = ()
    """nmap service names forbidden on any port (e.g. `telnet` on 2323); reliable only with
    service detection, since without it the name comes from the port number."""


class OnlyAllowedParams(Params):
    ports: tuple[Port, ...] | None = None
    """Allowed ports; when absent, the system's registered `allowed_ports`."""


def ports_to_scan(target: Target, settings: PortsSettings, rules: Iterable[ResolvedRule]) -> tuple[int, ...]:
    """Settings, the inventory's declared and allowed ports, and every port a rule names."""
    ports = {*settings.ports, *settings.extra_ports, *target.declared_ports()}
    ports.update(target.system.allowed_ports or ())
    for rule in rules:
        params = rule.params
        if isinstance(params, ForbiddenParams | OnlyAllowedParams) and params.ports:
            ports.update(params.ports)
    return tuple(sorted(ports))


def _unscanned(wanted: Iterable[int], data: PortsData, what: str, what_vi: str) -> Verdict | None:
    """A rule about ports nobody scanned cannot be judged: never a pass."""
    missing = sorted(set(wanted) - set(data.scanned))
    if not missing:
        return None
    listed = _list(missing)
    return Verdict.cannot_judge(
        f"{what} not scanned: {listed}",
        observed=missing,
        expected="scanned",
        vi=f"{what_vi} chưa được quét: {listed}",
    )


def _judge_forbidden(data: PortsData, params: ForbiddenParams, target: Target) -> Verdict:
    if (unscanned := _unscanned(params.ports, data, "ports", "cổng")) is not None:
        return unscanned
    services = set(params.services)
    found = [p for p in data.open if p.port in params.ports or p.service in services]
    if found:
        observed = [{"port": p.port, "service": p.service} for p in found]
        listed = _list(p.port for p in found)
        return Verdict.failed(
            f"forbidden ports open: {listed}",
            observed=observed,
            expected="closed",
            vi=f"cổng bị cấm đang mở: {listed}",
        )
    listed = _list(params.ports)
    return Verdict.passed(f"closed: {listed}", observed=[], expected="closed", vi=f"cổng đang đóng: {listed}")


def _judge_only_allowed(data: PortsData, params: OnlyAllowedParams, target: Target) -> Verdict:
    allowed = params.ports if params.ports is not None else target.system.allowed_ports
    if allowed is None:
        return Verdict.not_applicable(
            "no allowed_ports registered for the system",
            vi="hệ thống chưa đăng ký danh sách cổng được phép (allowed_ports)",
        )
    extra = sorted(data.open_ports() - set(allowed))
    expected = sorted(set(allowed))
    if extra:
        listed = _list(extra)
        return Verdict.failed(
            f"open ports not allowed: {listed}",
            observed=extra,
            expected=expected,
            vi=f"cổng đang mở nhưng không được phép: {listed}",
        )
    scanned = len(data.scanned)
    return Verdict.passed(
        f"all open ports allowed among {scanned} scanned",
        observed=sorted(data.open_ports()),
        expected=expected,
        vi=f"mọi cổng đang mở đều được phép (trong số {scanned} cổng đã quét)",
    )


def _judge_declared_reachable(data: PortsData, params: NoParams, target: Target) -> Verdict:
    declared = sorted(set(target.declared_ports()))
    if not declared:
        return Verdict.not_applicable(
            "no services declared for the host", vi="máy chủ chưa được khai báo dịch vụ nào"
        )
    if (unscanned := _unscanned(declared, data, "declared ports", "cổng đã khai báo")) is not None:
        return unscanned
    unreachable = sorted(set(declared) - data.open_ports())
    if unreachable:
        listed = _list(unreachable)
        return Verdict.failed(
            f"declared ports not reachable: {listed}",
            observed=unreachable,
            expected="open",
            vi=f"cổng đã khai báo không kết nối được: {listed}",
        )
    listed = _list(declared)
    return Verdict.passed(
        f"declared ports open: {listed}",
        observed=declared,
        expected="open",
        vi=f"cổng đã khai báo đang mở: {listed}",
    )


def _list(ports: Iterable[int]) -> str:
    return ", ".join(str(p) for p in ports)


class PortsCheck:
    """One observation per host: its open TCP ports among those scanned."""

    name: ClassVar[str] = "ports"
    api_version: ClassVar[int] = API_VERSION
    data_model: ClassVar[type[BaseModel]] = PortsData
    settings_model: ClassVar[type[BaseModel]] = PortsSettings
    after: ClassVar[tuple[str, ...]] = ()
    controls: ClassVar[Mapping[str, Control[Any, Any]]] = controls_of(
        Control(
            id="ports.forbidden",
            summary="None of the listed ports (or services) is open",
            params_model=ForbiddenParams,
            judge=_judge_forbidden,
        ),
        Control(
            id="ports.only_allowed",
            summary="Every open port is in the allowed list (or the system's allowed_ports)",
            params_model=OnlyAllowedParams,
            judge=_judge_only_allowed,
        ),
        Control(
            id="ports.declared_reachable",
            summary="Every port the inventory declares for the host is open",
            params_model=NoParams,
            judge=_judge_declared_reachable,
        ),
    )

    def __init__(self, nmap_binary: str = "nmap") -> None:
        self._binary = nmap_binary

    def probe(self, target: Target, ctx: ProbeContext) -> Iterable[Observation]:
        settings = ctx.settings if isinstance(ctx.settings, PortsSettings) else PortsSettings()
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
        if settings.service_detection and data.open:
            data = self._detect_services(target, data, deadline - time.monotonic(), ctx)
        return [Observation.ok(self.name, target, data)]

    def _detect_services(
        self, target: Target, data: PortsData, budget: float, ctx: ProbeContext
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


def connect_scan_data(scan: _nmap.ScanResult, ports: tuple[int, ...]) -> PortsData:
    """The observation of a completed connect scan; raises when it proves nothing."""
    if scan.count("open") + scan.count("closed") == 0:
        # Not one port answered: a host that is down or unreachable looks exactly like this,
        # so "no open port" would be a guess.
        raise _nmap.NmapFailedError(
            f"no port of {len(ports)} answered (all filtered): host down or unreachable"
        )
    return PortsData(
        scanned=ports,
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
