"""Zones in the inventory: every host in exactly one zone, zones that never overlap and stay
inside the scope, outside vantages that hold no host; each refusal one line naming file and
line. Pure logic: names resolve through a table."""

from pathlib import Path

import pytest
from click.testing import CliRunner

from attt.scanner.cli import main
from attt.scanner.errors import ConfigError
from attt.scanner.inventory import load_inventory, resolve_targets
from attt.scanner.models.target import Inventory
from tests.scanner.test_inventory import FakeDns, write

ZONED = """\
province: Hà Tĩnh
scope: [10.213.0.0/16, "*.hatinh.gov.vn"]
zones:
  - id: dmz
    name: DMZ
    cidrs: [10.213.1.0/24]
  - id: servers
    name: Vùng máy chủ nội bộ
    cidrs: [10.213.2.0/24, 10.213.3.0/24]
  - id: internet
    name: Internet
    vantage: outside
    reaches: [dmz]
systems:
  - id: portal
    name: Portal
    owner: Sở KH&CN
    level: 3
    hosts:
      - address: 10.213.1.10
      - address: 10.213.2.20
        zone: servers
  - id: mail
    name: Mail
    owner: UBND xã Cẩm Xuyên
    level: 2
    hosts:
      - address: mail.hatinh.gov.vn
"""


def test_each_host_sits_in_the_zone_it_names_or_whose_networks_hold_it(tmp_path: Path) -> None:
    inventory = load_inventory(write(tmp_path, ZONED)).inventory
    targets = resolve_targets(inventory, FakeDns({"mail.hatinh.gov.vn": ["10.213.3.5"]}))
    assert [(t.address, t.zone) for t in targets] == [
        ("10.213.1.10", "dmz"),
        ("10.213.2.20", "servers"),
        ("mail.hatinh.gov.vn", "servers"),  # placed after resolution, by its address
    ]
    assert [z.id for z in inventory.vantages_reaching("dmz")] == ["internet"]


def test_an_inventory_without_zones_places_no_host(tmp_path: Path) -> None:
    plain = ZONED[: ZONED.index("zones:")] + ZONED[ZONED.index("systems:") :]
    plain = plain.replace("        zone: servers\n", "")
    targets = resolve_targets(
        load_inventory(write(tmp_path, plain)).inventory, FakeDns({"mail.hatinh.gov.vn": ["10.213.3.5"]})
    )
    assert {t.zone for t in targets} == {None}


BAD_ZONES = [
    # (what, replace this, with this, line, text in the message)
    ("overlap", "[10.213.2.0/24, 10.213.3.0/24]", "[10.213.2.0/24, 10.213.1.128/25]",
     9, "zones 'dmz' and 'servers' overlap: 10.213.1.0/24 and 10.213.1.128/25"),
    ("network outside the scope", "[10.213.1.0/24]", "[10.214.1.0/24]",
     6, "10.214.1.0/24 is not inside the scope"),
    ("not a network", "[10.213.1.0/24]", "[dmz.hatinh.gov.vn]", 6, "not a CIDR network"),
    ("duplicate zone id", "  - id: servers\n", "  - id: dmz\n", 7, "duplicate zone id 'dmz' (also zones[0])"),
    ("outside vantage with networks",
     "    vantage: outside\n", "    vantage: outside\n    cidrs: [10.213.9.0/24]\n",
     10, "an outside vantage holds no cidrs"),
    ("inside zone without networks", "    cidrs: [10.213.1.0/24]\n", "", 4, "needs `cidrs`"),
    ("inside zone reaching", "    cidrs: [10.213.1.0/24]\n",
     "    cidrs: [10.213.1.0/24]\n    reaches: [dmz]\n",
     4, "only an outside vantage `reaches` other zones"),
    ("reaches an unknown zone", "reaches: [dmz]", "reaches: [dmz, db]",
     13, "reaches 'db', which is no zone of this"),
    ("reaches an outside zone", "reaches: [dmz]", "reaches: [internet]",
     13, "'internet', which is an outside vantage"),
    ("host in no zone", "address: 10.213.1.10", "address: 10.213.7.10",
     20, "10.213.7.10 lies in no zone's cidrs"),
    ("explicit zone not holding the address", "        zone: servers\n", "        zone: dmz\n",
     21, "10.213.2.20 lies in zone 'servers', not in the zone 'dmz' the host names"),
    ("host names an unknown zone", "        zone: servers\n", "        zone: db\n",
     22, "unknown zone 'db' (zones: dmz"),
    ("host in an outside vantage", "        zone: servers\n", "        zone: internet\n",
     22, "zone 'internet' is an outside vantage: it holds no host"),
    ("bad zone id", "  - id: dmz\n", "  - id: DMZ_1\n", 4, "'DMZ_1' is not allowed"),
]  # fmt: skip


