"""A curve offer the server never answers is no answer about that curve.

sslyze's one-curve test reads a handshake that timed out as "curve rejected"; the elimination
read a silent offer of every curve the same way. A server that left the handshake offering P-521
alone silent lost P-521 from its groups with no step incomplete, and a server silent on the
offer of every curve had no groups at all: `TLS-MOZILLA-INTERMEDIATE` passed on servers whose
P-521 fails it. The servers of tests/servers/tls_curves.py do that once, and on every such
offer, scanned through the real CLI both ways (elimination, and `--tls-exhaustive`).
"""

import socket
import ssl
from pathlib import Path
from typing import Any

import pytest

from tests.robustness.conftest import scan_tls_hosts
from tests.servers.tls_curves import NET, PORT, CurveServer, curve_servers, p521_alone, with_p224

TIMEOUT = 8.0
"""--timeout: each silent handshake costs max(1, TIMEOUT / 4) seconds."""
RULE = "TLS-MOZILLA-INTERMEDIATE"
"""The rule that reads the groups."""
POLICY = """\
id: curves
title: Curves
extends: [vn-level-2]
settings: {tls: {trust_anchors: [%s]}}
"""
"""The level-2 policy (it has `RULE`), trusting the test CA."""
ANSWERED = ["x25519", "secp256r1", "secp384r1", "secp521r1"]
"""The groups every s_server here accepts, as attt names and orders them."""


def _servers() -> dict[str, CurveServer]:
    return {
        "p521-silent": CurveServer(f"{NET}.1", p521_alone),
        "p521-silent-once": CurveServer(f"{NET}.2", p521_alone, once=True),
        "every-curve-silent": CurveServer(f"{NET}.3", with_p224, tls13=True),
        "answers": CurveServer(f"{NET}.4", None),
    }


@pytest.fixture(scope="module", params=["elimination", "exhaustive"])
def scanned(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, dict[str, CurveServer], dict[str, Any]]:
    """One scan of the four servers (fresh ones per way): the way, the servers, the report."""
    way = request.param
    servers = _servers()
    workdir = tmp_path_factory.mktemp(f"curves-{way}")
    policy = workdir / "policy.yaml"
    options = ("-p", str(policy), *(("--tls-exhaustive",) if way == "exhaustive" else ()))
    with curve_servers(workdir, list(servers.values()), accept_limit=2000) as ca_file:
        policy.write_text(POLICY % ca_file)
        ips = [server.ip for server in servers.values()]
        report, _ = scan_tls_hosts(workdir, NET, ips, PORT, TIMEOUT, *options)
    return way, servers, report


def _observed(report: dict[str, Any], server: CurveServer) -> Any:
    [obs] = [o for o in report["observations"] if o["host"] == server.ip]
    assert obs["status"] == "ok", obs
    return obs["data"]


def _finding(report: dict[str, Any], server: CurveServer) -> Any:
    [finding] = [f for f in report["findings"] if f["rule_id"] == RULE and f["host"] == server.ip]
    return finding


@pytest.mark.slow
@pytest.mark.parametrize("name", ["p521-silent", "every-curve-silent"])
def test_a_curve_offer_left_silent_twice_is_not_observed_and_the_rule_says_error(scanned, name):
    way, servers, report = scanned
    server = servers[name]
    finding = _finding(report, server)
    assert finding["status"] == "error", (way, finding)  # was `pass`: the silence read as a refusal
    assert "elliptic_curves" in finding["message"]["en"], (way, finding)
    data = _observed(report, server)
    assert data["groups"] is None, way
    assert "left silent, twice" in data["step_errors"]["elliptic_curves"], way
    # Everything else the scan asked was answered: only the curves are missing.
    assert data["incomplete"] == ["elliptic_curves"], way
    assert server.silenced == 2, way  # asked again once, then no more


@pytest.mark.slow
@pytest.mark.parametrize("name", ["p521-silent-once", "answers"])
def test_a_server_that_answers_reads_as_before_and_fails_on_its_curve(scanned, name):
    way, servers, report = scanned
    data = _observed(report, servers[name])
    assert data["groups"] == ANSWERED, way
    assert data["incomplete"] == [], way
    assert servers[name].silenced == (1 if name.endswith("once") else 0), way
    finding = _finding(report, servers[name])
    assert finding["status"] == "fail", (way, finding)
    assert finding["evidence"]["observed"] == ["groups not in the profile: secp521r1"], (way, finding)


def test_the_fronts_leave_only_their_own_offers_unanswered(tmp_path: Path) -> None:
    """The fronts' reading of real ClientHellos (Python's ssl client, whose offer has P-521
    among other groups and no P-224): relayed to the s_server, and answered."""
    servers = [CurveServer(f"{NET}.10", p521_alone), CurveServer(f"{NET}.11", with_p224, tls13=True)]
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with curve_servers(tmp_path, servers):
        for server, version in zip(servers, ("TLSv1.2", "TLSv1.3"), strict=True):
            with (
                socket.create_connection((server.ip, PORT), timeout=5) as raw,
                context.wrap_socket(raw) as tls,
            ):
                assert tls.version() == version
    assert [server.silenced for server in servers] == [0, 0]
