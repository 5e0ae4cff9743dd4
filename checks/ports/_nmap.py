"""The only module that talks to python-nmap (and through it, the nmap binary).

The nmap command line is built from validated values only: the pinned IP address (parsed
again here), port numbers as integers, and fixed flags. python-nmap places the hosts string
right after `-oX -` and splits it with shlex, so a value that is not an IP address never gets
that far: `build_command` refuses it first.

python-nmap drops two facts from nmap's XML that a fail-closed scan needs: the host's
`timedout` flag (a timed-out host looks "up" with no ports, i.e. a fake all-clear) and the
`extraports` counts (ports nmap summarises instead of listing). Both are read here from the
same XML.
"""

import ipaddress
import math
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import nmap

from attt.scanner.models.observation import bound_text

NMAP_MISSING = "nmap is not installed (apt-get install nmap)"
MAX_ERROR_CHARS = 300

# -n: never resolve names (the target is already pinned; no DNS traffic).
# -Pn: skip host discovery; the inventory says the host exists, and ping is often filtered.
# -sT: TCP connect scan. Works without privileges, completes real handshakes (so "open" means
#      a client could connect), and is deterministic; slower than SYN scan but polite.
# --max-retries 1 and -T4: bounded time per filtered port on a sane network.
_FIXED_FLAGS = ("-n", "-Pn", "-sT", "-T4", "--max-retries", "1")
_SERVICE_FLAGS = ("-sV",)


class NmapMissingError(Exception):
    """The nmap binary cannot be run."""


class NmapFailedError(Exception):
    """nmap ran but its result cannot be trusted as a complete scan of the host."""


@dataclass(frozen=True)
class NmapCommand:
    """One nmap run against one host, as python-nmap will execute it."""

    ip: str
    ports: tuple[int, ...]
    flags: tuple[str, ...]
    timeout: float
    """Hard limit for the nmap process, in seconds (nmap's own --host-timeout is shorter)."""

    @property
    def port_spec(self) -> str:
        return port_spec(self.ports)

    @property
    def arguments(self) -> str:
        return " ".join(self.flags)

    def argv(self, binary: str = "nmap") -> list[str]:
        """The argument vector python-nmap builds from this command (see `PortScanner.scan`)."""
        return [binary, "-oX", "-", self.ip, "-p", self.port_spec, *self.flags]


@dataclass(frozen=True)
class PortState:
    port: int
    state: str
    """open, closed, filtered, open|filtered, ..."""
    service: str
    product: str
    version: str


@dataclass(frozen=True)
class ScanResult:
    nmap_version: str
    command_line: str
    """The command line nmap says it ran, to compare with `NmapCommand.argv`."""
    listed: tuple[PortState, ...]
    """Ports nmap reported one by one."""
    summarised: dict[str, int]
    """State -> count of the ports nmap only counted (its `extraports`)."""

    @property
    def open_ports(self) -> tuple[PortState, ...]:
        return tuple(p for p in self.listed if p.state == "open")

    def count(self, state: str) -> int:
        return sum(1 for p in self.listed if p.state == state) + self.summarised.get(state, 0)

    @property
    def total(self) -> int:
        return len(self.listed) + sum(self.summarised.values())


def port_spec(ports: Iterable[int]) -> str:
    """`22,80,443,5900-5903`: sorted, deduplicated, runs collapsed into ranges."""
    ordered = sorted(set(ports))
    runs: list[list[int]] = []
    for port in ordered:
        if runs and port == runs[-1][1] + 1:
            runs[-1][1] = port
        else:
            runs.append([port, port])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def build_command(ip: str, ports: Iterable[int], *, timeout: float, service_detection: bool) -> NmapCommand:
    """Build the scan of `ports` on `ip` that must finish within `timeout` seconds."""
    address = ipaddress.ip_address(ip)
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id is not None:
        raise ValueError(f"IPv6 scope ids are not scanned: {ip!r}")
    wanted = tuple(sorted(set(ports)))
    if not wanted or not all(isinstance(p, int) and 1 <= p <= 65535 for p in wanted):
        raise ValueError("ports must be a non-empty set of integers in 1..65535")
    # nmap checks its host timeout only between probes and overshoots it (seconds with -sV),
    # so give it a share of the budget and keep the rest for the hard process limit.
    host_timeout_ms = max(500, math.floor(timeout * 0.6 * 1000))
    flags = [*_FIXED_FLAGS, "--host-timeout", f"{host_timeout_ms}ms"]
    if service_detection:
        flags.extend(_SERVICE_FLAGS)
    if address.version == 6:
        flags.append("-6")
    return NmapCommand(ip=str(address), ports=wanted, flags=tuple(flags), timeout=timeout)


