"""The only module that runs the nmap binary and reads what it says.

One nmap run scans many hosts (the union of their ports) and its XML is split per host here.
The command line is built from validated values only: pinned IP addresses (parsed again here),
port numbers as integers, and fixed flags; nmap is executed directly (no shell), and the
targets come last so nothing after them can be read as an option.

The XML is read with the standard library: it carries what a fail-closed scan needs and
python-nmap dropped (a host's `timedout` flag, i.e. a fake all-clear, and the ports nmap only
counts in `extraports`), and nmap's version is read from the same output, so no extra
`nmap -V` process is started per host.
"""

import errno
import fcntl
import ipaddress
import math
import os
import selectors
import subprocess
import time
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Generator, Iterable, Iterator, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType
from typing import cast

from attt.scanner.cores import dedicated_core
from attt.scanner.models.observation import bound_text

NMAP_MISSING = "nmap is not installed (apt-get install nmap)"
TOO_MANY_FILES = "too many open files: raise the open-file limit (ulimit -n) or lower --concurrency"
MAX_ERROR_CHARS = 300
_PIPE_BYTES = 1 << 20
"""Linux's default ceiling for a pipe an unprivileged process may ask for."""
_MAX_SPEC_CHARS = 100_000
"""Linux refuses to start a program with one argument longer than 128 KiB (MAX_ARG_STRLEN):
thousands of scattered ports (every other port is 180 KB) would be a host that is never scanned."""
_STDERR_KEPT = 1 << 16
"""The end of nmap's stderr kept: its last line is the reason of a failure, and a run that
writes megabytes of warnings is not held in memory whole."""

# -n: never resolve names (the targets are already pinned; no DNS traffic).
# -Pn: skip host discovery; the inventory says the host exists, and ping is often filtered.
# -sT: TCP connect scan. Works without privileges, completes real handshakes (so "open" means
#      a client could connect), and is deterministic; slower than SYN scan but polite.
# --max-retries 1 and -T4: bounded time per filtered port on a sane network.
_FIXED_FLAGS = ("-n", "-Pn", "-sT", "-T4", "--max-retries", "1")
_SERVICE_FLAGS = ("-sV",)
MAX_HOST_GROUP = 64
"""Hosts of one nmap host group at most, whatever --concurrency allows: nmap's connect scan keeps
its own connection parallelism, and a group's hosts are written all at once when it ends. In
groups of 256, a 1,000-host scan took 0.4 s longer (median of 10 pairs) than in groups of 64,
the size nmap chooses itself for a hundred ports."""


class NmapMissingError(Exception):
    """The nmap binary cannot be run."""


class NmapFailedError(Exception):
    """nmap ran but its result cannot be trusted as a complete scan of the host(s)."""


@dataclass(frozen=True)
class NmapCommand:
    """One nmap run against one or more hosts of one address family."""

    ips: tuple[str, ...]
    ports: tuple[int, ...]
    flags: tuple[str, ...]
    timeout: float
    """Hard limit for the nmap process, in seconds: the budget of a host group times the groups
    (nmap's own --host-timeout is shorter)."""

    @property
    def port_spec(self) -> str:
        """The ports for nmap's `-p`: the list, or when the list is too long for one argument,
        the range that covers it (the reader keeps only the ports asked for)."""
        listed = port_spec(self.ports)
        return listed if len(listed) <= _MAX_SPEC_CHARS else f"{min(self.ports)}-{max(self.ports)}"

    def argv(self, binary: str = "nmap") -> list[str]:
        return [binary, "-oX", "-", *self.flags, "-p", self.port_spec, *self.ips]


@dataclass(frozen=True)
class PortState:
    port: int
    state: str
    """open, closed, filtered, open|filtered, ..."""
    service: str = ""
    product: str = ""
    version: str = ""
    probed: bool = False
    """The service was identified by -sV's probes; otherwise its name is nmap's guess from the
    port number (its table)."""


