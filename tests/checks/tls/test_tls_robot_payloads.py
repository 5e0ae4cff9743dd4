"""ROBOT's verdict rests on the server's answers to its payloads, on 127.0.222.0/24.

sslyze records, for each of ROBOT's five payloads, what the server did after it; a connection
the server refused before the payload went out (an alert to its ClientHello) is recorded as
the empty text, as if that were the answer to the payload. Refusing one payload's connection
in every run then reads as an oracle (a `fail` never earned), and refusing all of them as
"the same answer to every payload" (a `pass` never earned). The servers here refuse ROBOT's
payload connections with a fatal alert (tests/servers/flaky_vulns.py, `robot-payload`).

Likewise sslyze leaves out, without a word, a certificate whose handshake the server dropped
(`rsa-certificate`): the certificate rules then judged only the others.
"""

import pytest

from attt.checks.tls import _sslyze
from attt.checks.tls.models import TlsData
from tests.servers.flaky_vulns import FlakyProbe, scan_flaky_probes

NET = "127.0.222"
SECOND = frozenset({1})
"""The second payload of each run: WRONG_FIRST_TWO_BYTES, a different answer there is an oracle."""
SERVERS = {
    "every-payload": FlakyProbe(f"{NET}.1", "robot-payload", "alert", once=False),
    "second-payload": FlakyProbe(f"{NET}.2", "robot-payload", "alert", once=False, positions=SECOND),
    "second-payload-once": FlakyProbe(f"{NET}.3", "robot-payload", "alert", once=True, positions=SECOND),
    "key-probes-refused": FlakyProbe(f"{NET}.4", "robot", "alert", once=False),
    "rsa-certificate-dropped": FlakyProbe(f"{NET}.5", "rsa-certificate", "drop", once=False),
    "rsa-certificate-dropped-once": FlakyProbe(f"{NET}.6", "rsa-certificate", "drop", once=True),
}
# One connection at a time: the places of a server's refusals are then ROBOT's payloads.
OPTIONS = _sslyze.ScanOptions(connect_timeout=1, deadline=90, silence=8, max_connections_per_server=1)


@pytest.fixture(scope="module")
def scanned(tmp_path_factory: pytest.TempPathFactory) -> dict[str, TlsData]:
    return scan_flaky_probes(tmp_path_factory.mktemp("robot-payloads"), SERVERS, OPTIONS)


@pytest.mark.parametrize("name", ["every-payload", "second-payload"])
def test_a_payload_never_sent_is_no_answer(scanned: dict[str, TlsData], name: str) -> None:
    data = scanned[name]
    assert "TLS_RSA_WITH_AES_128_GCM_SHA256" in data.cipher_suites["TLSv1.2"]
    assert data.vulnerabilities.robot is None
    assert "robot" in data.incomplete
    assert "payload" in data.step_errors["robot"]


def test_a_payload_refused_once_is_asked_again(scanned: dict[str, TlsData]) -> None:
    data = scanned["second-payload-once"]
    assert SERVERS["second-payload-once"].misbehaved == 1
    assert data.vulnerabilities.robot is False
    assert "robot" not in data.incomplete


def test_no_rsa_key_for_robot_where_the_suites_showed_rsa_key_exchange_is_not_observed(
    scanned: dict[str, TlsData],
) -> None:
    """ROBOT's handshakes for the RSA key refused with an alert (an answer, but to ROBOT's own
    client): sslyze reads "RSA not supported", not vulnerable, from a server whose RSA key
    exchange suite the same scan saw accepted. ROBOT was never run against it."""
    data = scanned["key-probes-refused"]
    assert "TLS_RSA_WITH_AES_128_GCM_SHA256" in data.cipher_suites["TLSv1.2"]
    assert data.vulnerabilities.robot is None
    assert "robot" in data.incomplete
    assert "TLS_RSA_WITH_AES_128_GCM_SHA256" in data.step_errors["robot"]


def test_a_certificate_handshake_never_answered_is_not_observed(scanned: dict[str, TlsData]) -> None:
    """The server holds an ECDSA and an RSA certificate and drops the handshake that would get
    the RSA one: sslyze left that deployment out, and the ECDSA one alone was judged."""
    data = scanned["rsa-certificate-dropped"]
    assert SERVERS["rsa-certificate-dropped"].misbehaved == 2  # asked once more, no further
    assert "certificate_info" in data.incomplete
    assert "not observed" in data.step_errors["certificate_info"]


def test_a_certificate_handshake_dropped_once_is_asked_again(scanned: dict[str, TlsData]) -> None:
    data = scanned["rsa-certificate-dropped-once"]
    assert SERVERS["rsa-certificate-dropped-once"].misbehaved == 1
    assert data.certificate is not None
    keys = {data.certificate.key_type, *(other.key_type for other in data.other_certificates)}
    assert keys == {"EC", "RSA"}
    assert "certificate_info" not in data.incomplete
