"""The ports check: nmap command building, real scans of real listeners, pure controls, and the
bundled baseline's port rules."""

import re
import time
from pathlib import Path

import pytest

from attt.checks.ports import PortsCheck, _nmap, connect_scan_data
from attt.checks.ports.controls import ForbiddenParams, OnlyAllowedParams, ports_to_scan
from attt.checks.ports.models import COMMON_PORTS, OpenPort, PortsData, PortsSettings
from attt.scanner.models.base import Severity, Text
from attt.scanner.models.policy import AppliesTo, ResolvedRule
from attt.scanner.models.target import Host, Service, SystemInfo, Target
from attt.scanner.plugin import NoParams, ProbeContext, Verdict
from attt.scanner.policy import load_policy
from attt.scanner.registry import Registry
from tests.servers.listeners import (
    PORTS_HOST_EMPTY,
    PORTS_HOST_MIXED,
    PORTS_HOST_SILENT,
    PORTS_HOST_TLS,
    SILENT_PORT,
    tcp_listeners,
)

SCAN_PORTS = (22, 23, 443, 8080, 8443)
SYSTEM = SystemInfo(id="cong-dvc", name="Cổng dịch vụ công", owner="Sở KH&CN", level=3)
POLICY = Path(__file__).resolve().parents[3] / "policies" / "baseline.yaml"


def make_target(
    ip: str,
    *,
    services: tuple[int, ...] = (),
    allowed: tuple[int, ...] | None = None,
    hostname: str | None = None,
    address: str | None = None,
) -> Target:
    system = SYSTEM.model_copy(update={"allowed_ports": allowed})
    host = Host(address=address or ip, hostname=hostname, services=tuple(Service(port=p) for p in services))
    return Target(system=system, host=host, ip=ip)


def make_rule(rule_id: str, control: str, params: object) -> ResolvedRule:
    return ResolvedRule(
        id=rule_id,
        control=control,
        check="ports",
        params=params,
        severity=Severity.HIGH,
        applies_to=AppliesTo(),
        title=Text(vi="t", en="t"),
        remediation=Text(vi="r", en="r"),
        references=(),
        policy="baseline",
    )


def scan(target: Target, ports: tuple[int, ...] = SCAN_PORTS, timeout: float = 20.0, **settings: object):
    ctx = ProbeContext(timeout=timeout, settings=PortsSettings(ports=ports, **settings))
    observations = list(PortsCheck().probe(target, ctx))
    assert len(observations) == 1
    return observations[0]


# --- the nmap command line ------------------------------------------------------------------


def test_port_spec_collapses_runs_and_duplicates():
    assert _nmap.port_spec([5903, 22, 5900, 5901, 5902, 80, 22, 81]) == "22,80-81,5900-5903"


def test_command_has_fixed_flags_and_budgeted_host_timeout():
    command = _nmap.build_command(["127.0.20.1"], [443, 23], timeout=10, service_detection=False)
    assert command.argv("/usr/bin/nmap") == [
        "/usr/bin/nmap", "-oX", "-",
        "-n", "-Pn", "-sT", "-T4", "--max-retries", "1", "--host-timeout", "6000ms",
        "-p", "23,443", "127.0.20.1",
    ]  # fmt: skip
    detect = _nmap.build_command(["127.0.20.1"], [23], timeout=10, service_detection=True)
    assert "-sV" in detect.flags


def test_many_hosts_are_one_host_group_with_the_targets_last_and_deduplicated():
    ips = ["127.0.20.1", "127.0.20.2", "127.0.20.1", "127.0.20.3"]
    command = _nmap.build_command(ips, [22], timeout=10, service_detection=False)
    argv = command.argv()
    assert argv[-3:] == ["127.0.20.1", "127.0.20.2", "127.0.20.3"]
    assert argv[argv.index("--min-hostgroup") + 1] == "3"
    assert command.timeout == 10


def test_a_batch_probes_at_most_the_concurrency_at_once_each_group_with_its_budget():
    ips = [f"127.0.20.{i}" for i in range(1, 6)]
    command = _nmap.build_command(ips, [22], timeout=10, service_detection=False, at_once=2)
    argv = command.argv()
    assert argv[argv.index("--min-hostgroup") + 1] == argv[argv.index("--max-hostgroup") + 1] == "2"
    assert argv[argv.index("--host-timeout") + 1] == "6000ms"  # each host: its group's budget
    assert command.timeout == 30  # three groups, one after another


