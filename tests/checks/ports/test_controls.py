"""`ports.forbidden` with service names when service detection named only some ports: a fact
missing on one port does not erase a fact observed on another, and a port without a name is an
`error` only where it could change the verdict. Pure: observations built by hand, judged by the
real evaluator."""

import datetime as dt

import pytest

from attt.checks.ports.controls import ForbiddenParams
from attt.checks.ports.models import OpenPort, PortsData
from attt.scanner.evaluate import evaluate
from attt.scanner.models.finding import Finding
from attt.scanner.models.observation import Observation
from attt.scanner.models.policy import ResolvedPolicy
from attt.scanner.registry import Registry
from tests.checks.ports.test_ports import make_rule, make_target

REGISTRY = Registry.load()
TARGET = make_target("127.0.242.9")
TELNET = ForbiddenParams(ports=(23, 2323), services=("telnet",))
WRAPPED = "no service identified on port 8080 (tcpwrapped: it closed the connection before answering a probe)"


def _detected(
    *ports: tuple[int, str], unidentified: tuple[int, ...] = (), error: str | None = None
) -> PortsData:
    """Service detection probed every open port; `unidentified` ones it could not name."""
    return PortsData(
        scanned=(22, 23, 2323, 5901, 8080),
        open=tuple(OpenPort(port=p, service=s) for p, s in ports),
        filtered="",
        service_detection=True,
        service_detection_error=error or (WRAPPED if unidentified else None),
        unidentified=unidentified,
        nmap_version="7.93",
    )


def judge_forbidden(data: PortsData, params: ForbiddenParams = TELNET) -> Finding:
    rule = make_rule("PORT-TELNET", "ports.forbidden", params)
    policy = ResolvedPolicy(
        id="p", title="p", version="1", sha256="0", sources=(), rules=(rule,), waivers=(), settings={}
    )
    now = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    observation = Observation.ok("ports", TARGET, data)
    key = ("ports", TARGET.system.id, TARGET.address)
    [finding] = evaluate(
        [TARGET], [observation], {TARGET.system.id: [policy]}, REGISTRY, ["ports"], now, probed={key}
    )
    return finding


@pytest.mark.parametrize(
    ("data", "failing"),
    [
        # The forbidden port itself open with the forbidden service named; another port tcpwrapped.
        (_detected((23, "telnet"), (8080, "tcpwrapped"), unidentified=(8080,)), "23"),
        # The forbidden port open, its own service not identified: forbidden by number.
        (_detected((2323, "tcpwrapped"), (22, "ssh"), unidentified=(2323,)), "2323"),
        # The forbidden service named on a port of its own; another port tcpwrapped.
        (_detected((5901, "telnet"), (8080, "tcpwrapped"), unidentified=(8080,)), "5901"),
        # Service detection failed as a whole: the listed port is open whatever runs there.
        (
            PortsData(
                scanned=(23, 2323, 8080),
                open=(OpenPort(port=23, service="telnet"), OpenPort(port=8080, service="http-proxy")),
                filtered="",
                service_detection_error="timed out",
                nmap_version="7.93",
            ),
            "23",
        ),
    ],
)
def test_a_forbidden_port_or_named_service_seen_open_fails_whatever_other_ports_are(
    data: PortsData, failing: str
) -> None:
    finding = judge_forbidden(data)
    assert (finding.status, finding.message.en) == ("fail", f"forbidden ports open: {failing}")


@pytest.mark.parametrize(
    ("data", "unnamed"),
    [
        # Nothing forbidden seen, but the tcpwrapped port may be a Telnet server.
        (_detected((22, "ssh"), (8080, "tcpwrapped"), unidentified=(8080,)), "8080"),
        # nmap's guess from the number is no name: neither a fail nor a pass rests on it.
        (
            _detected(
                (22, "ssh"),
                (5901, "telnet"),
                unidentified=(5901,),
                error="no service identified on port 5901 (nmap guessed from the number)",
            ),
            "5901",
        ),
        # A run recorded before the unidentified ports were kept: every open port may be it.
        (_detected((22, "ssh"), (8080, "tcpwrapped"), error=WRAPPED), "22, 8080"),
    ],
)
def test_a_port_without_a_name_that_could_be_the_forbidden_service_is_an_error(
    data: PortsData, unnamed: str
) -> None:
    finding = judge_forbidden(data)
    assert finding.status == "error"
    assert finding.message.en.startswith(
        f"no service identified on open port {unnamed}, which may be a forbidden"
    )
    assert "service_detection incomplete" in finding.message.en
    assert finding.message.vi and unnamed in finding.message.vi


def test_with_every_service_named_the_rule_passes_on_names() -> None:
    finding = judge_forbidden(_detected((22, "ssh"), (8080, "http")))
    assert finding.status == "pass"


def test_a_rule_on_port_numbers_alone_ignores_unnamed_ports() -> None:
    data = _detected((22, "ssh"), (8080, "tcpwrapped"), unidentified=(8080,))
    assert judge_forbidden(data, ForbiddenParams(ports=(23,))).status == "pass"
