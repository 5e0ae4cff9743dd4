"""Inventory loading, scope and target resolution. Pure logic: resolvers are plain functions."""

import json
import re
import unicodedata
from pathlib import Path

import pytest

from attt.scanner.errors import ConfigError
from attt.scanner.inventory import (
    LoadedInventory,
    Scope,
    in_scope,
    load_inventory,
    resolve_targets,
    select_targets,
    system_resolver,
)
from attt.scanner.messages import problem_text
from attt.scanner.models.target import Inventory

DATA = Path(__file__).resolve().parent.parent / "data"

BASE = """\
province: Hà Tĩnh
scope: [10.213.0.0/16, "*.hatinh.gov.vn"]
systems:
  - id: portal
    name: Portal
    owner: Sở KH&CN
    level: 3
    tags: [web]
    hosts:
      - address: 10.213.1.10
        hostname: portal.hatinh.gov.vn
  - id: mail
    name: Mail
    owner: UBND xã Cẩm Xuyên
    level: 2
    hosts:
      - address: mail.hatinh.gov.vn
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "inv.yaml"
    path.write_text(text, encoding="utf-8")
    return path


class FakeDns:
    """A resolver that answers from a table and records what it was asked."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.calls: list[str] = []

    def __call__(self, name: str) -> list[str]:
        self.calls.append(name)
        return self.table.get(name, [])


def test_sample_inventory_loads() -> None:
    loaded = load_inventory(DATA / "inventory.yaml")
    assert isinstance(loaded, LoadedInventory)
    assert [s.id for s in loaded.inventory.systems] == ["dichvucong", "qlvb"]
    assert loaded.inventory.systems[0].hosts[0].services[0].kind == "tls"
    assert len(loaded.sha256) == 64
    assert loaded.sha256 == load_inventory(DATA / "inventory.yaml").sha256


def test_sha256_changes_with_the_bytes(tmp_path: Path) -> None:
    first = load_inventory(write(tmp_path, BASE)).sha256
    second = load_inventory(write(tmp_path, BASE + "# a comment\n")).sha256
    assert first != second


BAD = [
    # (what, replace this, with this, line, text in the message)
    ("unknown top key", "province: Hà Tĩnh\n", "province: Hà Tĩnh\nprovnce: x\n", 2, "provnce: unknown key"),
    ("unknown host key", "        hostname: portal", "        hostnme: portal", 11, "hostnme: unknown key"),
    ("duplicate system id", "  - id: mail\n", "  - id: portal\n", 12, "'portal', id: duplicate system"),
    ("level 0", "    level: 3\n", "    level: 0\n", 7, "'portal', level: '0' is too small"),
    ("level 6", "    level: 2\n", "    level: 6\n", 15, "'mail', level: '6' is too large"),
    ("level text", "    level: 3\n", "    level: high\n", 7, "level: 'high' is not a whole"),
    ("bad system id", "  - id: mail\n", "  - id: Mail_1\n", 12, "'Mail_1', id: 'Mail_1' is not allowed"),
    ("missing name", "    name: Mail\n", "", 12, "'mail', name: required, but missing"),
    ("cidr as address", "address: 10.213.1.10", "address: 10.213.1.0/24", 10, "'10.213.1.0/24', address:"),
    ("nmap option", "address: 10.213.1.10", "address: -oN x", 10, "host '-oN x', address:"),
    ("leading dash", "address: 10.213.1.10", "address: -portal.hatinh.gov.vn", 10, "address:"),
    ("shell separator", "address: 10.213.1.10", "address: a;b", 10, "host 'a;b', address:"),
    ("command substitution", "address: 10.213.1.10", "address: $(x)", 10, "host '$(x)', address:"),
    ("whitespace", "address: 10.213.1.10", "address: 'a b.hatinh.gov.vn'", 10, "address: not an IP"),
    ("nmap range", "address: 10.213.1.10", "address: 10.213.1.1-5", 10, "numeric top-level"),
    ("octal-looking", "address: 10.213.1.10", "address: 010.213.1.10", 10, "numeric top-level"),
    ("bad hostname", "hostname: portal.hatinh.gov.vn", "hostname: 'x y'", 11, "'10.213.1.10', hostname:"),
    ("bad scope entry", '"*.hatinh.gov.vn"', '"a b"', 2, "scope item 2:"),
    ("scope range", '"*.hatinh.gov.vn"', '"10.0.0.1-5"', 2, "scope item 2:"),
    ("ip out of scope", "address: 10.213.1.10", "address: 10.214.1.10", 10, "not in any scope network"),
    ("name out of scope", "address: mail.hatinh.gov.vn", "address: mail.evil.vn", 17, "no name entry"),
    ("bare domain vs wildcard", "address: mail.hatinh.gov.vn", "address: hatinh.gov.vn", 17, "no name entry"),
    ("no hosts", "    hosts:\n      - address: mail.hatinh.gov.vn\n", "    hosts: []\n", 16, "too few items"),
    ("bad port", "    tags: [web]\n", "    tags: [web]\n    allowed_ports: [0]\n", 9, "allowed_ports item"),
    ("service kind", "        hostname: portal.hatinh.gov.vn\n",
     "        hostname: portal.hatinh.gov.vn\n        services: [{port: 22, kind: telnet}]\n", 12, "kind:"),
    ("duplicate key", "    level: 2\n", "    level: 2\n    level: 3\n", 16, "duplicate key 'level'"),
    ("unquoted wildcard", '"*.hatinh.gov.vn"', "*.hatinh.gov.vn", 2, "quote a value that starts with *"),
    ("alias", "    tags: [web]\n", "    tags: &t [web]\n", 8, "anchors and aliases"),
    ("syntax", "    level: 2\n", "    level: [2\n", 16, "expected ',' or ']'"),
    ("duplicate address", "        hostname: portal.hatinh.gov.vn\n",
     "        hostname: portal.hatinh.gov.vn\n      - address: 10.213.1.10\n", 12,
     "address: 10.213.1.10 is already hosts[0] of system portal"),
    ("duplicate name", "      - address: mail.hatinh.gov.vn\n",
     "      - address: mail.hatinh.gov.vn\n      - address: MAIL.hatinh.gov.vn.\n", 18,
     "is already hosts[0]"),
    ("IPv6 scope id", "address: 10.213.1.10", "address: 'fe80::1%eth0'", 10, "IPv6 scope id"),
    ("top level list", None, "- a\n- b\n", 1, "top level must be a mapping"),
    ("empty", None, "", 1, "empty"),
]  # fmt: skip