def test_a_large_concurrency_still_scans_in_groups_nmap_handles_each_with_its_budget():
    ips = [f"127.0.{i // 250}.{i % 250 + 1}" for i in range(300)]
    command = _nmap.build_command(ips, [22], timeout=10, service_detection=False, at_once=256)
    argv = command.argv()
    assert argv[argv.index("--max-hostgroup") + 1] == str(_nmap.MAX_HOST_GROUP) == "64"
    assert command.timeout == 50  # five groups of at most 64, one after another


def test_address_families_are_never_mixed_in_one_run():
    with pytest.raises(ValueError, match="separate nmap runs"):
        _nmap.build_command(["127.0.20.1", "::1"], [22], timeout=10, service_detection=False)


def test_ipv6_target_adds_dash_6_and_normalises_the_address():
    command = _nmap.build_command(["0:0:0:0:0:0:0:1"], [22], timeout=5, service_detection=False)
    assert command.ips == ("::1",)
    assert command.flags[-1] == "-6"


@pytest.mark.parametrize(
    "ip",
    ["dichvucong.hatinh.gov.vn", "-iL/etc/passwd", "127.0.0.1 -oN /tmp/x", "10.0.0.0/8", "fe80::1%eth0", ""],
)
def test_anything_but_a_plain_ip_address_is_refused(ip):
    with pytest.raises(ValueError, match=r"IPv4 or IPv6 address|scope ids"):
        _nmap.build_command([ip], [22], timeout=5, service_detection=False)


@pytest.mark.parametrize("ports", [[], [0], [65536], [-1]])
def test_bad_port_sets_are_refused(ports):
    with pytest.raises(ValueError, match="ports must be"):
        _nmap.build_command(["127.0.20.1"], ports, timeout=5, service_detection=False)


def test_argv_carries_no_inventory_string_but_the_ip():
    # Given a target whose names, owner and tags are full of nmap syntax
    system = SYSTEM.model_copy(update={"name": "--script=evil -oN /tmp/pwn", "owner": "-iL /etc/shadow"})
    target = Target(
        system=system,
        host=Host(address="evil-host.example", hostname="script.example", services=(Service(port=8443),)),
        ip="127.0.20.1",
    )
    # When the check builds its command from that target
    ports = ports_to_scan(target, PortsSettings(ports=(22,)), ())
    argv = _nmap.build_command([target.ip], ports, timeout=30, service_detection=True).argv()
    # Then every element is a fixed token, the IP, a port spec or the computed timeout
    fixed = {
        "nmap",
        "-oX",
        "-",
        "-p",
        "-n",
        "-Pn",
        "-sT",
        "-T4",
        "--max-retries",
        "1",
        "--host-timeout",
        "-sV",
    }
    for element in argv:
        assert (
            element in fixed
            or element == "127.0.20.1"
            or re.fullmatch(r"[0-9,-]+", element)
            or re.fullmatch(r"[0-9]+ms", element)
        ), element
    assert "22,8443" in argv


def test_ports_scanned_cover_settings_inventory_allowed_and_rule_ports():
    target = make_target("127.0.20.1", services=(8443,), allowed=(80, 443))
    rules = (
        make_rule("PORT-X", "ports.forbidden", ForbiddenParams(ports=(2375, 23))),
        make_rule("PORT-Y", "ports.only_allowed", OnlyAllowedParams(ports=(9090,))),
        make_rule("PORT-Z", "ports.declared_reachable", NoParams()),
    )
    settings = PortsSettings(ports=(22,), extra_ports=(10443,))
    assert ports_to_scan(target, settings, rules) == (22, 23, 80, 443, 2375, 8443, 9090, 10443)


def test_default_port_list_covers_the_risky_services():
    risky = {21, 22, 23, 25, 53, 80, 110, 111, 135, 139, 143, 389, 443, 445, 465, 587, 636, 873, 993}
    risky |= {995, 1433, 1521, 2049, 2375, 2376, 3306, 3389, 5432, 5900, 5901, 5902, 5903, 5984, 5985}
    risky |= {5986, 6379, 8080, 8443, 9200, 9300, 11211, 27017}
    assert risky <= set(COMMON_PORTS)
    assert 90 <= len(COMMON_PORTS) <= 130


# --- real scans of real listeners -----------------------------------------------------------


