"""What the ports check observes, and the settings a policy may give it."""

import bisect
import functools
from collections.abc import Iterable
from typing import Annotated, ClassVar, Literal

from pydantic import Field

from attt.checks.ports._nmap import port_runs
from attt.scanner.models.base import Frozen
from attt.scanner.models.observation import Observation
from attt.scanner.models.target import Port
from attt.scanner.plugin import Settings

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


class PortsSettings(Settings):
    # The observation records the ports scanned and whether all were: the controls judge
    # coverage from it. Service detection is not recorded as asked, only as done.
    neutral: ClassVar[frozenset[str]] = frozenset({"ports", "extra_ports", "full_range"})

    ports: tuple[Port, ...] = COMMON_PORTS
    """Scanned on every host, besides the ports rules and the inventory name."""
    extra_ports: tuple[Port, ...] = ()
    """Added to `ports`, so a policy can extend the default list without repeating it."""
    service_detection: bool = False
    """Run nmap -sV on the open ports to name the service and product; costs seconds per port,
    a minute or more on a port that accepts and never answers."""
    full_range: bool = False
    """Scan every TCP port, 1-65535, instead of `ports`: what a rule claiming "no other port is
    open" needs to pass. A connect scan of a host that answers takes about a second (loopback);
    a firewall that drops packets silently can make it minutes (see docs/inventory.md)."""


class OpenPort(Frozen):
    port: Port
    protocol: Literal["tcp"] = "tcp"
    service: Annotated[str, Field(max_length=MAX_SERVICE_CHARS)] = ""
    """nmap's name for the service: probed with service detection, else from its port table."""
    product: Annotated[str, Field(max_length=MAX_PRODUCT_CHARS)] = ""
    version: Annotated[str, Field(max_length=MAX_VERSION_CHARS)] = ""


ALL_TCP_PORTS = 65535
SERVICE_DETECTION_STEP = "service_detection"


class PortsData(Frozen):
    scanned: tuple[Port, ...]
    """Every port probed, sorted; empty when `full_range` says every port was."""
    full_range: bool = False
    """Every TCP port 1-65535 was scanned (not listed one by one in `scanned`)."""
    open: tuple[OpenPort, ...]
    filtered: Annotated[str, Field(pattern=r"^(\d+(-\d+)?(,\d+(-\d+)?)*)?$")] | None = None
    """The scanned ports that gave no answer at all (nmap's `filtered`), as a port spec
    (`23,5900-5903`; ranges keep a firewalled full scan small); every other scanned port that is
    not open refused the connection. None in runs recorded before the difference was kept: their
    ports that are not open may have been either."""
    scan_type: Literal["connect"] = "connect"
    service_detection: bool = False
    """True when service, product and version come from nmap -sV probes."""
    service_detection_error: str | None = None
    """Why service detection was asked for and did not complete, or named a port only by nmap's
    guess from its number (no probe matched): rules that judge service names are then `error`
    wherever a port without a name could change the verdict."""
    unidentified: tuple[Port, ...] = ()
    """Open ports service detection probed without naming the service (`tcpwrapped`, or only
    nmap's guess from the number), when it probed the others; see `unnamed`."""
    nmap_version: str

    def open_ports(self) -> frozenset[int]:
        return frozenset(p.port for p in self.open)

    def unnamed(self) -> list[int]:
        """Open ports whose service no probe named although service detection was asked for:
        those it could not identify, or every open port when the step failed as a whole (or in
        runs recorded before `unidentified` was kept). [] when every service was named, or when
        detection was not asked for (names then come from the port table, as the rule says)."""
        if self.service_detection_error is None:
            return []
        if self.service_detection and self.unidentified:
            return sorted(self.unidentified)
        return sorted(self.open_ports())

    def unanswered(self, ports: Iterable[int]) -> list[int]:
        """Those of `ports` that gave no answer (filtered), in order; [] when not recorded."""
        if not self.filtered:
            return []
        runs = _runs(self.filtered)
        lows = [low for low, _ in runs]
        silent = []
        for port in sorted(set(ports)):
            at = bisect.bisect_right(lows, port) - 1
            if at >= 0 and port <= runs[at][1]:
                silent.append(port)
        return silent

    @property
    def unanswered_count(self) -> int:
        return sum(high - low + 1 for low, high in _runs(self.filtered)) if self.filtered else 0

    def unscanned(self, ports: Iterable[int]) -> list[int]:
        """Those of `ports` nobody scanned, in order (one set operation: `scanned` is a tuple of
        a hundred ports and a province judges it thousands of times)."""
        return [] if self.full_range else sorted(set(ports).difference(self.scanned))

    @property
    def scanned_count(self) -> int:
        return ALL_TCP_PORTS if self.full_range else len(self.scanned)

    @property
    def incomplete(self) -> tuple[str, ...]:
        """Probe steps that did not complete (see `attt.plugin.incomplete_steps`)."""
        return (SERVICE_DETECTION_STEP,) if self.service_detection_error else ()

    @property
    def step_errors(self) -> dict[str, str]:
        return {SERVICE_DETECTION_STEP: self.service_detection_error} if self.service_detection_error else {}


@functools.lru_cache(maxsize=256)
def _runs(spec: str) -> tuple[tuple[int, int], ...]:
    """A `filtered` spec's runs, in order (written sorted): a firewalled host's names tens of
    thousands of ports in a few runs, never spelled out port by port."""
    return tuple(port_runs(spec))


def ports_seen(prior: Iterable[Observation]) -> PortsData | None:
    """What the ports check saw on a host, from a later probe's `ProbeContext.prior`; None when
    it did not run or failed there."""
    for observation in prior:
        if (
            observation.check == "ports"
            and observation.status == "ok"
            and isinstance(observation.data, PortsData)
        ):
            return observation.data
    return None