@pytest.mark.parametrize(("what", "old", "new", "line", "text"), BAD, ids=[b[0] for b in BAD])
def test_bad_inventory_names_file_line_and_field(
    tmp_path: Path, what: str, old: str | None, new: str, line: int, text: str
) -> None:
    if old is None:
        source = new
    else:
        assert old in BASE, what
        source = BASE.replace(old, new, 1)
    path = write(tmp_path, source)
    with pytest.raises(ConfigError) as info:
        load_inventory(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}:{line}: "), message
    assert text in message


def test_every_error_is_listed_at_once(tmp_path: Path) -> None:
    path = write(tmp_path, BASE.replace("level: 3", "level: 9").replace("[web]", "[Web]"))
    with pytest.raises(ConfigError) as info:
        load_inventory(path)
    first = f"{path}:7: system 'portal', level: '9' is too large: at most 5"
    assert str(info.value) == first + " (+1 more problem)"
    assert [problem_text(p, "en") for p in info.value.problems] == [
        f"{path}:7: system 'portal', level: '9' is too large: at most 5",
        f"{path}:8: system 'portal', tags item 1: 'Web' is not allowed here: use lowercase letters a-z,"
        " digits and '-', starting with a letter or digit, at most 63 characters",
    ]
    vietnamese = [problem_text(p, "vi") for p in info.value.problems]
    assert vietnamese[0] == f"{path}:7: hệ thống 'portal', level: '9' quá lớn: tối đa 5"
    assert vietnamese[1].startswith(f"{path}:8: hệ thống 'portal', tags mục 1: 'Web' không hợp lệ ở đây")


def test_the_list_of_errors_is_bounded(tmp_path: Path) -> None:
    systems = "".join(
        f"  - {{id: s{i}, name: S, owner: O, level: 9, hosts: [{{address: 10.213.1.{i}}}]}}\n"
        for i in range(30)
    )
    path = write(tmp_path, "province: P\nscope: [10.213.0.0/16]\nsystems:\n" + systems)
    with pytest.raises(ConfigError) as info:
        load_inventory(path)
    assert (len(info.value.problems), info.value.more) == (20, 10)
    assert str(info.value).endswith("(+29 more problems)")