def test_scan_finds_exactly_the_listening_ports(port_listeners):
    for address in (PORTS_HOST_MIXED, PORTS_HOST_TLS):
        observation = scan(make_target(address))
        assert observation.status == "ok", observation.error
        data = PortsData.model_validate(observation.data)
        assert data.scanned == SCAN_PORTS
        assert data.open_ports() == set(port_listeners[address])
        assert data.scan_type == "connect"
        assert not data.service_detection
        assert re.fullmatch(r"\d+\.\d+", data.nmap_version)


def test_table_service_names_without_detection(port_listeners):
    data = PortsData.model_validate(scan(make_target(PORTS_HOST_MIXED)).data)
    assert {p.port: p.service for p in data.open} == {23: "telnet", 8080: "http-proxy"}
    assert all(p.protocol == "tcp" and p.product == "" for p in data.open)


def test_host_where_nothing_listens_is_an_error_not_a_clean_host(port_listeners):
    # Every port answered "closed": the scan is complete, but a registered host with nothing in
    # service is a question for its owner, never a compliant host.
    observation = scan(make_target(PORTS_HOST_EMPTY))
    assert observation.status == "error"
    assert (
        observation.error
        == f"nothing answered: no port of {len(SCAN_PORTS)} scanned is open; is the host still in service?"
    )


def test_rule_and_inventory_ports_are_scanned_even_outside_settings(port_listeners):
    target = make_target(PORTS_HOST_MIXED, services=(8080,))
    rule = make_rule("PORT-TELNET", "ports.forbidden", ForbiddenParams(ports=(23,)))
    ctx = ProbeContext(timeout=20, settings=PortsSettings(ports=(443,)), rules=(rule,))
    (observation,) = PortsCheck().probe(target, ctx)
    data = PortsData.model_validate(observation.data)
    assert data.scanned == (23, 443, 8080)
    assert data.open_ports() == {23, 8080}


def test_nmap_runs_exactly_the_argv_we_built(port_listeners):
    command = _nmap.build_command([PORTS_HOST_TLS], (443, 444), timeout=10, service_detection=False)
    version, results = _nmap.run(command)
    assert re.fullmatch(r"\d+\.\d+", version)
    result = results[PORTS_HOST_TLS]
    assert isinstance(result, _nmap.ScanResult)
    assert [p.port for p in result.open_ports] == [443]
    assert [p.port for p in result.ports] == [443, 444]


@pytest.mark.parametrize(
    ("ports", "open_ports"),
    [
        ((_nmap.PortState(22, "filtered"), _nmap.PortState(23, "filtered")), None),
        ((_nmap.PortState(22, "closed"), _nmap.PortState(23, "filtered")), set()),
        ((_nmap.PortState(22, "open", "ssh"), _nmap.PortState(23, "filtered")), {22}),
    ],
)
def test_scan_where_no_port_answered_proves_nothing(ports, open_ports):
    scan = _nmap.ScanResult(nmap_version="7.93", ports=ports)
    if open_ports is None:
        with pytest.raises(_nmap.NmapFailedError, match="all filtered"):
            connect_scan_data(scan, (22, 23))
    else:
        assert connect_scan_data(scan, (22, 23)).open_ports() == open_ports


def test_silent_port_is_open_to_a_connect_scan(port_listeners):
    data = PortsData.model_validate(scan(make_target(PORTS_HOST_SILENT), ports=(SILENT_PORT,)).data)
    assert data.open_ports() == {SILENT_PORT}


def test_service_detection_names_product_and_keeps_hostile_text_as_bounded_text():
    banner = b"SSH-2.0-OpenSSH_9.2p1 Debian-2<script>x</script>\r\n"
    with tcp_listeners([("127.0.20.5", 2222)], banner=banner):
        observation = scan(make_target("127.0.20.5"), ports=(2222,), service_detection=True)
    data = PortsData.model_validate(observation.data)
    assert data.service_detection
    (port,) = data.open
    assert (port.port, port.service, port.product) == (2222, "ssh", "OpenSSH")
    assert port.version.startswith("9.2p1 Debian 2<script>")


@pytest.mark.slow
def test_service_detection_that_runs_out_of_time_keeps_the_connect_scan(port_listeners):
    # A port that accepts and never answers makes -sV wait for a minute or more.
    started = time.monotonic()
    observation = scan(
        make_target(PORTS_HOST_SILENT), ports=(SILENT_PORT,), timeout=4, service_detection=True
    )
    assert time.monotonic() - started < 15
    assert observation.status == "ok"
    data = PortsData.model_validate(observation.data)
    assert data.open_ports() == {SILENT_PORT}
    assert not data.service_detection
    assert data.service_detection_error


