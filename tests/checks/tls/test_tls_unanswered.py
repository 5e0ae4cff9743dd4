"""A handshake the server never answers is no answer about the suites offered in it.

The elimination of suites (checks/tls/_elimination.py) concludes "the rest are rejected" from
the handshake that ends it; a server that once stayed silent, or once dropped the connection,
on the handshake offering its only TLS 1.0 suite made TLS 1.0 vanish from the observation, with
no step incomplete (`TLS-MIN-TLS12` passed on a server accepting TLS 1.0 and 1.2). The servers of
tests/servers/flaky_tls.py do exactly that once, and the same on every such handshake (a server
that stalls or resets on what it does not speak), through the real CLI.
"""

from pathlib import Path
from typing import Any

import pytest

from attt.checks.tls import _sslyze
from attt.checks.tls.models import TlsData
from tests.robustness.conftest import scan_tls_hosts
from tests.servers.flaky_tls import CLIENT_AUTH, NET, PORT, FlakyTls, client_auth_server, flaky_tls_servers

TIMEOUT = 8.0
"""--timeout: each silent handshake costs max(1, TIMEOUT / 4) seconds."""
SERVERS = {
    "stall-once": FlakyTls(f"{NET}.1", "stall", once=True),
    "drop-once": FlakyTls(f"{NET}.2", "drop", once=True),
    "stall-always": FlakyTls(f"{NET}.3", "stall", once=False),
    "drop-always": FlakyTls(f"{NET}.4", "drop", once=False),
}


@pytest.fixture(scope="module")
def scanned(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], float]:
    """One scan of the four servers: the report, and how long it took."""
    workdir = tmp_path_factory.mktemp("flaky-tls")
    with flaky_tls_servers(workdir, list(SERVERS.values())):
        report, run = scan_tls_hosts(workdir, NET, [s.ip for s in SERVERS.values()], PORT, TIMEOUT)
    return report, run.seconds


def _observation(report: dict[str, Any], name: str) -> Any:
    [obs] = [o for o in report["observations"] if o["host"] == SERVERS[name].ip]
    assert obs["status"] == "ok", obs
    return obs["data"]


def _floor(report: dict[str, Any], name: str) -> Any:
    [finding] = [
        f for f in report["findings"] if f["rule_id"] == "TLS-MIN-TLS12" and f["host"] == SERVERS[name].ip
    ]
    return finding


@pytest.mark.parametrize("name", ["stall-once", "drop-once"])
def test_one_unanswered_handshake_does_not_hide_an_accepted_version(scanned, name):
    report, _ = scanned
    data = _observation(report, name)
    assert SERVERS[name].misbehaved == 1  # the server did stall or drop that handshake
    assert data["cipher_suites"].get("TLSv1.0") == ["TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA"]
    assert "tls_1_0_cipher_suites" not in data["incomplete"]
    assert _floor(report, name)["status"] == "fail"


@pytest.mark.parametrize("name", ["stall-always", "drop-always"])
def test_a_version_never_answered_twice_is_not_accepted_and_costs_little(scanned, name):
    report, seconds = scanned
    data = _observation(report, name)
    assert SERVERS[name].misbehaved >= 2  # asked again before concluding
    assert data["protocols"] == ["TLSv1.1", "TLSv1.2"] and "tls_1_0_cipher_suites" not in data["incomplete"]
    assert _floor(report, name)["evidence"]["observed"] == ["TLSv1.1", "TLSv1.2"]
    assert seconds < 6 * TIMEOUT


def test_a_server_asking_for_a_client_certificate_is_scanned_one_connection_at_a_time(
    tmp_path: Path,
) -> None:
    """A handshake that met a certificate request is closed before the suites it offered are
    tried one by one: held open, it kept a server that serves one connection at a time waiting
    for the certificate, every later handshake timed out, and TLS 1.3 read as not accepted."""
    endpoint = _sslyze.Endpoint(ip=CLIENT_AUTH, port=PORT)
    with client_auth_server(tmp_path):
        outcome = _sslyze.scan([endpoint], _sslyze.ScanOptions(connect_timeout=2, deadline=60, silence=8))[
            endpoint
        ]
    assert isinstance(outcome, TlsData), outcome
    assert outcome.protocols == ("TLSv1.2", "TLSv1.3")
    assert outcome.groups is not None and "x25519" in outcome.groups
