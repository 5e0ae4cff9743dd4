"""The inventory a province keeps, and the resolved targets a scan probes."""

import ipaddress
import re
import unicodedata
from collections.abc import Iterator, Sequence
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, model_validator

from attt.scanner.models.base import Frozen

_HOSTNAME_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def _check_address(value: str) -> str:
    """An IP address or an RFC 1123 host name; anything else (nmap or shell syntax) is refused.

    Addresses come back normalised (`0:0::1` is `::1`), so that one host is one address."""
    if "%" in value:
        # Python reads `fe80::1%eth0` as an address: the zone is free text that would travel to
        # nmap, the terminal and every report. A scan never needs it.
        raise ValueError(f"an IPv6 scope id (%zone) is not accepted: {value[:60]!r}")
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return _check_hostname(value)
    # `::ffff:10.0.0.1` is 10.0.0.1 (a dual-stack socket reaches it there): one host, one spelling.
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    return str(mapped or address)


_IPV4_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")


def _network(value: str) -> str:
    """A CIDR network in its normal form; an IPv4-mapped one as the IPv4 network it stands for,
    as its addresses are written (`_check_address`)."""
    network = ipaddress.ip_network(value, strict=False)
    if (
        isinstance(network, ipaddress.IPv6Network)
        and network.prefixlen >= 96
        and network.subnet_of(_IPV4_MAPPED)
    ):
        return str(ipaddress.IPv4Network((int(network.network_address) & 0xFFFFFFFF, network.prefixlen - 96)))
    return str(network)


def _check_hostname(value: str) -> str:
    name = value.lower().rstrip(".")
    labels = name.split(".")
    if not name or len(name) > 253 or not all(_HOSTNAME_LABEL.match(x) for x in labels):
        raise ValueError(f"not an IP address or RFC 1123 host name: {value[:80]!r}")
    # A numeric last label is an address in disguise: nmap reads 10.0.0.1-5 as a range, and
    # resolvers read 010.0.0.1 as octal.
    if labels[-1].replace("-", "").isdigit():
        raise ValueError(f"not an IP address or RFC 1123 host name (numeric top-level label): {value!r}")
    return name


def _check_scope_entry(value: str) -> str:
    if value.startswith("*."):
        return "*." + _check_hostname(value[2:])
    try:
        return _network(value)
    except ValueError:
        pass
    try:
        return _check_hostname(value)
    except ValueError:
        raise ValueError(
            f"scope entry {value!r} is neither a CIDR network, a host name nor '*.domain'"
        ) from None


def _nfc(value: str) -> str:
    """One spelling per name: Vietnamese typed in NFD (combining marks) and in NFC compare equal."""
    return unicodedata.normalize("NFC", value)


