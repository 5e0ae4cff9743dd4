"""A certificate that names the host only in a way browsers refuse is not verified, in the web
check as in the tls check: its only name for the host is a wildcard over a public suffix, or
the host is in its subject CN and in no DNS name of its subjectAltName.

The web check verifies HTTPS with Python's `ssl`, whose name check (OpenSSL's) knows no public
suffix and falls back on the subject CN: it accepted `*.gov.vn` for `portal.gov.vn`, and a
certificate with no subjectAltName whose CN is the host, so the HSTS and redirection grades
rested on a verification a browser refuses, while the tls check failed the same certificate's
name. Real s_servers of tests/servers/cert_names.py, each asked for by its host name pinned to
its loopback address.
"""

import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from attt.checks.tls import TlsData, _sslyze
from attt.checks.web import WebCheck, WebData, WebSettings
from attt.checks.web.observatory import grade
from attt.scanner.models.target import Host, Service, Target
from attt.scanner.plugin import ProbeContext
from tests.factories import system
from tests.servers.cert_names import SERVERS, cert_name_servers


@pytest.fixture(scope="module")
def ca_file(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with cert_name_servers(tmp_path_factory.mktemp("cert-names")) as ca:
        yield ca


@pytest.fixture(scope="module")
def web(ca_file: Path) -> dict[str, WebData]:
    """The web check's HTTPS observation of each server."""
    return {name: _web(ca_file, name) for name in SERVERS}


def _web(ca: Path, name: str, *, by_address: bool = False) -> WebData:
    server = SERVERS[name].server
    hostname = None if by_address else server.hostname
    host = Host(address=server.ip, hostname=hostname, services=(Service(port=443, kind="tls"),))
    target = Target(system=system(id="cong"), host=host, ip=server.ip)
    context = ProbeContext(timeout=20, settings=WebSettings(trust_anchors=(str(ca),)))
    [https] = [o for o in WebCheck().probe(target, context) if o.port == 443]
    assert https.status == "ok", https.error
    return WebData.model_validate(https.data)


@pytest.mark.parametrize(
    ("name", "alt_names"),
    [
        ("suffix", (("DNS", "*.gov.vn"),)),
        ("cn only", None),
        ("cn and address", (("IP Address", "127.0.244.2"),)),
    ],
)
def test_python_ssl_alone_accepts_what_browsers_refuse(
    ca_file: Path, name: str, alt_names: tuple[tuple[str, str], ...] | None
) -> None:
    """Why the web check looks again: the handshake it verifies with succeeds."""
    server = SERVERS[name].server
    context = ssl.create_default_context(cafile=str(ca_file))
    with (
        socket.create_connection((server.ip, server.port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=server.hostname) as tls,
    ):
        cert = tls.getpeercert()
    assert cert is not None and cert.get("subjectAltName") == alt_names


def test_the_web_check_does_not_verify_it_and_says_why(web: dict[str, WebData]) -> None:
    data = web["suffix"]
    assert data.certificate_verified is False
    assert data.certificate_refusal is not None
    assert "*.gov.vn" in data.certificate_refusal and "public suffix" in data.certificate_refusal
    assert data.answer.status == 200  # the site is still read, as a visitor who clicks through
    rating = grade(data).results
    assert rating["strict-transport-security"] == "hsts-invalid-cert"


@pytest.mark.parametrize(
    ("name", "why"),
    [("cn only", "has no subjectAltName"), ("cn and address", "has no DNS name in its subjectAltName")],
)
def test_a_name_in_the_subject_cn_alone_is_not_verified(web: dict[str, WebData], name: str, why: str) -> None:
    data = web[name]
    assert data.certificate_verified is False
    assert data.certificate_refusal == (
        f"Hostname mismatch: the certificate {why}, so only its subject CN names cong.hatinh.gov.vn;"
        " browsers ignore the CN"
    )
    assert data.answer.status == 200
    assert grade(data).results["strict-transport-security"] == "hsts-invalid-cert"


def test_an_address_is_verified_by_its_address_entry(ca_file: Path) -> None:
    """The same certificate asked for by the address its subjectAltName holds: valid, as in a
    browser, whatever the subject CN says."""
    data = _web(ca_file, "cn and address", by_address=True)
    assert data.certificate_verified is True and data.certificate_refusal is None


@pytest.mark.parametrize("name", ["suffix and name", "province"])
def test_a_valid_name_is_verified_as_before(web: dict[str, WebData], name: str) -> None:
    data = web[name]
    assert data.certificate_verified is True and data.certificate_refusal is None
    assert grade(data).results["strict-transport-security"] == "hsts-not-implemented"


@pytest.mark.slow
def test_the_tls_check_reads_each_name_the_same_way(ca_file: Path, web: dict[str, WebData]) -> None:
    endpoints = {
        name: _sslyze.Endpoint(ip=named.server.ip, port=named.server.port, sni=named.server.hostname)
        for name, named in SERVERS.items()
    }
    options = _sslyze.ScanOptions(connect_timeout=3, deadline=90, silence=10, trust_anchors=(ca_file,))
    outcomes = _sslyze.scan(list(endpoints.values()), options)
    for name, endpoint in endpoints.items():
        outcome = outcomes[endpoint]
        assert isinstance(outcome, TlsData) and outcome.certificate is not None, outcome
        if SERVERS[name].sans:  # with no subjectAltName, the chain has no name to be validated for
            assert outcome.certificate.trusted, name
        assert outcome.certificate.hostname_matches == (name in ("suffix and name", "province")), name
        assert outcome.certificate.hostname_matches == web[name].certificate_verified, name