def test_probe_writes_nothing_to_stdout(port_listeners, tmp_path, capfd):
    scan(make_target(PORTS_HOST_MIXED))
    ctx = ProbeContext(timeout=5, settings=PortsSettings(ports=(23,)))
    list(PortsCheck(nmap_binary=str(tmp_path / "nmap")).probe(make_target(PORTS_HOST_EMPTY), ctx))
    assert capfd.readouterr().out == ""


def test_missing_nmap_is_an_error_observation(tmp_path):
    ctx = ProbeContext(timeout=5, settings=PortsSettings(ports=(23,)))
    (observation,) = PortsCheck(nmap_binary=str(tmp_path / "nmap")).probe(make_target(PORTS_HOST_EMPTY), ctx)
    assert observation.status == "error"
    assert observation.error == "nmap is not installed (apt-get install nmap)"
    assert observation.data is None


def test_scan_that_runs_out_of_time_is_an_error_not_an_empty_pass():
    # Every TCP port of eight hosts at once (half a million connections) cannot be scanned in
    # half a second, even on loopback; one host's 65,535 alone sometimes can, on an idle machine.
    hosts = [PORTS_HOST_EMPTY, *(f"127.0.20.{i}" for i in range(40, 47))]  # nothing listens there
    ctx = ProbeContext(timeout=0.5, concurrency=8, settings=PortsSettings(ports=tuple(range(1, 65536))))
    observations = list(PortsCheck().probe_batch([(make_target(host), ctx) for host in hosts]))
    assert len(observations) == len(hosts) and {o.ip for o in observations} == set(hosts)
    for observation in observations:
        assert observation.status == "error"
        assert re.search(r"host timeout|did not finish within", observation.error or ""), observation.error
        assert observation.data is None


def test_unscannable_target_ip_is_an_error_observation():
    target = Target(system=SYSTEM, host=Host(address="portal.example"), ip="portal.example")
    (observation,) = PortsCheck().probe(target, ProbeContext(timeout=5, settings=PortsSettings(ports=(23,))))
    assert observation.status == "error"
    assert "not appear to be an IPv4 or IPv6 address" in (observation.error or "")


# --- controls (pure) ------------------------------------------------------------------------


def data_of(open_ports: dict[int, str], scanned: tuple[int, ...] = (21, 22, 23, 80, 443, 2323, 3389)):
    return PortsData(
        scanned=scanned,
        open=tuple(OpenPort(port=p, service=s) for p, s in sorted(open_ports.items())),
        nmap_version="7.93",
    )


def judge(control_id: str, data: PortsData, params: object, target: Target | None = None) -> Verdict:
    control = PortsCheck.controls[control_id]
    return control.judge(
        data, control.params_model.model_validate(params), target or make_target("127.0.20.9")
    )


FTP = {"port": 21, "service": "ftp"}
TELNET = {"port": 23, "service": "telnet"}
TELNET_ALT = {"port": 2323, "service": "telnet"}


@pytest.mark.parametrize(
    ("open_ports", "params", "status", "observed"),
    [
        ({22: "ssh", 443: "https"}, {"ports": [23, 21]}, "pass", []),
        ({23: "telnet", 443: "https"}, {"ports": [23]}, "fail", [TELNET]),
        ({2323: "telnet"}, {"ports": [23], "services": ["telnet"]}, "fail", [TELNET_ALT]),
        ({21: "ftp", 23: "telnet"}, {"ports": [21, 23]}, "fail", [FTP, TELNET]),
        ({443: "https"}, {"ports": [23, 9999]}, "error", [9999]),
    ],
)
def test_forbidden(open_ports, params, status, observed):
    verdict = judge("ports.forbidden", data_of(open_ports), params)
    assert verdict.status == status
    assert verdict.observed == observed


def test_forbidden_message_names_the_ports():
    verdict = judge("ports.forbidden", data_of({21: "ftp", 23: "telnet"}), {"ports": [21, 23]})
    assert verdict.message == "forbidden ports open: 21, 23"
    assert verdict.expected == "closed"


@pytest.mark.parametrize(
    ("open_ports", "params", "allowed", "status", "observed"),
    [
        ({80: "http", 443: "https"}, {}, (80, 443), "pass", [80, 443]),
        ({22: "ssh", 443: "https"}, {}, (80, 443), "fail", [22]),
        ({22: "ssh", 443: "https"}, {"ports": [22, 443]}, (443,), "pass", [22, 443]),
        ({22: "ssh", 3389: "ms-wbt-server"}, {"ports": [22]}, None, "fail", [3389]),
        ({22: "ssh"}, {}, None, "not_applicable", None),
        ({}, {"coverage": "scanned"}, (), "pass", []),
    ],
)
def test_only_allowed(open_ports, params, allowed, status, observed):
    target = make_target("127.0.20.9", allowed=allowed)
    full = data_of(open_ports).model_copy(update={"scanned": (), "full_range": True})
    verdict = judge("ports.only_allowed", full, params, target)
    assert verdict.status == status
    assert verdict.observed == observed