Address = Annotated[str, AfterValidator(_check_address)]
Name = Annotated[str, AfterValidator(_nfc)]
HostName = Annotated[str, AfterValidator(_check_hostname)]
ScopeEntry = Annotated[str, AfterValidator(_check_scope_entry)]
Port = Annotated[int, Field(ge=1, le=65535)]
SystemId = Annotated[str, Field(pattern=r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")]
ZoneId = Annotated[str, Field(pattern=r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")]
ServiceKind = Literal["tls", "ssh", "http", "tcp", "smtp", "imap", "pop3", "ldap", "ftp", "rdp", "db"]


class Service(Frozen):
    """A service the inventory declares on a host."""

    port: Port
    kind: ServiceKind = "tcp"


class Host(Frozen):
    address: Address
    hostname: HostName | None = None
    """Name for SNI and certificate matching."""
    services: tuple[Service, ...] = ()
    zone: ZoneId | None = None
    """The zone the host sits in; None: the zone whose cidrs hold its address."""


def _check_network(value: str) -> str:
    try:
        return _network(value)
    except ValueError:
        raise ValueError(f"not a CIDR network: {value[:80]!r}") from None


Network = Annotated[str, AfterValidator(_check_network)]


class Zone(Frozen):
    """A network zone (TCVN 11930 / TCVN 14423: DMZ, server zone, database zone, management
    zone, ...), or an outside vantage such as the Internet, from which probes are made."""

    id: ZoneId
    name: Name = Field(min_length=1, max_length=200)
    """Shown in reports; the id when not given."""
    cidrs: tuple[Network, ...] = ()
    """The addresses of the zone, inside the scope; an outside vantage holds no host."""
    vantage: Literal["inside", "outside"] = "inside"
    """`outside`: an outside vantage (the Internet). It holds no host and sees the zones it
    `reaches` as an attacker outside the province would."""
    reaches: tuple[ZoneId, ...] = ()
    """For an outside vantage: the zones whose hosts it can probe (the DMZ, say)."""

    @model_validator(mode="before")
    @classmethod
    def _named_by_id(cls, data: Any) -> Any:
        if isinstance(data, dict) and "name" not in data and "id" in data:
            return {**data, "name": data["id"]}
        return data

    @property
    def outside(self) -> bool:
        return self.vantage == "outside"

    @model_validator(mode="after")
    def _outside_or_cidrs(self) -> "Zone":
        if self.outside and self.cidrs:
            raise ValueError(f"zone {self.id!r}: an outside vantage holds no cidrs")
        if not self.outside and not self.cidrs:
            raise ValueError(f"zone {self.id!r}: needs `cidrs`, or `vantage: outside`")
        if self.reaches and not self.outside:
            raise ValueError(f"zone {self.id!r}: only an outside vantage `reaches` other zones")
        return self

    def holds(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in ipaddress.ip_network(network) for network in self.cidrs)


ZonePlace = tuple[str | int, ...]
"""Where in the inventory a zone problem is: ("zones", 1, "cidrs", 0)."""


def zone_conflicts(zones: Sequence[Zone]) -> Iterator[tuple[ZonePlace, str]]:
    """What keeps zones from partitioning the hosts' networks, each where it is written: a
    duplicate id, a zone reaching one that is not an inside zone, overlapping networks."""
    first: dict[str, int] = {}
    for z, zone in enumerate(zones):
        if zone.id in first:
            yield ("zones", z, "id"), f"duplicate zone id {zone.id!r} (also zones[{first[zone.id]}])"
        first.setdefault(zone.id, z)
    inside = {zone.id for zone in zones if not zone.outside}
    for z, zone in enumerate(zones):
        for r, reached in enumerate(zone.reaches):
            if reached not in inside:
                what = "an outside vantage" if reached in first else "no zone of this inventory"
                yield ("zones", z, "reaches", r), f"zone {zone.id!r} reaches {reached!r}, which is {what}"
    networks = [
        (ipaddress.ip_network(network), zone.id, (z, n))
        for z, zone in enumerate(zones)
        for n, network in enumerate(zone.cidrs)
    ]
    for i, (network, zone_id, _) in enumerate(networks):
        for other, other_id, (z, n) in networks[i + 1 :]:
            if network.version == other.version and network.overlaps(other):
                place: ZonePlace = ("zones", z, "cidrs", n)
                yield place, f"zones {zone_id!r} and {other_id!r} overlap: {network} and {other}"


def host_zone_problem(zones: Sequence[Zone], zone_id: str | None) -> str | None:
    """Why a host cannot name this zone as its own, or None."""
    if zone_id is None:
        return None
    zone = next((zone for zone in zones if zone.id == zone_id), None)
    if zone is None:
        known = ", ".join(zone.id for zone in zones) or "none"
        return f"unknown zone {zone_id!r} (zones: {known})"
    if zone.outside:
        return f"zone {zone_id!r} is an outside vantage: it holds no host"
    return None


class LevelDecision(Frozen):
    """The decision approving a system's security level (số quyết định phê duyệt cấp độ)."""

    number: str = Field(min_length=1, max_length=200)
    date: date


class Contact(Frozen):
    name: str = Field(min_length=1, max_length=200)
    email: str | None = Field(default=None, pattern=r"^[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;]+$", max_length=254)
    phone: str | None = Field(default=None, pattern=r"^[0-9 +().-]{3,40}$")


class Owner(Frozen):
    """An owner agency and who receives its pack and email."""

    name: str = Field(min_length=1, max_length=300)
    contact: Contact


Role = Literal["domain-controller", "file-server", "mail-server", "web-server", "database-server"]


class SystemInfo(Frozen):
    """A registered information system, without its hosts."""

    id: SystemId
    name: Name = Field(min_length=1, max_length=300)
    owner: Name = Field(min_length=1, max_length=300)
    """The owner agency: systems of one agency are summed up under it, so its spelling is NFC."""
    level: int = Field(ge=1, le=5)
    tags: tuple[Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")], ...] = ()
    allowed_ports: tuple[Port, ...] | None = None
    level_decision: LevelDecision | None = None
    role: Role | None = None
    """What the system is for, when some rules must know (a domain controller serves LDAP,
    Kerberos and SMB by design); rules scope themselves with `applies_to.except_roles`."""


class System(SystemInfo):
    hosts: tuple[Host, ...] = Field(min_length=1)

    def info(self) -> SystemInfo:
        return SystemInfo.model_validate(self.model_dump(exclude={"hosts"}))


class Inventory(Frozen):
    province: Name = Field(min_length=1, max_length=200)
    scope: tuple[ScopeEntry, ...] = Field(min_length=1)
    owners: tuple[Owner, ...] = ()
    """Contacts of owner agencies, by the name their systems give as `owner`; optional."""
    zones: tuple[Zone, ...] = ()
    """Optional: without zones, every host is probed from where attt runs."""
    systems: tuple[System, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _zones_consistent(self) -> "Inventory":
        for _place, conflict in zone_conflicts(self.zones):
            raise ValueError(conflict)
        for system in self.systems:
            for host in system.hosts:
                problem = host_zone_problem(self.zones, host.zone)
                if problem is not None:
                    raise ValueError(f"system {system.id}: host {host.address}: {problem}")
        return self

    def zone(self, zone_id: str) -> Zone:
        return next(zone for zone in self.zones if zone.id == zone_id)

    def vantages_reaching(self, zone_id: str) -> tuple[Zone, ...]:
        """The outside vantages that see the hosts of a zone."""
        return tuple(zone for zone in self.zones if zone.outside and zone_id in zone.reaches)

    @model_validator(mode="after")
    def _unique_system_ids(self) -> "Inventory":
        seen: set[str] = set()
        for system in self.systems:
            if system.id in seen:
                raise ValueError(f"duplicate system id {system.id!r}")
            seen.add(system.id)
        return self

    @model_validator(mode="after")
    def _owners_known_once(self) -> "Inventory":
        # A contact for an agency that owns nothing is a misspelt name: its mail would never go.
        used = {s.owner for s in self.systems}
        seen: set[str] = set()
        for owner in self.owners:
            if owner.name in seen:
                raise ValueError(f"owner {owner.name!r} is listed twice")
            if owner.name not in used:
                raise ValueError(f"owner {owner.name!r} owns no system (names must match `owner` exactly)")
            seen.add(owner.name)
        return self


class Target(Frozen):
    """One host of one system, with its address resolved once and pinned for the whole run."""

    system: SystemInfo
    host: Host
    ip: str
    """The pinned IP address every probe connects to."""
    zone: ZoneId | None = None
    """The zone the host sits in (its probes run there); None when the inventory has no zones."""

    @property
    def address(self) -> str:
        return self.host.address

    @property
    def key(self) -> tuple[str, str]:
        return (self.system.id, self.host.address)

    @property
    def server_name(self) -> str | None:
        """The name the host is reached under (TLS SNI, the name its certificate must carry): its
        `hostname`, else its address when that is a DNS name; None for a bare IP address."""
        if self.host.hostname is not None:
            return self.host.hostname
        try:
            ipaddress.ip_address(self.host.address)
        except ValueError:
            return self.host.address
        return None

    def declared_ports(self, kind: ServiceKind | None = None) -> tuple[int, ...]:
        return tuple(s.port for s in self.host.services if kind is None or s.kind == kind)