@pytest.mark.parametrize(("what", "old", "new", "line", "text"), BAD_ZONES, ids=[b[0] for b in BAD_ZONES])
def test_a_bad_zone_is_one_line_naming_file_and_line(
    tmp_path: Path, what: str, old: str, new: str, line: int, text: str
) -> None:
    assert old in ZONED, what
    path = write(tmp_path, ZONED.replace(old, new, 1))
    with pytest.raises(ConfigError) as info:
        load_inventory(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}:{line}: "), message
    assert text in message, message


@pytest.mark.parametrize(
    ("addresses", "text"),
    [
        (["10.213.1.5"], "10.213.1.5 lies in zone 'dmz', not in the zone 'servers' the host names"),
        (["10.213.3.5", "10.213.1.5"], "10.213.1.5 lies in zone 'dmz', not in the zone 'servers'"),
        (["10.213.200.5"], "10.213.200.5 lies in no zone's cidrs"),
    ],
)
def test_a_name_resolving_outside_its_zone_is_refused_before_any_probe(
    tmp_path: Path, addresses: list[str], text: str
) -> None:
    named = ZONED.replace(
        "      - address: mail.hatinh.gov.vn\n",
        "      - address: mail.hatinh.gov.vn\n        zone: servers\n",
    )
    inventory = load_inventory(write(tmp_path, named)).inventory
    with pytest.raises(ConfigError) as info:
        resolve_targets(inventory, FakeDns({"mail.hatinh.gov.vn": addresses}))
    assert str(info.value).startswith(f"out of scope: system mail: host mail.hatinh.gov.vn: {text}")


def test_the_model_refuses_what_the_loader_refuses(tmp_path: Path) -> None:
    """An inventory built in code (the register import) meets the same partition rules."""
    data = load_inventory(write(tmp_path, ZONED)).inventory.model_dump()
    data["zones"][2]["reaches"] = ["servers", "nowhere"]
    with pytest.raises(ValueError, match="reaches 'nowhere', which is no zone"):
        Inventory.model_validate(data)


def test_validate_prints_the_zones_and_their_hosts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, ZONED.replace("mail.hatinh.gov.vn", "10.213.3.5"))
    result = CliRunner().invoke(main, ["--lang", "en", "inventory", "validate", str(path)])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[1:] == [
        "3 zone(s):",
        "  zone dmz (DMZ): 1 host(s)",
        "  zone servers (Vùng máy chủ nội bộ): 2 host(s)",
        "  zone internet (Internet): outside vantage, reaches dmz",
    ]
    result = CliRunner().invoke(main, ["--lang", "vi", "inventory", "validate", str(path)])
    assert "vùng dmz (DMZ): 1 máy chủ" in result.output


def test_the_spec_short_form_names_a_zone_by_its_id(tmp_path: Path) -> None:
    short = ZONED.replace("  - id: internet\n    name: Internet\n", "  - id: internet\n")
    inventory = load_inventory(write(tmp_path, short)).inventory
    internet = inventory.zones[-1]
    assert (internet.name, internet.vantage, internet.outside) == ("internet", "outside", True)
    assert [z.outside for z in inventory.zones] == [False, False, True]
