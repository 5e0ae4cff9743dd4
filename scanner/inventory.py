"""Loading the inventory, enforcing its scope, and turning its hosts into pinned targets.

Everything here happens before any packet is sent. Resolving a DNS name is not probing it,
but the addresses a name resolves to must lie in scope too, so that a mistaken or hijacked
DNS record never sends a probe outside the province's address space.
"""

import functools
import ipaddress
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from attt.scanner._yaml import YamlDoc, load_yaml, validate
from attt.scanner.errors import ConfigError
from attt.scanner.models.base import Frozen
from attt.scanner.models.target import Host, Inventory, Target, Zone, host_zone_problem, zone_conflicts

Resolver = Callable[[str], list[str]]
"""Maps a DNS name to its addresses (empty when it does not resolve)."""

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class LoadedInventory:
    inventory: Inventory
    sha256: str
    """Hash of the inventory file's bytes, recorded with every run."""
    path: Path


@dataclass(frozen=True)
class Scope:
    """The address space an inventory may scan: CIDR networks and DNS name patterns."""

    networks: tuple[IpNetwork, ...]
    names: frozenset[str]
    """Names that match exactly."""
    suffixes: tuple[str, ...]
    """From `*.example.org` entries, stored as `.example.org`: any sub-name at any depth."""

    @classmethod
    def of(cls, entries: Iterable[str]) -> "Scope":
        """Build from entries already normalised by the `ScopeEntry` model type."""
        networks: list[IpNetwork] = []
        names: set[str] = set()
        suffixes: list[str] = []
        for entry in entries:
            if entry.startswith("*."):
                suffixes.append(entry[1:])
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                names.add(entry)
        return cls(tuple(networks), frozenset(names), tuple(suffixes))

    def has_ip(self, address: str) -> bool:
        ip = _ip(address)
        return ip is not None and any(ip in network for network in self.networks)

    def has_network(self, network: str) -> bool:
        """Whether every address of a CIDR network is in scope."""
        inner = ipaddress.ip_network(network)
        return any(
            inner.version == outer.version and inner.subnet_of(outer)  # type: ignore[arg-type]
            for outer in self.networks
        )

    def has_name(self, name: str) -> bool:
        """Whether a DNS name matches a name entry; its addresses must be checked separately."""
        name = name.lower().rstrip(".")
        return name in self.names or any(name.endswith(suffix) for suffix in self.suffixes)


def is_ip(address: str) -> bool:
    return _ip(address) is not None


