"""A vulnerability test the server never answered is no "not exposed".

sslyze's fallback-SCSV, Heartbleed and CCS-injection tests, ROBOT's handshakes for the RSA key,
and the renegotiation and compression tests of a TLS 1.3 server read a connection the server
closed, reset or left silent as "protected". The servers of tests/servers/flaky_vulns.py leave
those handshakes unanswered, once (asked again, the fact stands) or every time (the fact is
not observed: the step is incomplete, its rules `error`, never `pass`).
"""

import json
from pathlib import Path

import pytest

from attt.checks.tls import _sslyze
from attt.checks.tls.models import TlsData
from tests.robustness.conftest import scan_tls_hosts
from tests.servers.flaky_vulns import NET, PORT, FlakyProbe, flaky_probe_servers, scan_flaky_probes

SERVERS = {
    "fallback-drop-once": FlakyProbe(f"{NET}.1", "fallback", "drop", once=True),
    "fallback-drop-always": FlakyProbe(f"{NET}.2", "fallback", "drop", once=False),
    "fallback-stall-always": FlakyProbe(f"{NET}.3", "fallback", "stall", once=False),
    "heartbeat-stall-once": FlakyProbe(f"{NET}.4", "heartbeat", "stall", once=True),
    "heartbeat-stall-always": FlakyProbe(f"{NET}.5", "heartbeat", "stall", once=False),
    "no-sni-drop-always": FlakyProbe(f"{NET}.6", "no-sni", "drop", once=False),
    "legacy-drop-always": FlakyProbe(f"{NET}.7", "legacy", "drop", once=False),
    "robot-drop-once": FlakyProbe(f"{NET}.8", "robot", "drop", once=True),
    "robot-drop-always": FlakyProbe(f"{NET}.9", "robot", "drop", once=False),
    "robot-gcm-drop-always": FlakyProbe(f"{NET}.10", "robot-gcm", "drop", once=False),
}
OPTIONS = _sslyze.ScanOptions(connect_timeout=1, deadline=60, silence=8)


@pytest.fixture(scope="module")
def scanned(tmp_path_factory: pytest.TempPathFactory) -> dict[str, TlsData]:
    return scan_flaky_probes(tmp_path_factory.mktemp("flaky-probes"), SERVERS, OPTIONS)


def test_a_fallback_probe_dropped_once_is_asked_again(scanned: dict[str, TlsData]) -> None:
    data = scanned["fallback-drop-once"]
    assert SERVERS["fallback-drop-once"].misbehaved == 1
    assert data.vulnerabilities.fallback_scsv is False  # the second ask met the server's alert
    assert "tls_fallback_scsv" not in data.incomplete


@pytest.mark.parametrize("name", ["fallback-drop-always", "fallback-stall-always"])
def test_a_fallback_probe_never_answered_is_not_observed(scanned: dict[str, TlsData], name: str) -> None:
    data = scanned[name]
    assert data.vulnerabilities.fallback_scsv is None
    assert SERVERS[name].misbehaved == 2  # asked once more, no further
    assert "tls_fallback_scsv" in data.incomplete
    assert "not observed" in data.step_errors["tls_fallback_scsv"]
    assert data.protocols == ("TLSv1.0", "TLSv1.1", "TLSv1.2")  # the rest of the scan stands


def test_a_heartbleed_probe_left_silent_once_is_asked_again(scanned: dict[str, TlsData]) -> None:
    data = scanned["heartbeat-stall-once"]
    assert SERVERS["heartbeat-stall-once"].misbehaved == 1
    assert data.vulnerabilities.heartbleed is False
    assert "heartbleed" not in data.incomplete


def test_a_heartbleed_probe_never_answered_is_not_observed(scanned: dict[str, TlsData]) -> None:
    data = scanned["heartbeat-stall-always"]
    assert data.vulnerabilities.heartbleed is None
    assert SERVERS["heartbeat-stall-always"].misbehaved == 2
    assert "heartbleed" in data.incomplete
    assert data.vulnerabilities.ccs_injection is False  # its own handshake was answered