def test_only_allowed_claims_nothing_about_ports_it_did_not_scan():
    target = make_target("127.0.20.9", allowed=(8080,))
    partial = data_of({8080: "http-proxy"})
    claim_all = judge("ports.only_allowed", partial, {}, target)
    assert claim_all.status == "error"
    assert claim_all.message.startswith("only 7 of 65535 TCP ports were scanned")
    spoken_of = judge("ports.only_allowed", partial, {"coverage": "scanned"}, target)
    assert spoken_of.status == "pass"
    assert spoken_of.message == (
        "every open port among the 7 scanned is allowed (the other 65528 TCP ports were not scanned)"
    )
    # A disallowed port seen open is a failure whatever the coverage.
    seen = judge("ports.only_allowed", data_of({8080: "http-proxy", 3389: "ms-wbt-server"}), {}, target)
    assert (seen.status, seen.observed) == ("fail", [3389])
    full = partial.model_copy(update={"scanned": (), "full_range": True})
    assert judge("ports.only_allowed", full, {}, target).message == (
        "no TCP port outside the allowed list is open (all 65535 ports scanned)"
    )


@pytest.mark.parametrize(
    ("open_ports", "declared", "status", "observed"),
    [
        ({443: "https", 22: "ssh"}, (443, 22), "pass", [22, 443]),
        ({443: "https"}, (443, 22), "fail", [22]),
        ({443: "https"}, (), "not_applicable", None),
        ({443: "https"}, (443, 8443), "error", [8443]),
    ],
)
def test_declared_reachable(open_ports, declared, status, observed):
    target = make_target("127.0.20.9", services=declared)
    verdict = judge("ports.declared_reachable", data_of(open_ports), {}, target)
    assert verdict.status == status
    assert verdict.observed == observed


def test_failing_verdicts_say_the_same_ports_in_vietnamese():
    forbidden = judge("ports.forbidden", data_of({21: "ftp", 23: "telnet"}), {"ports": [21, 23]})
    assert forbidden.vi == "cổng bị cấm đang mở: 21, 23"
    only = judge("ports.only_allowed", data_of({22: "ssh", 3389: "ms-wbt-server"}), {"ports": [22]})
    declared = judge(
        "ports.declared_reachable", data_of({443: "https"}), {}, make_target("127.0.20.9", services=(443, 22))
    )
    for verdict in (forbidden, only, declared):
        assert verdict.status == "fail" and verdict.vi is not None and verdict.vi != verdict.message
        assert re.findall(r"\d+", verdict.vi) == re.findall(r"\d+", verdict.message)


def test_hostile_text_is_bounded_by_the_model():
    with pytest.raises(ValueError, match="at most"):
        OpenPort(port=80, product="x" * 1000)


# --- the bundled baseline -------------------------------------------------------------------


def test_baseline_port_rules_load_and_are_bilingual():
    policy = load_policy(str(POLICY), Registry.load())
    rules = {r.id: r for r in policy.rules if r.check == "ports"}
    assert {"PORT-TELNET", "PORT-RDP", "PORT-DOCKER-API", "PORT-ONLY-ALLOWED"} <= set(rules)
    # FTP is judged on its answer to AUTH TLS (tests/checks/tls/test_tls_upgrade.py), on a port
    # the default scan covers.
    ftp = next(r for r in policy.rules if r.id == "PORT-FTP")
    assert ftp.control == "tls.starttls_offered" and 21 in PortsSettings().ports
    assert rules["PORT-DOCKER-API"].severity is Severity.CRITICAL
    for rule in rules.values():
        assert rule.title.vi != rule.title.en and rule.remediation.vi != rule.remediation.en
        assert rule.references, rule.id
    # Every port a baseline rule forbids is scanned, whatever the settings say.
    forbidden = {p for r in policy.rules if isinstance(r.params, ForbiddenParams) for p in r.params.ports}
    assert forbidden <= set(
        ports_to_scan(make_target("127.0.20.9"), PortsSettings(ports=(80,)), policy.rules)
    )