def test_non_utf8_names_line(tmp_path: Path) -> None:
    path = tmp_path / "inv.yaml"
    path.write_bytes(BASE.encode().replace(b"name: Mail\n", b"name: M\xe0il\n"))
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(path))}:13: not valid UTF-8"):
        load_inventory(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_inventory(tmp_path / "nope.yaml")


SCOPE = Scope.of(["10.213.0.0/16", "2001:db8::/48", "*.hatinh.gov.vn", "mail.example.vn"])

SCOPE_CASES = [
    ("10.213.255.1", {}, True),
    ("10.214.0.1", {}, False),
    ("2001:db8::1", {}, True),
    ("2001:db9::1", {}, False),
    ("a.hatinh.gov.vn", {"a.hatinh.gov.vn": ["10.213.0.5"]}, True),
    ("a.b.c.hatinh.gov.vn", {"a.b.c.hatinh.gov.vn": ["10.213.0.5", "2001:db8::9"]}, True),
    ("hatinh.gov.vn", {"hatinh.gov.vn": ["10.213.0.5"]}, False),  # the wildcard is not the domain
    ("xhatinh.gov.vn", {"xhatinh.gov.vn": ["10.213.0.5"]}, False),
    ("mail.example.vn", {"mail.example.vn": ["10.213.0.6"]}, True),
    ("x.mail.example.vn", {"x.mail.example.vn": ["10.213.0.6"]}, False),  # plain entries match exactly
    ("a.hatinh.gov.vn", {"a.hatinh.gov.vn": ["10.213.0.5", "8.8.8.8"]}, False),  # one address outside
    ("a.hatinh.gov.vn", {}, False),  # does not resolve
    ("a.hatinh.gov.vn", {"a.hatinh.gov.vn": ["not-an-ip"]}, False),
]


@pytest.mark.parametrize(("address", "dns", "expected"), SCOPE_CASES)
def test_in_scope(address: str, dns: dict[str, list[str]], expected: bool) -> None:
    assert in_scope(address, SCOPE, FakeDns(dns)) is expected


def test_in_scope_accepts_entries_and_name_only_check() -> None:
    assert in_scope("10.213.0.1", ["10.213.0.0/16"], resolve=None)
    assert in_scope("a.hatinh.gov.vn", ["*.hatinh.gov.vn"], resolve=None)
    # A name alone is never in scope without a network for its addresses.
    assert not in_scope("a.hatinh.gov.vn", ["*.hatinh.gov.vn"], FakeDns({"a.hatinh.gov.vn": ["10.0.0.1"]}))


def test_system_resolver_takes_numeric_addresses_without_dns() -> None:
    assert system_resolver("127.0.0.1") == ["127.0.0.1"]


def test_resolve_targets_pins_first_address_and_resolves_once() -> None:
    inventory = load_inventory(DATA / "inventory.yaml").inventory
    dns = FakeDns(
        {
            "portal.hatinh.gov.vn": ["10.213.1.11", "10.213.1.12"],
            "mail.example.vn": ["2001:db8:0:0::7"],
        }
    )
    targets = resolve_targets(inventory, dns)
    assert [(t.system.id, t.address, t.ip) for t in targets] == [
        ("dichvucong", "10.213.1.10", "10.213.1.10"),
        ("dichvucong", "portal.hatinh.gov.vn", "10.213.1.11"),
        ("qlvb", "2001:db8::5", "2001:db8::5"),
        ("qlvb", "mail.example.vn", "2001:db8::7"),
    ]
    assert targets[0].host.hostname == "dichvucong.hatinh.gov.vn"
    assert sorted(dns.calls) == ["mail.example.vn", "portal.hatinh.gov.vn"]


def inventory_with(*addresses: str) -> Inventory:
    return Inventory.model_validate(
        {
            "province": "Hà Tĩnh",
            "scope": ["10.213.0.0/16", "*.hatinh.gov.vn"],
            "systems": [
                {
                    "id": "s1",
                    "name": "S",
                    "owner": "O",
                    "level": 2,
                    "hosts": [{"address": a} for a in addresses],
                }
            ],
        }
    )


@pytest.mark.parametrize(
    ("address", "dns", "why"),
    [
        ("10.9.0.1", {}, "host 10.9.0.1: address is not in any scope network"),
        ("x.hatinh.gov.vn", {}, "host x.hatinh.gov.vn: name does not resolve"),
        ("x.hatinh.gov.vn", {"x.hatinh.gov.vn": ["10.213.0.1", "1.1.1.1"]}, "resolves to 1.1.1.1"),
        ("www.other.vn", {"www.other.vn": ["10.213.0.1"]}, "name matches no name entry"),
    ],
)
def test_resolve_targets_refuses_out_of_scope(address: str, dns: dict[str, list[str]], why: str) -> None:
    with pytest.raises(ConfigError, match=r"^out of scope: system s1: ") as info:
        resolve_targets(inventory_with("10.213.0.1", address), FakeDns(dns))
    assert why in str(info.value)


def test_resolve_targets_reports_first_error_and_count_and_skips_off_scope_lookups() -> None:
    dns = FakeDns({})
    with pytest.raises(ConfigError, match=r"host 10\.9\.0\.1: .* \(\+2 more\)$"):
        resolve_targets(inventory_with("10.9.0.1", "10.213.0.1", "a.other.vn", "b.hatinh.gov.vn"), dns)
    assert dns.calls == ["b.hatinh.gov.vn"]


@pytest.fixture(scope="module")
def targets():
    return resolve_targets(
        load_inventory(DATA / "inventory.yaml").inventory,
        FakeDns({"portal.hatinh.gov.vn": ["10.213.1.11"], "mail.example.vn": ["10.213.9.9"]}),
    )


@pytest.mark.parametrize(
    ("systems", "tags", "expected"),
    [
        ((), (), ["10.213.1.10", "portal.hatinh.gov.vn", "2001:db8::5", "mail.example.vn"]),
        (("qlvb",), (), ["2001:db8::5", "mail.example.vn"]),
        ((), ("portal",), ["10.213.1.10", "portal.hatinh.gov.vn"]),
        (
            (),
            ("internal", "portal"),
            ["10.213.1.10", "portal.hatinh.gov.vn", "2001:db8::5", "mail.example.vn"],
        ),
        (("qlvb", "dichvucong"), ("internal",), ["2001:db8::5", "mail.example.vn"]),
    ],
)
def test_select_targets(targets, systems, tags, expected) -> None:
    assert [t.address for t in select_targets(targets, systems, tags)] == expected


@pytest.mark.parametrize(
    ("systems", "tags", "message"),
    [
        (("nope",), (), "unknown system id 'nope'"),
        ((), ("nope",), "no system carries the tag 'nope'"),
        (("qlvb",), ("portal",), "no host matches"),
    ],
)
def test_select_targets_refuses(targets, systems, tags, message) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        select_targets(targets, systems, tags)


def test_one_ipv6_host_written_two_ways_is_a_duplicate(tmp_path: Path) -> None:
    source = BASE.replace("scope: [", 'scope: ["::1/128", ').replace(
        "      - address: mail.hatinh.gov.vn\n",
        "      - address: '::1'\n      - address: '0:0:0:0:0:0:0:1'\n",
    )
    with pytest.raises(ConfigError, match=r":18: system .mail., host .*, address: ::1 is already hosts\[0\]"):
        load_inventory(write(tmp_path, source))


def test_an_ipv4_host_written_as_an_ipv4_mapped_ipv6_address_is_the_same_host(tmp_path: Path) -> None:
    # `::ffff:10.213.1.10` is 10.213.1.10 (a dual-stack socket reaches it there): one host, in the
    # IPv4 scope, and once per system.
    mapped = BASE.replace("address: mail.hatinh.gov.vn", "address: '::ffff:10.213.1.10'")
    targets = resolve_targets(load_inventory(write(tmp_path, mapped)).inventory)
    assert [(t.key, t.ip) for t in targets][-1] == (("mail", "10.213.1.10"), "10.213.1.10")
    twice = BASE.replace(
        "      - address: mail.hatinh.gov.vn\n",
        "      - address: 10.213.1.10\n      - address: '::FFFF:10.213.1.10'\n",
    )
    with pytest.raises(ConfigError, match=r":18: .*address: 10.213.1.10 is already hosts\[0\]"):
        load_inventory(write(tmp_path, twice))
    # A scope written in the mapped form is the IPv4 network it stands for.
    scoped = mapped.replace("scope: [", 'scope: ["::ffff:10.213.0.0/112", ')
    assert "10.213.0.0/16" in load_inventory(write(tmp_path, scoped)).inventory.scope


def test_the_same_host_in_two_systems_is_allowed(tmp_path: Path) -> None:
    source = BASE.replace("address: mail.hatinh.gov.vn", "address: 10.213.1.10")
    targets = resolve_targets(load_inventory(write(tmp_path, source)).inventory)
    assert [t.key for t in targets] == [("portal", "10.213.1.10"), ("mail", "10.213.1.10")]


@pytest.mark.parametrize(
    "address",
    ["::1%\x1b]0;pwned\x07", "::1%;id", "::1%$(id)", "::1%\u202eevil", "::1%" + "x" * 5000, "fe80::1%1"],
)
def test_a_scope_id_is_refused_in_one_inert_line(tmp_path: Path, address: str) -> None:
    source = BASE.replace("scope: [", 'scope: ["::/0", ').replace(
        "address: 10.213.1.10", "address: " + json.dumps(address)
    )
    with pytest.raises(ConfigError, match="IPv6 scope id") as info:
        load_inventory(write(tmp_path, source))
    message = str(info.value)
    assert "\n" not in message and len(message) < 400
    assert not re.search("[\x00-\x1f\x7f\u202e]", message)


def test_owner_names_typed_in_nfd_and_nfc_are_one_agency(tmp_path: Path) -> None:
    nfc = "Sở Khoa học và Công nghệ"
    nfd = unicodedata.normalize("NFD", nfc)
    assert nfd != nfc
    source = BASE.replace("owner: Sở KH&CN", f"owner: {nfc}").replace(
        "owner: UBND xã Cẩm Xuyên", f"owner: {nfd}"
    )
    inventory = load_inventory(write(tmp_path, source)).inventory
    assert {s.owner for s in inventory.systems} == {nfc}
    assert inventory.province == unicodedata.normalize("NFC", inventory.province)
