"""Certificate chains as servers really send them (tests/servers/tls_chains.py, 127.0.222.0/24):
the key and signature rules judge every certificate between the leaf and its root, as
observed; a certificate of that path never observed makes them `error`, never `pass`."""

import pytest

from attt.checks.tls import _sslyze
from attt.checks.tls.controls import (
    CONTROLS,
    ExpiryParams,
    KeyParams,
    MozillaParams,
    SignatureParams,
    mozilla_deviations,
)
from attt.checks.tls.models import TlsData
from attt.scanner.plugin import NoParams, Verdict
from tests import factories
from tests.checks.tls.scanning import scan_stored
from tests.servers.tls_chains import CHAINS, ChainLab, chain_lab


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> dict[str, TlsData]:
    with chain_lab(tmp_path_factory.mktemp("chains")) as running:
        return _scan(running)


def _scan(running: ChainLab) -> dict[str, TlsData]:
    endpoints = {
        name: _sslyze.Endpoint(ip=s.ip, port=s.port, sni=s.hostname, http=False)
        for name, s in running.servers.items()
    }
    options = _sslyze.ScanOptions(
        connect_timeout=2, deadline=90, silence=10, trust_anchors=(running.ca_file,)
    )
    return scan_stored(endpoints, options)


def _judge(data: TlsData, control: str, params: KeyParams | SignatureParams) -> Verdict:
    target = factories.target(address="127.0.222.1", hostname=data.sni)
    return CONTROLS[control].judge(data, params, target)


def _statuses(data: TlsData) -> tuple[str, str]:
    return (
        _judge(data, "tls.certificate_key", KeyParams()).status,
        _judge(data, "tls.certificate_signature", SignatureParams()).status,
    )


def test_every_chain_was_scanned(lab: dict[str, TlsData]) -> None:
    assert set(lab) == set(CHAINS)


@pytest.mark.parametrize("name", ["sound", "out-of-order"])
def test_a_sound_chain_passes_in_any_order(lab: dict[str, TlsData], name: str) -> None:
    cert = lab[name].certificate
    assert cert is not None and cert.trusted, cert
    assert _statuses(lab[name]) == ("pass", "pass")


def test_an_intermediate_with_a_weak_key_fails_the_key_rule(lab: dict[str, TlsData]) -> None:
    """The leaf's key is sound (EC P-256); the intermediate that signs it is RSA-1024: anyone who
    factors it issues certificates for any name under that CA."""
    verdict = _judge(lab["weak-key-intermediate"], "tls.certificate_key", KeyParams())
    assert verdict.status == "fail", verdict.message
    assert "RSA 1024" in verdict.message and "RSA 1024" in (verdict.vi or "")


def test_an_intermediate_signed_with_sha1_fails_the_signature_rule(lab: dict[str, TlsData]) -> None:
    verdict = _judge(lab["sha1-intermediate"], "tls.certificate_signature", SignatureParams())
    assert verdict.status == "fail", verdict.message
    assert "sha1" in verdict.message


def test_an_intermediate_not_sent_is_not_observed(lab: dict[str, TlsData]) -> None:
    """The leaf's issuer (signed with SHA-1) was neither sent nor among the anchors: the
    signature and key rules cannot say it is sound."""
    data = lab["sha1-intermediate-missing"]
    assert data.certificate is not None and not data.certificate.trusted
    for control, params in (
        ("tls.certificate_key", KeyParams()),
        ("tls.certificate_signature", SignatureParams()),
    ):
        verdict = _judge(data, control, params)
        assert verdict.status == "error", (control, verdict.message)
        assert "SHA-1 intermediate" in verdict.message, verdict.message
        assert "SHA-1 intermediate" in (verdict.vi or "")


def test_every_certificate_the_server_deploys_is_judged(lab: dict[str, TlsData]) -> None:
    """A client offering only RSA authentication gets an expired RSA certificate; the ECDSA one
    the others get is sound. The expiry rule fails, naming the RSA certificate."""
    data = lab["expired-rsa-beside-ecdsa"]
    assert data.certificate is not None and data.certificate.key_type == "EC"
    assert [other.key_type for other in data.other_certificates] == ["RSA"]
    verdict = CONTROLS["tls.certificate_expiry"].judge(
        data, ExpiryParams(), factories.target(address="127.0.222.1", hostname=data.sni)
    )
    assert verdict.status == "fail", verdict.message
    assert "RSA" in verdict.message and "RSA" in (verdict.vi or "")
    deviations = mozilla_deviations(data, MozillaParams())
    assert any(d.startswith("RSA certificate (") and "not trusted" in d for d in deviations), deviations


def test_a_stapled_ocsp_error_is_no_stapling(lab: dict[str, TlsData]) -> None:
    """The server staples its responder's "try later": no status of the certificate reaches the
    client, which is what stapling is for."""
    data = lab["ocsp-try-later-stapled"]
    assert data.ocsp_responder is not None
    assert data.ocsp_stapling is False
    assert data.ocsp_stapled_status == "tryLater"
    deviations = mozilla_deviations(data, MozillaParams())
    assert any("OCSP" in d and "tryLater" in d for d in deviations), deviations


def test_a_certificate_its_own_staple_says_is_revoked_is_not_trusted(lab: dict[str, TlsData]) -> None:
    """The chain validates, but the OCSP response the server staples (signed by the issuer)
    says the certificate is revoked: every client that reads it refuses the connection."""
    data = lab["ocsp-revoked-stapled"]
    assert data.certificate is not None and data.certificate.stapled_status == "revoked"
    verdict = CONTROLS["tls.certificate_trusted"].judge(
        data, NoParams(), factories.target(address="127.0.222.1", hostname=data.sni)
    )
    assert verdict.status == "fail", verdict.message
    assert "revoked" in verdict.message
