"""`attt scan --vantage ZONE` end to end against real TCP listeners on 127.0.180.x and
127.0.181.x: the local engine records where it probed from, and the Internet rule is judged
accordingly."""

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from attt.scanner.cli import main
from tests.scanner.test_cli import scan
from tests.servers.listeners import tcp_listeners

PORTAL, ARCHIVE = "127.0.180.1", "127.0.181.1"

INVENTORY = """\
province: Hà Tĩnh
scope: [127.0.180.0/23]
zones:
  - {id: dmz, name: DMZ, cidrs: [127.0.180.0/24]}
  - {id: servers, name: Vùng máy chủ, cidrs: [127.0.181.0/24]}
  - {id: internet, name: Internet, vantage: outside, reaches: [dmz]}
systems:
  - id: portal
    name: Cổng thông tin
    owner: Sở Khoa học và Công nghệ
    level: 3
    hosts: [{address: 127.0.180.1, services: [{port: 8080}]}]
  - id: archive
    name: Lưu trữ
    owner: Sở Nội vụ
    level: 3
    hosts: [{address: 127.0.181.1, services: [{port: 8080}]}]
"""

POLICY = """\
id: e2e-zoned
title: Zoned end-to-end test policy
settings:
  ports: {ports: [8080, 2323]}
rules:
  - id: E2E-TELNET-INTERNET
    control: ports.forbidden
    params: {ports: [2323]}
    severity: high
    vantage: internet
    title: {vi: "Telnet không mở ra Internet", en: "Telnet is not open to the Internet"}
    remediation: {vi: "Chặn Telnet tại tường lửa biên.", en: "Block Telnet at the perimeter."}
  - id: E2E-DECLARED
    control: ports.declared_reachable
    severity: medium
    title: {vi: "Dịch vụ đã khai báo hoạt động", en: "Declared services answer"}
    remediation: {vi: "Kiểm tra dịch vụ.", en: "Check the service."}
"""


@pytest.fixture(scope="module")
def listeners() -> Iterator[None]:
    with tcp_listeners([(PORTAL, 8080), (PORTAL, 2323), (ARCHIVE, 8080)], banner=b"hello\r\n"):
        yield


def files(tmp_path: Path) -> tuple[Path, str]:
    inventory, policy = tmp_path / "inventory.yaml", tmp_path / "policy.yaml"
    inventory.write_text(INVENTORY, encoding="utf-8")
    policy.write_text(POLICY, encoding="utf-8")
    return inventory, str(policy)


def findings(report: dict[str, Any]) -> dict[tuple[str, str], tuple[str, str | None, bool]]:
    return {
        (f["system"], f["rule_id"]): (f["status"], f["vantage"], f["judged_from_inside"])
        for f in report["findings"]
    }


def test_a_scan_from_the_internet_side_judges_the_internet_rule_on_what_it_saw(
    tmp_path: Path, listeners: None
) -> None:
    inventory, policy = files(tmp_path)
    args = ("--vantage", "internet", "--system", "portal", "--lang", "en")
    code, output, report = scan(tmp_path, inventory, *args, policy=policy)
    assert code == 1, output  # telnet answers: the Internet rule fails, seen from outside
    assert {o["zone"] for o in report["observations"]} == {"internet"}
    assert report["run"]["vantage"] == "internet"
    assert [z["id"] for z in report["run"]["zones"]] == ["dmz", "servers", "internet"]
    assert findings(report) == {
        ("portal", "E2E-TELNET-INTERNET"): ("fail", "internet", False),
        ("portal", "E2E-DECLARED"): ("pass", "internet", False),
    }
    assert "zone dmz (DMZ): 1 host(s); 1 observation(s) of them: from internet 1" in output
    assert "zone internet (Internet): outside vantage, reaches dmz; 1 observation(s) made from it" in output


def test_an_outside_vantage_is_not_asked_to_probe_a_zone_it_does_not_reach(tmp_path: Path) -> None:
    """From the Internet the archive would look closed, and its rules would pass unearned."""
    inventory, policy = files(tmp_path)
    code, output, report = scan(tmp_path, inventory, "--vantage", "internet", policy=policy)
    assert (code, report) == (2, None)
    assert (
        "--vantage internet: host 127.0.181.1 of system archive is in zone servers, which internet"
        " does not reach (it reaches: dmz); leave such hosts out with --system or --tag"
    ) in output


def test_a_scan_from_inside_says_the_internet_rule_was_judged_from_inside(
    tmp_path: Path, listeners: None
) -> None:
    inventory, policy = files(tmp_path)
    code, output, report = scan(tmp_path, inventory, "--vantage", "dmz", "--lang", "en", policy=policy)
    assert code == 1, output
    status, vantage, inside = findings(report)[("portal", "E2E-TELNET-INTERNET")]
    assert (status, vantage, inside) == ("fail", "dmz", True)
    [telnet] = [
        f for f in report["findings"] if f["rule_id"] == "E2E-TELNET-INTERNET" and f["system"] == "portal"
    ]
    assert "Judged from inside, zone dmz" in telnet["message"]["en"]
    assert "zone servers (Vùng máy chủ): 1 host(s); 1 observation(s) of them: from dmz 1" in output


def test_an_unknown_vantage_is_refused_before_any_probe(tmp_path: Path) -> None:
    inventory, policy = files(tmp_path)
    code, output, report = scan(tmp_path, inventory, "--vantage", "cloud", policy=policy)
    assert (code, report) == (2, None)
    assert f"--vantage cloud: not a zone of {inventory} (dmz, servers, internet)" in output
    assert len(output.strip().splitlines()) == 1


def test_a_resumed_run_keeps_the_vantage_it_started_with(tmp_path: Path, listeners: None) -> None:
    inventory, policy = files(tmp_path)
    _, _, report = scan(tmp_path, inventory, "--vantage", "dmz", policy=policy)
    args = [
        "scan",
        "--resume",
        report["run"]["id"],
        "--vantage",
        "internet",
        "--db",
        str(tmp_path / "runs.db"),
    ]
    result = CliRunner().invoke(main, args, env={"CI": "true"})
    assert result.exit_code == 2
    assert "--vantage internet conflicts with run" in result.output
    assert "own (dmz): a resumed run is probed from where it started" in result.output


def test_the_configuration_file_can_say_where_the_machine_sits(tmp_path: Path, listeners: None) -> None:
    inventory, policy = files(tmp_path)
    config = tmp_path / "attt.toml"
    config.write_text('vantage = "internet"\n', encoding="utf-8")
    out = tmp_path / "out"
    args = ["--config", str(config), "scan", "-i", str(inventory), "-p", policy, "--check", "ports",
            "--system", "portal", "--db", str(tmp_path / "runs.db"), "--out", str(out),
            "--format", "json"]  # fmt: skip
    result = CliRunner().invoke(main, args, env={"CI": "true"})
    assert result.exit_code == 1, result.output
    report = json.loads((out / "report.json").read_text("utf-8"))
    assert report["run"]["vantage"] == "internet"