@functools.lru_cache(maxsize=4096)
def _ip(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address parsed, or None for a name: parsed once, though each host's address is asked
    about several times while an inventory is checked and its targets made."""
    try:
        return ipaddress.ip_address(address)
    except ValueError:
        return None


def system_resolver(name: str) -> list[str]:
    """The addresses the system resolver gives for `name`, de-duplicated, in its order."""
    try:
        infos = socket.getaddrinfo(name, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return []
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def in_scope(address: str, scope: Scope | Sequence[str], resolve: Resolver | None = system_resolver) -> bool:
    """Whether `address` may be scanned.

    An IP address is in scope iff it lies in a scope network. A DNS name is in scope iff it
    matches a name entry and every address it resolves to lies in a scope network. With
    `resolve=None` only the name is checked: a pre-flight check, never enough for probing.
    """
    scope = _as_scope(scope)
    addresses = None
    if resolve is not None and not is_ip(address) and scope.has_name(address):
        addresses = resolve(address)
    return _scope_problem(address, scope, addresses) is None


def load_inventory(path: Path) -> LoadedInventory:
    """Load and validate an inventory file; every error names the file, line and field.

    Hosts are checked against the scope here as far as possible without resolving names;
    `resolve_targets` completes the check with the resolved addresses.
    """
    return inventory_of(load_yaml(path))


def inventory_of(doc: YamlDoc) -> LoadedInventory:
    """The inventory a parsed YAML document holds, checked as `load_inventory` checks a file."""
    _refuse_duplicate_ids(doc)
    _refuse_zone_conflicts(doc)
    inventory = validate(Inventory, doc)
    scope = Scope.of(inventory.scope)
    for z, zone in enumerate(inventory.zones):
        for n, network in enumerate(zone.cidrs):
            if not scope.has_network(network):
                raise doc.error(("zones", z, "cidrs", n), f"{network} is not inside the scope")
    for s, system in enumerate(inventory.systems):
        first: dict[str, int] = {}
        for h, host in enumerate(system.hosts):
            problem = _scope_problem(host.address, scope, None)
            if problem is None and host.address in first:
                # Addresses are normalised by then: `::1` and `0:0:0:0:0:0:0:1` are one host.
                problem = f"{host.address} is already hosts[{first[host.address]}] of system {system.id}"
            if problem is None and is_ip(host.address):
                problem = _zone_problem(inventory, host, [host.address])
            if problem is not None:
                raise doc.error(("systems", s, "hosts", h, "address"), problem)
            first[host.address] = h
    return LoadedInventory(inventory, doc.sha256, doc.path)


def resolve_targets(inventory: Inventory, resolve: Resolver = system_resolver) -> list[Target]:
    """Every host of every system as a Target whose `ip` is pinned for the whole run.

    A name is resolved once; all its addresses must be in scope and the first is pinned.
    Raises ConfigError naming the first host that is out of scope (or does not resolve) and
    how many more there are, so nothing is scanned unless everything is in scope.
    """
    scope = Scope.of(inventory.scope)
    resolved: dict[str, list[str]] = {}
    targets: list[Target] = []
    problems: list[str] = []
    for system in inventory.systems:
        info = system.info()
        for host in system.hosts:
            addresses = [host.address] if is_ip(host.address) else []
            # Only names the scope allows are resolved: out-of-scope names cause no lookup.
            if not addresses and scope.has_name(host.address):
                if host.address not in resolved:
                    resolved[host.address] = resolve(host.address)
                addresses = resolved[host.address]
            problem = _scope_problem(host.address, scope, addresses) or _zone_problem(
                inventory, host, addresses
            )
            if problem is not None:
                problems.append(f"system {system.id}: host {host.address}: {problem}")
                continue
            ip = str(_ip(addresses[0]))
            targets.append(Target(system=info, host=host, ip=ip, zone=zone_of(inventory, host, ip)))
    if problems:
        more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ConfigError(f"out of scope: {problems[0]}{more}")
    return targets


def select_targets(
    targets: Sequence[Target], systems: Sequence[str] = (), tags: Sequence[str] = ()
) -> list[Target]:
    """Targets of the named systems and carrying one of the tags (`--system`, `--tag`).

    Each filter that is given narrows the selection; within a filter any value matches.
    Unknown system ids or tags, and a selection that matches nothing, are errors: a typo
    must never turn into a scan of nothing that reports success.
    """
    known_ids = {t.system.id for t in targets}
    known_tags = {tag for t in targets for tag in t.system.tags}
    unknown = [s for s in systems if s not in known_ids]
    if unknown:
        raise ConfigError(
            f"--system: unknown system id {unknown[0]!r} (known: {', '.join(sorted(known_ids))})"
        )
    unknown = [t for t in tags if t not in known_tags]
    if unknown:
        raise ConfigError(f"--tag: no system carries the tag {unknown[0]!r}")
    chosen = [
        t
        for t in targets
        if (not systems or t.system.id in systems) and (not tags or set(tags) & set(t.system.tags))
    ]
    if not chosen:
        raise ConfigError("--system/--tag: no host matches the selection")
    return chosen


def zone_of(inventory: Inventory, host: Host, ip: str) -> str | None:
    """The zone a host sits in: the one it names, else the one whose networks hold its address."""
    if host.zone is not None or not inventory.zones:
        return host.zone
    return next((zone.id for zone in inventory.zones if zone.holds(ip)), None)


def _zone_problem(inventory: Inventory, host: Host, addresses: Sequence[str]) -> str | None:
    """Why a host's addresses do not place it in exactly one zone, or None. Zones never overlap,
    so an address lies in at most one."""
    if not inventory.zones:
        return None
    for address in addresses:
        holder = next((zone.id for zone in inventory.zones if zone.holds(address)), None)
        if holder is None:
            return f"{address} lies in no zone's cidrs"
        if host.zone is not None and holder != host.zone:
            return f"{address} lies in zone {holder!r}, not in the zone {host.zone!r} the host names"
    return None


def _as_scope(scope: Scope | Sequence[str]) -> Scope:
    return scope if isinstance(scope, Scope) else Scope.of(scope)


def _scope_problem(address: str, scope: Scope, addresses: Sequence[str] | None) -> str | None:
    """Why `address` is out of scope, or None when it is in scope. `addresses` are what a
    name resolved to; None skips that part of the check."""
    if is_ip(address):
        return None if scope.has_ip(address) else "address is not in any scope network"
    if not scope.has_name(address):
        return "name matches no name entry of the scope"
    if addresses is None:
        return None
    if not addresses:
        return "name does not resolve"
    for resolved in addresses:
        if not is_ip(resolved):
            return f"resolver returned {resolved!r}, which is not an IP address"
        if not scope.has_ip(resolved):
            return f"name resolves to {resolved}, which is not in any scope network"
    return None


def _refuse_duplicate_ids(doc: YamlDoc) -> None:
    """Point at the second system with an id already used (the model only says that one exists)."""
    systems = doc.data.get("systems")
    if not isinstance(systems, list):
        return
    seen: set[Any] = set()
    for index, system in enumerate(systems):
        system_id = system.get("id") if isinstance(system, dict) else None
        if not isinstance(system_id, str):
            continue
        if system_id in seen:
            raise doc.error(("systems", index, "id"), f"duplicate system id {system_id!r}")
        seen.add(system_id)


class _Zones(Frozen):
    zones: tuple[Zone, ...] = ()


def _refuse_zone_conflicts(doc: YamlDoc) -> None:
    """Point at the zone, network or host zone that breaks the partition into zones (the
    inventory model refuses the same, without a line to show)."""
    zones = validate(_Zones, doc, {"zones": doc.data.get("zones") or ()}).zones
    for place, conflict in zone_conflicts(zones):
        raise doc.error(place, conflict)
    systems = doc.data.get("systems")
    for s, system in enumerate(systems if isinstance(systems, list) else ()):
        hosts = system.get("hosts") if isinstance(system, dict) else None
        for h, host in enumerate(hosts if isinstance(hosts, list) else ()):
            named = host.get("zone") if isinstance(host, dict) else None
            problem = host_zone_problem(zones, named) if isinstance(named, str) else None
            if problem is not None:
                raise doc.error(("systems", s, "hosts", h, "zone"), problem)
