"""What an answer proves about a port, scanned by real nmap against real listeners: a service that
hangs up before saying a word (nmap's `tcpwrapped`), a host that names no port at all, and a host
that accepts on every port (a SYN proxy or tarpit in front of it).

Servers run on 127.0.232.0/24 and are started by the tests.
"""

import socket

from attt.checks.ports import PortsCheck
from attt.checks.ports.controls import ForbiddenParams
from attt.checks.ports.models import PortsData
from attt.scanner.plugin import incomplete_steps
from tests.checks.ports.test_ports import make_target
from tests.checks.ports.test_truth import _judge, _scan, _serving


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
    control = PortsCheck.controls["ports.forbidden"]
    needed = control.steps_needed(ForbiddenParams(ports=(23,), services=("telnet",)), target)
    assert set(needed) & set(incomplete_steps(data))
    # A rule that forbids the port by number needs no name: the port accepted, so it fails.
    verdict = _judge("ports.forbidden", observation, {"ports": [8023]}, target)
    assert (verdict.status, verdict.message) == ("fail", "forbidden ports open: 8023")