def test_a_ccs_injection_probe_never_answered_is_not_observed(scanned: dict[str, TlsData]) -> None:
    """A dropped CCS probe: sslyze reads the closed connection as "not vulnerable"."""
    data = scanned["no-sni-drop-always"]
    assert data.vulnerabilities.ccs_injection is None
    assert "openssl_ccs_injection" in data.incomplete
    assert data.vulnerabilities.fallback_scsv is False  # answered with its alert: judged as before


def test_renegotiation_and_compression_probes_never_answered_are_not_observed(
    scanned: dict[str, TlsData],
) -> None:
    """A TLS 1.3 server that dropped the legacy client's TLS 1.2 handshakes: sslyze read them
    as "secure renegotiation", "client renegotiation refused", "no compression" and
    "downgrade protected"."""
    data = scanned["legacy-drop-always"]
    facts = data.vulnerabilities
    assert (facts.insecure_renegotiation, facts.client_renegotiation) == (None, None)
    assert (facts.compression, facts.fallback_scsv) == (None, None)
    assert {"session_renegotiation", "tls_compression", "tls_fallback_scsv"} <= set(data.incomplete)
    assert data.protocols == ("TLSv1.2", "TLSv1.3")
    assert facts.heartbleed is False and facts.ccs_injection is False  # sslyze: none at TLS 1.3


def test_a_robot_test_dropped_once_is_asked_again(scanned: dict[str, TlsData]) -> None:
    data = scanned["robot-drop-once"]
    assert SERVERS["robot-drop-once"].misbehaved == 1
    assert data.vulnerabilities.robot is False
    assert "robot" not in data.incomplete


def test_robot_stands_on_its_payloads_not_on_a_refused_key_probe(scanned: dict[str, TlsData]) -> None:
    """ROBOT tries a second cipher list when the first fetches no RSA key; its answer rests on
    its payloads' connections, all answered, so a server that drops the first is judged."""
    data = scanned["robot-gcm-drop-always"]
    assert SERVERS["robot-gcm-drop-always"].misbehaved >= 3  # each of ROBOT's three runs
    assert data.vulnerabilities.robot is False
    assert "robot" not in data.incomplete


def test_a_robot_test_never_answered_is_not_observed(scanned: dict[str, TlsData]) -> None:
    """Every handshake for the RSA key dropped: sslyze read "RSA not supported", not vulnerable,
    from a server whose RSA key exchange suite the scan had just seen accepted."""
    data = scanned["robot-drop-always"]
    assert "TLS_RSA_WITH_AES_128_GCM_SHA256" in data.cipher_suites["TLSv1.2"]
    assert data.vulnerabilities.robot is None
    assert "robot" in data.incomplete


def test_the_rules_of_tests_never_answered_are_errors_not_passes(tmp_path: Path) -> None:
    """Through the CLI: the rule reading a dropped fallback probe, and the one reading a dropped
    CCS probe, are `error` naming the test, where they passed."""
    servers = [
        FlakyProbe(f"{NET}.11", "fallback", "drop", once=False),
        FlakyProbe(f"{NET}.12", "no-sni", "drop", once=False),
    ]
    with flaky_probe_servers(tmp_path, servers):
        report, _ = scan_tls_hosts(tmp_path, NET, [s.ip for s in servers], PORT, 8)
    status = {(f["host"], f["rule_id"]): f for f in report["findings"]}
    protocol = status[(servers[0].ip, "TLS-VULN-PROTOCOL")]
    critical = status[(servers[1].ip, "TLS-VULN-CRITICAL")]
    assert (protocol["status"], critical["status"]) == ("error", "error")
    assert "tls_fallback_scsv" in json.dumps(protocol, ensure_ascii=False)
    assert "openssl_ccs_injection" in json.dumps(critical, ensure_ascii=False)