def run(command: NmapCommand, binary: str = "nmap") -> ScanResult:
    """Run the scan; raise unless nmap finished a complete scan of every requested port."""
    try:
        scanner = nmap.PortScanner(nmap_search_path=(binary,))
    except nmap.PortScannerError:
        raise NmapMissingError(NMAP_MISSING) from None
    try:
        result = scanner.scan(
            hosts=command.ip,
            ports=command.port_spec,
            arguments=command.arguments,
            timeout=max(1, math.ceil(command.timeout)),
        )
    except nmap.PortScannerTimeout:
        raise NmapFailedError(f"nmap did not finish within {command.timeout:g} s") from None
    except nmap.PortScannerError as exc:
        raise NmapFailedError(_short(f"nmap failed: {exc.value}")) from None
    errors = result["nmap"]["scaninfo"].get("error")
    if errors:
        raise NmapFailedError(_short(f"nmap reported an error: {errors[0].strip()}"))
    major, minor = scanner.nmap_version()
    scan = _parse(command, result, scanner.get_nmap_last_output())
    return ScanResult(
        nmap_version=f"{major}.{minor}",
        command_line=str(result["nmap"].get("command_line") or ""),
        listed=scan[0],
        summarised=scan[1],
    )


def _parse(
    command: NmapCommand, result: dict[str, Any], xml_output: str | bytes
) -> tuple[tuple[PortState, ...], dict[str, int]]:
    wanted = ipaddress.ip_address(command.ip)
    hosts = {ipaddress.ip_address(k): v for k, v in result["scan"].items()}
    host = hosts.get(wanted)
    if host is None:
        raise NmapFailedError(f"nmap returned no result for {command.ip}")
    state = host.get("status", {}).get("state")
    if state != "up":
        raise NmapFailedError(f"nmap reports host {command.ip} as {state or 'unknown'}")
    timed_out, summarised = _xml_facts(xml_output)
    if timed_out:
        raise NmapFailedError(f"nmap gave up on {command.ip} at its host timeout")
    listed = tuple(
        PortState(
            port=int(port),
            state=str(info.get("state", "")),
            service=str(info.get("name") or ""),
            product=str(info.get("product") or ""),
            version=str(info.get("version") or ""),
        )
        for port, info in sorted(host.get("tcp", {}).items())
    )
    covered = len(listed) + sum(summarised.values())
    if covered != len(command.ports):
        raise NmapFailedError(f"nmap reported {covered} of {len(command.ports)} requested ports")
    return listed, summarised


def _xml_facts(xml_output: str | bytes) -> tuple[bool, dict[str, int]]:
    # The XML is nmap's own output, which python-nmap has already parsed with this same parser;
    # text a target sent reaches it only as escaped attribute values.
    root = ET.fromstring(xml_output)  # noqa: S314
    host = root.find("host")
    if host is None:
        raise NmapFailedError("nmap output has no host element")
    summarised: Counter[str] = Counter()
    for extra in host.findall("ports/extraports"):
        summarised[extra.get("state", "unknown")] += int(extra.get("count", "0"))
    return host.get("timedout") == "true", dict(summarised)


def _short(text: str) -> str:
    return bound_text(text, MAX_ERROR_CHARS)
