"""What an answer proves about a port, scanned by real nmap against real listeners: a service that
hangs up before saying a word (nmap's `tcpwrapped`), a host that names no port at all, and a host
that accepts on every port (a SYN proxy or tarpit in front of it).

Servers run on 127.0.232.0/24 (and 127.0.242.0/24) and are started by the tests.
"""

import socket

from attt.checks.ports import PortsCheck
from attt.checks.ports.controls import ForbiddenParams, OnlyAllowedParams
from attt.checks.ports.models import PortsData, PortsSettings
from attt.scanner.plugin import ProbeContext, incomplete_steps
from tests.checks.ports.test_controls import judge_forbidden
from tests.checks.ports.test_ports import make_rule, make_target
from tests.checks.ports.test_truth import _judge, _scan, _serving
from tests.servers.listeners import tcp_listeners


def _hang_up(_conn: socket.socket) -> None:
    """Nothing to say: the connection is closed as soon as it is accepted."""


def test_a_service_that_hangs_up_at_once_is_not_identified_and_a_rule_on_names_cannot_pass() -> None:
    # nmap says `tcpwrapped` (method="probed"): a TCP wrapper, or any service refusing this client,
    # which may be the Telnet server a rule forbids by name. The name says the service is unknown.
    target = make_target("127.0.232.1")
    with _serving("127.0.232.1", 8023, _hang_up):
        observation = _scan(target, ports=(8023,), timeout=40, service_detection=True)
    data = observation.data
    assert isinstance(data, PortsData), observation.error
    assert data.open_ports() == {8023}  # it accepted: open, whatever it is
    assert [p.service for p in data.open] == ["tcpwrapped"]
    assert data.service_detection_error == (
        "no service identified on port 8023 (tcpwrapped: it closed the connection before answering a probe)"
    )
    assert data.unidentified == (8023,)
    control = PortsCheck.controls["ports.forbidden"]
    needed = control.steps_needed(ForbiddenParams(ports=(23,), services=("telnet",)), target)
    assert set(needed) & set(incomplete_steps(data))
    # A rule that forbids the port by number needs no name: the port accepted, so it fails.
    verdict = _judge("ports.forbidden", observation, {"ports": [8023]}, target)
    assert (verdict.status, verdict.message) == ("fail", "forbidden ports open: 8023")


def test_a_forbidden_service_seen_is_a_fail_and_a_hung_up_port_is_an_error_only_where_it_could_matter() -> (
    None
):
    # SSH named by its banner on 8022; 8023 hangs up before a word (tcpwrapped). What was seen on
    # 8022 stands; 8023 only leaves open whether Telnet runs there.
    ip = "127.0.242.1"
    with tcp_listeners([(ip, 8022)], banner=b"SSH-2.0-OpenSSH_9.2p1\r\n"), _serving(ip, 8023, _hang_up):
        observation = _scan(make_target(ip), ports=(8022, 8023, 8024), timeout=40, service_detection=True)
    data = observation.data
    assert isinstance(data, PortsData), observation.error
    assert ({p.port: p.service for p in data.open}, data.unidentified) == (
        {8022: "ssh", 8023: "tcpwrapped"},
        (8023,),
    )
    by_port = judge_forbidden(data, ForbiddenParams(ports=(8022,), services=("ssh",)))
    by_name = judge_forbidden(data, ForbiddenParams(ports=(8024,), services=("ssh",)))
    assert [(f.status, f.message.en) for f in (by_port, by_name)] == [
        ("fail", "forbidden ports open: 8022")
    ] * 2
    unknown = judge_forbidden(data, ForbiddenParams(ports=(8024,), services=("telnet",)))
    assert unknown.status == "error"
    assert unknown.message.en.startswith(
        "no service identified on open port 8023, which may be a forbidden one"
    )


# --- a host that declares no port -----------------------------------------------------------


def test_a_host_that_declares_no_service_is_told_so_with_what_was_open() -> None:
    # `services: []`: nothing to hold reachable, which is a fact of the inventory; the scan still
    # found two ports open, and the verdict says so rather than read as an empty host.
    target = make_target("127.0.232.2", services=())
    with tcp_listeners([("127.0.232.2", 8080), ("127.0.232.2", 8443)]):
        observation = _scan(target, ports=(23, 8080, 8443))
    verdict = _judge("ports.declared_reachable", observation, {}, target)
    assert verdict.status == "not_applicable"
    assert (
        verdict.message == "no service is declared for the host; open among the 3 ports scanned: 8080, 8443"
    )
    assert (
        verdict.vi == "máy chủ chưa được khai báo dịch vụ nào; cổng đang mở trong 3 cổng đã quét: 8080, 8443"
    )


def test_a_host_with_no_port_to_scan_says_why_not_that_nmap_was_given_bad_ports() -> None:
    # The policy's list emptied (`ports: []`), no service declared, `allowed_ports: []`, and the only
    # rule names no port: nothing is scanned, so "only allowed ports are open" was not observed.
    target = make_target("127.0.232.3", services=(), allowed=())
    rule = make_rule("PORT-ONLY", "ports.only_allowed", OnlyAllowedParams(coverage="scanned"))
    ctx = ProbeContext(timeout=20, settings=PortsSettings(ports=()), rules=(rule,))
    with tcp_listeners([("127.0.232.3", 8080)]):
        (observation,) = PortsCheck().probe(target, ctx)
    assert observation.status == "error"
    assert observation.error == (
        "no port to scan: the policy's port list is empty, the inventory declares no service for"
        " the host and allows no port for its system, and no rule names one"
    )


# --- a host that accepts on every port ------------------------------------------------------

EVERYWHERE = "127.0.232.4"
MANY = tuple(range(20001, 20201))
"""200 ports, each with a listener that accepts and says nothing: what a SYN proxy or a tarpit
in front of a host looks like to a connect scan."""


def test_a_host_that_accepts_on_every_port_probed_is_no_list_of_open_ports() -> None:
    # Every handshake completes, so every port would be open and every forbidden one a failure;
    # but no host serves 200 unregistered ports: something in front answers for all of them.
    target = make_target(EVERYWHERE, services=(20080,), allowed=(20200,))
    rule = make_rule("PORT-X", "ports.forbidden", ForbiddenParams(ports=(20023,)))
    ctx = ProbeContext(timeout=20, settings=PortsSettings(ports=MANY), rules=(rule,))
    with tcp_listeners([(EVERYWHERE, p) for p in MANY]):
        (observation,) = PortsCheck().probe(target, ctx)
    assert observation.status == "error"
    assert observation.error == (
        "every probed port accepted (200 of 200, 198 of them registered for no service): a SYN proxy"
        " or tarpit answers for the host, so which ports really listen was not observed"
    )


def test_a_host_whose_every_probed_port_is_registered_is_believed() -> None:
    # The same 200 open ports, each declared: the register says the host serves them.
    target = make_target(EVERYWHERE, services=MANY)
    with tcp_listeners([(EVERYWHERE, p) for p in MANY]):
        observation = _scan(target, ports=MANY)
    assert isinstance(observation.data, PortsData), observation.error
    assert observation.data.open_ports() == set(MANY)
