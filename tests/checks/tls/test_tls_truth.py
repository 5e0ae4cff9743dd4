"""Verdicts that rested on a fact read wrong, each against real servers on 127.0.231.0/24
(tests/servers/tls_truth.py, and tests/servers/flaky_tls.py's servers that leave a handshake
unanswered): a self-signed certificate the operator trusts, a wildcard over a public suffix,
a handshake `--tls-exhaustive` got no answer to once, and an HTTP answer over 4 KB."""

from typing import Any

import pytest

from attt.checks.tls import _sslyze
from attt.checks.tls.controls import CONTROLS
from attt.checks.tls.models import TlsData
from attt.scanner.plugin import NoParams, Verdict
from tests import factories
from tests.servers.tls import TlsServer
from tests.servers.tls_truth import BIG_HEADERS, PINNED, STRANGER, WILDCARD, truth_lab


@pytest.fixture(scope="module")
def scanned(tmp_path_factory: pytest.TempPathFactory) -> dict[TlsServer, TlsData]:
    """One scan of every server of the lab, given the test CA and the pinned certificate as
    anchors; the observations as stored."""
    with truth_lab(tmp_path_factory.mktemp("truth")) as lab:
        servers = [PINNED, STRANGER, WILDCARD, *(server for server, _ in BIG_HEADERS.values())]
        endpoints = {
            s: _sslyze.Endpoint(ip=s.ip, port=s.port, sni=s.hostname, http=s.name.startswith("big"))
            for s in servers
        }
        options = _sslyze.ScanOptions(
            connect_timeout=2, deadline=90, silence=10, trust_anchors=(lab.pinned, lab.ca_file)
        )
        outcomes = _sslyze.scan(list(endpoints.values()), options)
    found = {}
    for server, endpoint in endpoints.items():
        outcome = outcomes[endpoint]
        assert isinstance(outcome, TlsData), (server, outcome)
        found[server] = TlsData.model_validate(outcome.model_dump(mode="json"))
    return found


def _judge(data: TlsData, control: str, server: TlsServer, params: Any = None) -> Verdict:
    target = factories.target(address=server.ip, hostname=server.hostname)
    return CONTROLS[control].judge(data, params or NoParams(), target)


def test_a_self_signed_certificate_configured_as_an_anchor_is_trusted(scanned):
    """The validator wants an anchor to be a CA above the leaf; an operator who configured the
    server's own self-signed certificate trusts exactly that certificate."""
    cert = scanned[PINNED].certificate
    assert cert is not None and cert.self_signed and cert.trusted, cert
    assert _judge(scanned[PINNED], "tls.certificate_trusted", PINNED).status == "pass"
    assert cert.chain_missing is None


def test_a_self_signed_certificate_nobody_configured_is_not_trusted(scanned):
    verdict = _judge(scanned[STRANGER], "tls.certificate_trusted", STRANGER)
    assert verdict.status == "fail", verdict.message
    assert "self-signed" in verdict.message


def test_a_wildcard_over_a_public_suffix_matches_no_name(scanned):
    """`*.gov.vn` has the shape of hatinh.gov.vn, but gov.vn is a registry's: no CA may issue
    that wildcard and no browser accepts it."""
    cert = scanned[WILDCARD].certificate
    assert cert is not None and cert.trusted and cert.sans == ("*.gov.vn",)
    verdict = _judge(scanned[WILDCARD], "tls.hostname_matches", WILDCARD)
    assert verdict.status == "fail", verdict.message
    assert "*.gov.vn" in verdict.message and "public suffix" in verdict.message
    assert "hậu tố công cộng" in (verdict.vi or "")