@dataclass(frozen=True)
class ScanResult:
    """What nmap saw on one host: the state of every port asked for it."""

    nmap_version: str
    ports: tuple[PortState, ...]

    @property
    def open_ports(self) -> tuple[PortState, ...]:
        return tuple(p for p in self.ports if p.state == "open")

    def count(self, state: str) -> int:
        return sum(1 for p in self.ports if p.state == state)


HostResult = ScanResult | NmapFailedError
"""Per host: its ports, or why this host's part of the scan proves nothing."""


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


def parse_port_spec(spec: str) -> list[int]:
    return [port for low, high in port_runs(spec) for port in range(low, high + 1)]


def port_runs(spec: str) -> list[tuple[int, int]]:
    """A port spec's runs of ports, (first, last), in the spec's order."""
    runs: list[tuple[int, int]] = []
    for part in spec.split(","):
        low, _, high = part.partition("-")
        runs.append((int(low), int(high or low)))
    return runs


def scannable_ip(ip: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """The address nmap may be given; ValueError for anything else (a name, a scope id)."""
    address = ipaddress.ip_address(ip)
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id is not None:
        raise ValueError(f"IPv6 scope ids are not scanned: {ip!r}")
    return address


def build_command(
    ips: Sequence[str],
    ports: Iterable[int],
    *,
    timeout: float,
    service_detection: bool,
    at_once: int | None = None,
) -> NmapCommand:
    """Build the scan of `ports` on every one of `ips`, `at_once` hosts at a time (all of them
    when None), each group within `timeout` seconds.

    The hosts go in host groups of exactly `at_once` (the last one smaller; never more than
    `MAX_HOST_GROUP`), scanned one after another by one process: each host gets its own host
    timeout when its group starts, and the run ends within `timeout` per group however many hosts
    it holds."""
    addresses = [scannable_ip(ip) for ip in ips]
    if not addresses:
        raise ValueError("no address to scan")
    if len({a.version for a in addresses}) != 1:
        raise ValueError("IPv4 and IPv6 addresses are scanned by separate nmap runs")
    wanted = tuple(sorted(set(ports)))
    if not wanted or not all(isinstance(p, int) and 1 <= p <= 65535 for p in wanted):
        raise ValueError("ports must be a non-empty set of integers in 1..65535")
    unique = tuple(dict.fromkeys(str(a) for a in addresses))
    group = min(len(unique) if at_once is None else max(1, min(at_once, len(unique))), MAX_HOST_GROUP)
    # nmap checks its host timeout only between probes and overshoots it (seconds with -sV),
    # so give it a share of the budget and keep the rest for the hard process limit.
    host_timeout_ms = max(500, math.floor(timeout * 0.6 * 1000))
    flags = [*_FIXED_FLAGS, "--host-timeout", f"{host_timeout_ms}ms"]
    if len(unique) > 1:
        flags += ["--min-hostgroup", str(group), "--max-hostgroup", str(group)]
    if service_detection:
        flags.extend(_SERVICE_FLAGS)
    if addresses[0].version == 6:
        flags.append("-6")
    groups = -(-len(unique) // group)
    return NmapCommand(ips=unique, ports=wanted, flags=tuple(flags), timeout=timeout * groups)


def run(command: NmapCommand, binary: str = "nmap") -> tuple[str, dict[str, HostResult]]:
    """The whole scan at once: nmap's version and, per IP asked, its ports or why they are
    unknown (`stream`, collected)."""
    results = dict(stream(command, binary))
    version = next((r.nmap_version for r in results.values() if isinstance(r, ScanResult)), "unknown")
    return version, results


def stream(command: NmapCommand, binary: str = "nmap") -> Iterator[tuple[str, HostResult]]:
    """Run the scan; yield every IP asked exactly once, with its ports or why they are unknown,
    as soon as nmap has written its host (nmap writes each host group as it finishes it).

    Raises before the first host when nmap cannot be started. Whatever ends the run early (a
    crash, the time limit, unreadable output, nmap's own error) fails the hosts not yet yielded;
    those yielded were complete before it. nmap says "Too many open files" on stderr when it runs
    out, before it writes any later host: what stderr holds is read before what stdout brings,
    and once it says so no further host is believed (their ports would read closed)."""
    deadline = time.monotonic() + max(1, math.ceil(command.timeout))
    reader = _Reader(command.ips, command.ports)
    try:
        # argv of fixed flags, parsed IP addresses and integers; no shell.
        process = subprocess.Popen(
            command.argv(binary), stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL
        )
    except OSError as exc:
        raise _cannot_start(exc) from None
    with process, dedicated_core(process.pid):
        _widen(process)
        try:
            why = yield from _Run(process, deadline, command.timeout).hosts(reader)
        finally:
            if process.poll() is None:
                process.kill()  # abandoned (time limit, a stopped scan): a leftover nmap goes on sending
    for ip in reader.unseen():
        yield ip, NmapFailedError(why or f"nmap returned no result for {ip}")


class _Run:
    """One nmap process's two outputs, read as they come, stderr first."""

    def __init__(self, process: "subprocess.Popen[bytes]", deadline: float, limit: float) -> None:
        assert process.stdout is not None
        assert process.stderr is not None
        self._process = process
        self._out, self._err = process.stdout.fileno(), process.stderr.fileno()
        self._deadline = deadline
        self._late = f"nmap did not finish within {limit:g} s"
        self.said = b""
        """Everything nmap wrote on stderr so far."""

    def hosts(self, reader: "_Reader") -> Generator[tuple[str, HostResult], None, str | None]:
        """Yield hosts as nmap writes them; return why the rest have no result (None: not said)."""
        with selectors.DefaultSelector() as selector:
            selector.register(self._out, selectors.EVENT_READ)
            selector.register(self._err, selectors.EVENT_READ)
            while True:
                ready = {key.fd for key, _ in selector.select(max(0.0, self._deadline - time.monotonic()))}
                if not ready:
                    return self._late
                if self._err in ready and not self._take_stderr():
                    selector.unregister(self._err)
                if self._out_of_files():
                    return f"nmap failed: {TOO_MANY_FILES}"
                if self._out in ready:
                    chunk = os.read(self._out, 1 << 16)
                    if not chunk:
                        break
                    try:
                        yield from reader.feed(chunk)
                    except NmapFailedError as exc:
                        return str(exc)
        try:
            code = self._process.wait(max(0.0, self._deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            return self._late
        while self._take_stderr():
            pass
        if self._out_of_files():
            return f"nmap failed: {TOO_MANY_FILES}"
        if code != 0 or not reader.started:
            said = self.said.decode("utf-8", "replace").strip()
            return _short(f"nmap failed: {said.splitlines()[-1] if said else f'exit status {code}'}")
        try:
            yield from reader.close()
        except NmapFailedError as exc:
            return str(exc)
        return reader.error

    def _take_stderr(self) -> bool:
        """Read what stderr holds; False at its end."""
        data = os.read(self._err, 1 << 16)
        self.said = (self.said + data)[-_STDERR_KEPT:]
        return bool(data)

    def _out_of_files(self) -> bool:
        return b"Too many open files" in self.said


def _widen(process: "subprocess.Popen[bytes]") -> None:
    """Give nmap's stdout a pipe that holds a whole host group's XML (hundreds of KB at
    --concurrency 256): nmap waits on a full pipe before scanning the next group, so with the
    default 64 KB the scan went at the pace this busy process read it (a third slower). Linux
    only; elsewhere, or above the system's limit, the pipe stays as it is."""
    assert process.stdout is not None
    with suppress(AttributeError, OSError):
        fcntl.fcntl(process.stdout.fileno(), fcntl.F_SETPIPE_SZ, _PIPE_BYTES)


def _cannot_start(exc: OSError) -> Exception:
    if isinstance(exc, FileNotFoundError) or exc.errno in (errno.EACCES, errno.ENOEXEC):
        return NmapMissingError(NMAP_MISSING)
    if exc.errno in (errno.EMFILE, errno.ENFILE):
        return NmapFailedError(f"cannot start nmap: {TOO_MANY_FILES}")
    return NmapFailedError(_short(f"cannot start nmap: {exc.strerror or exc}"))


def parse(
    xml_output: bytes | str, ips: Sequence[str], ports: Sequence[int]
) -> tuple[str, dict[str, HostResult]]:
    """nmap's version and, for each of `ips`, the state of each of `ports` (or why not known),
    from a whole run's XML (`stream` reads it as it comes)."""
    reader = _Reader(ips, ports)
    data = xml_output.encode() if isinstance(xml_output, str) else xml_output
    results = dict(reader.feed(data))
    results.update(reader.close())
    if reader.error is not None:
        raise NmapFailedError(reader.error)
    results.update((ip, NmapFailedError(f"nmap returned no result for {ip}")) for ip in reader.unseen())
    return reader.version, results


class _Reader:
    """nmap's XML, read as it arrives: each asked host's result as soon as its element ends."""

    def __init__(self, ips: Sequence[str], ports: Sequence[int]) -> None:
        self._asked = {ipaddress.ip_address(ip): ip for ip in ips}
        self._wanted = sorted(set(ports))
        # nmap's own output; text a target sent (with -sV) reaches it only as escaped attributes.
        self._parser: ET.XMLPullParser[ET.Element] = ET.XMLPullParser(events=("start", "end"))
        self._root: ET.Element | None = None
        self.version = "unknown"
        self.error: str | None = None
        """nmap's own word that the run failed (its `finished` element), if it said so."""

    @property
    def started(self) -> bool:
        return self._root is not None

    def feed(self, data: bytes) -> list[tuple[str, HostResult]]:
        try:
            self._parser.feed(data)
        except ET.ParseError as exc:
            raise NmapFailedError(f"nmap output is not readable XML: {exc}") from None
        return self._read()

    def close(self) -> list[tuple[str, HostResult]]:
        try:
            self._parser.close()
        except ET.ParseError as exc:
            raise NmapFailedError(f"nmap output is not readable XML: {exc}") from None
        return self._read()

    def unseen(self) -> list[str]:
        return list(self._asked.values())

    def _read(self) -> list[tuple[str, HostResult]]:
        found: list[tuple[str, HostResult]] = []
        # Asked for "start" and "end" events only: each is (event, element).
        for event, element in cast(Iterator[tuple[str, ET.Element]], self._parser.read_events()):
            if event == "start" and self._root is None:
                self._root = element
                self.version = element.get("version") or "unknown"
            elif event == "end" and element.tag == "host":
                found.extend(self._host(element))
                if self._root is not None:
                    self._root.remove(element)  # a province's run is read without holding it whole
            elif event == "end" and element.tag == "finished" and element.get("exit") == "error":
                self.error = _short(f"nmap reported an error: {element.get('errormsg', '').strip()}")
        return found

    def _host(self, host: ET.Element) -> list[tuple[str, HostResult]]:
        for address in host.findall("address"):
            if address.get("addrtype") in ("ipv4", "ipv6"):
                with suppress(ValueError):  # not an address: not a host we asked for
                    ip = self._asked.pop(ipaddress.ip_address(address.get("addr", "")), None)
                    if ip is not None:
                        return [(ip, _readable_host_result(host, ip, self.version, self._wanted))]
        return []


def _readable_host_result(host: ET.Element, ip: str, version: str, wanted: list[int]) -> HostResult:
    """`_host_result`, or this host's failure when nmap wrote a number that is not one."""
    try:
        return _host_result(host, ip, version, wanted)
    except ValueError as exc:
        return NmapFailedError(_short(f"nmap's result for {ip} is not readable: {exc}"))


def _host_result(host: ET.Element, ip: str, version: str, wanted: list[int]) -> HostResult:
    """One host's part of the run; `wanted`: the run's ports, sorted and unique."""
    status = host.find("status")
    state = status.get("state") if status is not None else None
    if state != "up":
        return NmapFailedError(f"nmap reports host {ip} as {state or 'unknown'}")
    if host.get("timedout") == "true":
        return NmapFailedError(f"nmap gave up on {ip} at its host timeout")
    # Ports nmap only counted: each count names its ports (nmap >= 7.80 lists them in
    # `extrareasons`); when it does not, one summarised state still says what they all were.
    # A port it also lists on its own is read from there.
    known: dict[int, PortState] = {}
    unnamed: Counter[str] = Counter()
    for extra in host.findall("ports/extraports"):
        extra_state = extra.get("state", "unknown")
        named = 0
        for reason in extra.findall("extrareasons"):
            listed = _plain(reason.get("ports", ""), extra_state)
            named += len(listed)
            known.update(listed)
        if int(extra.get("count", "0")) > named:
            unnamed[extra_state] += int(extra.get("count", "0")) - named
    for port in host.findall("ports/port"):
        if port.get("protocol") != "tcp":
            continue
        number = int(port.get("portid", "0"))
        state_el, service = port.find("state"), port.find("service")
        known[number] = PortState(
            port=number,
            state=state_el.get("state", "") if state_el is not None else "",
            service=_service_name(service),
            product=_attr(service, "product"),
            version=_attr(service, "version"),
            probed=_attr(service, "method") == "probed",
        )
    missing = [p for p in wanted if p not in known]
    if missing and len(unnamed) == 1 and sum(unnamed.values()) == len(missing):
        (only,) = unnamed
        known.update((p, PortState(port=p, state=only)) for p in missing)
        missing = []
    if missing:
        return NmapFailedError(f"nmap reported {len(wanted) - len(missing)} of {len(wanted)} requested ports")
    return ScanResult(nmap_version=version, ports=tuple(map(known.__getitem__, wanted)))


def _plain(spec: str, state: str) -> Mapping[int, PortState]:
    """The ports an `extrareasons` element names, each in the state nmap only counted it in (no
    service). A run's hosts repeat the same few short lists, each read once and shared (a thousand
    hosts' closed ports were a third of the time reading nmap's output); a long one (a full-range
    scan's) is read for its host alone, so that what is kept stays small."""
    shared = _shared_plain(spec, state)
    return shared if shared is not None else _plain_states(parse_port_spec(spec), state)


_SHARED_LIST_PORTS = 2048
"""At most this many ports in a list kept for the run's other hosts (a few hundred KB each)."""


@lru_cache(maxsize=256)
def _shared_plain(spec: str, state: str) -> Mapping[int, PortState] | None:
    ports = parse_port_spec(spec) if spec else []
    return MappingProxyType(_plain_states(ports, state)) if len(ports) <= _SHARED_LIST_PORTS else None


def _plain_states(ports: Iterable[int], state: str) -> dict[int, PortState]:
    return {port: PortState(port=port, state=state) for port in ports}


def _service_name(service: ET.Element | None) -> str:
    """nmap's name for the service, `ssl/http` when it found HTTP inside TLS (its XML says
    `name="http" tunnel="ssl"`): the name its own reports print, and the one that tells the TLS
    and web checks that the port speaks TLS."""
    name = _attr(service, "name")
    return f"ssl/{name}" if name and _attr(service, "tunnel") == "ssl" else name


def _attr(element: ET.Element | None, name: str) -> str:
    return element.get(name, "") if element is not None else ""


def _short(text: str) -> str:
    return bound_text(text, MAX_ERROR_CHARS)
