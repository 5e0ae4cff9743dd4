"""HSTS counts only where browsers keep it (RFC 6797 8.1): the certificate it came with decides.

The judge alone on built observations first, then the probe against nginx sites that differ
by their certificate only (tests/servers/web.py `hsts_web`)."""

import ssl
from pathlib import Path
from typing import Any

import pytest

from attt.checks.web import WebCheck, WebData, WebSettings
from attt.checks.web.client import verifying_context
from attt.checks.web.controls import HeadersParams
from attt.checks.web.controls import headers as security_headers
from attt.checks.web.observatory import grade
from attt.checks.web.trust import hsts_ignored
from attt.scanner.models.target import Host, Service, Target
from attt.scanner.plugin import NoParams, ProbeContext, Verdict
from tests.checks.web.builders import NAME, answer, web_data
from tests.checks.web.probing import Probed
from tests.checks.web.test_observatory import GOOD
from tests.factories import system, target
from tests.servers.web import WebLab
from tests.servers.web_tricks import TrickyWeb

TARGET = target(hostname=NAME)
WITHOUT_CSP = {k: v for k, v in GOOD.items() if k != "Content-Security-Policy"}


def _judged(**overrides: Any) -> Verdict:
    headers = overrides.pop("headers", GOOD)
    params = overrides.pop("params", HeadersParams())
    return security_headers(web_data(headers=headers, **overrides), params, TARGET)


# --- the judge ------------------------------------------------------------------------------


def test_hsts_over_a_certificate_browsers_accept_passes() -> None:
    assert _judged(certificate_verified=True).status == "pass"


def test_hsts_over_a_refused_certificate_is_not_in_force_and_the_finding_says_why() -> None:
    verdict = _judged(certificate_verified=False, certificate_refusal="certificate has expired")
    assert verdict.status == "fail"
    assert "hsts" in verdict.message and "certificate has expired" in verdict.message
    assert "RFC 6797 8.1" in verdict.message
    # Declaring a CA changes nothing for an expired certificate: no hint of it.
    assert "trust_anchors" not in verdict.message
    assert verdict.vi is not None and "certificate has expired" in verdict.vi and "bỏ qua" in verdict.vi
    assert verdict.observed["headers"]["hsts"].startswith("not in force: ")


def test_an_untrusted_chain_names_the_setting_that_declares_a_provinces_ca() -> None:
    why = "certificate verify failed: unable to get local issuer certificate"
    verdict = _judged(certificate_verified=False, certificate_refusal=why)
    assert verdict.status == "fail" and "settings.web.trust_anchors" in verdict.message


@pytest.mark.parametrize(
    ("unknown", "shown"),
    [
        ("the trust anchor file /x.pem could not be read (No such file)", "/x.pem could not be read"),
        (None, "no browser's handshake was recorded"),  # a run stored before the probe asked
        ("a browser's handshake broke off (TLS handshake broken off: reset)", "broke off"),
    ],
)
def test_hsts_over_a_certificate_whose_trust_is_unknown_is_an_error(unknown: str | None, shown: str) -> None:
    verdict = _judged(certificate_verified=None, certificate_unknown=unknown)
    assert verdict.status == "error" and shown in verdict.message, verdict.message
    assert verdict.observed["headers"]["hsts"].startswith("not known to be in force: ")


def test_another_failing_header_still_fails_when_the_certificate_trust_is_unknown() -> None:
    verdict = _judged(headers=WITHOUT_CSP, certificate_verified=None, certificate_unknown="unreadable")
    assert verdict.status == "fail" and "content-security-policy" in verdict.message
    assert "unreadable" in verdict.message


def test_a_refused_certificate_changes_nothing_for_a_rule_that_does_not_require_hsts() -> None:
    params = HeadersParams(require=("content-security-policy", "x-content-type-options"))
    verdict = _judged(
        params=params, certificate_verified=False, certificate_refusal="self-signed certificate"
    )
    assert verdict.status == "pass", verdict.message


def test_a_site_reached_by_its_address_keeps_no_hsts() -> None:
    # RFC 6797 8.1.1: a host named by an IP literal is never a Known HSTS Host.
    url = "https://127.0.246.10/"
    data = web_data(headers=GOOD, name="127.0.246.10", url=url, answer=answer(url, 200, GOOD))
    verdict = security_headers(data, HeadersParams(), target(address="127.0.246.10"))
    assert verdict.status == "error" and "RFC 6797 8.1.1" in verdict.message, verdict.message


@pytest.mark.parametrize(
    ("verified", "refusal", "status"),
    [(True, None, "pass"), (False, "Hostname mismatch", "fail"), (None, None, "error")],
)
def test_a_redirect_to_another_origin_is_judged_by_that_origins_certificate(
    verified: bool | None, refusal: str | None, status: str
) -> None:
    # The endpoint's own certificate verified; the page the chain ends on is on port 8443.
    final = answer(f"https://{NAME}:8443/app", 200, GOOD).model_copy(
        update={"certificate_verified": verified, "certificate_refusal": refusal}
    )
    first = answer(f"https://{NAME}/", 302, {"Location": f"https://{NAME}:8443/app"})
    data = web_data(headers=GOOD, answer=first, redirects=(final,), certificate_verified=True)
    verdict = security_headers(data, HeadersParams(), TARGET)
    assert verdict.status == status, verdict.message
    assert (refusal or "") in verdict.message
    assert (hsts_ignored(data, final) is None) == (status == "pass")


def test_the_grade_counts_hsts_over_a_refused_certificate_as_invalid_on_any_origin() -> None:
    final = answer(f"https://{NAME}:8443/", 200, GOOD).model_copy(
        update={"certificate_verified": False, "certificate_refusal": "certificate has expired"}
    )
    data = web_data(headers=GOOD, redirects=(final,), certificate_verified=True)
    assert grade(data).results["strict-transport-security"] == "hsts-invalid-cert"


# --- the probe, against nginx --------------------------------------------------------------


def _probe(lab: WebLab, site: str, *anchors: str, hostname: bool = True) -> tuple[Target, WebData]:
    web = lab[site]
    host = Host(
        address=web.ip, hostname=web.hostname if hostname else None, services=(Service(port=443, kind="tls"),)
    )
    found = Target(system=system(id=site, tags=("portal",)), host=host, ip=web.ip)
    settings = WebSettings(min_interval=0, trust_anchors=anchors)
    observations = {o.port: o for o in WebCheck().probe(found, ProbeContext(timeout=20, settings=settings))}
    assert observations[443].status == "ok", observations[443].error
    return found, WebData.model_validate(observations[443].data)


def _headers(found: Target, data: WebData) -> Verdict:
    return security_headers(data, HeadersParams(), found)


def test_hsts_with_a_certificate_from_a_declared_ca_passes(hsts_web: WebLab) -> None:
    found, data = _probe(hsts_web, "trusted", str(hsts_web.ca_file))
    assert data.certificate_verified is True and data.answer.first("strict-transport-security")
    assert _headers(found, data).status == "pass", _headers(found, data).message


def test_the_same_site_without_its_ca_declared_is_not_in_force(hsts_web: WebLab) -> None:
    # The province's own CA counts only once declared (settings.web.trust_anchors): browsers
    # that do not know it refuse the chain, and ignore the header.
    found, data = _probe(hsts_web, "trusted")
    verdict = _headers(found, data)
    assert verdict.status == "fail" and "unable to get local issuer certificate" in verdict.message, (
        verdict.message
    )


@pytest.mark.parametrize(
    ("site", "why"),
    [
        ("expired", "certificate has expired"),
        ("mismatch", "Hostname mismatch"),
        ("selfsigned", "self-signed certificate"),
    ],
)
def test_hsts_with_a_certificate_browsers_refuse_is_not_in_force(
    hsts_web: WebLab, site: str, why: str
) -> None:
    found, data = _probe(hsts_web, site, str(hsts_web.ca_file))
    assert data.certificate_verified is False and data.answer.first("strict-transport-security")
    verdict = _headers(found, data)
    assert verdict.status == "fail", verdict.message
    assert "hsts" in verdict.message and why in verdict.message and "RFC 6797" in verdict.message
    # Every other header is sound: HSTS is the only one listed.
    assert verdict.message.split(": ", 1)[1].startswith("hsts; HSTS not in force: browsers ignore it")


def test_an_unreadable_trust_anchor_leaves_hsts_an_error_and_the_other_rules_judged(
    hsts_web: WebLab, tmp_path: Path
) -> None:
    missing = tmp_path / "province-ca.pem"
    found, data = _probe(hsts_web, "selfsigned", str(missing))
    assert data.certificate_verified is None and data.certificate_unknown is not None
    assert str(missing) in data.certificate_unknown
    verdict = _headers(found, data)
    assert verdict.status == "error" and "could not be read" in verdict.message, verdict.message
    assert WebCheck.controls["web.version_disclosure"].judge(data, NoParams(), found).status == "pass"


def test_a_site_probed_by_its_address_alone_is_an_error(hsts_web: WebLab) -> None:
    found, data = _probe(hsts_web, "trusted", str(hsts_web.ca_file), hostname=False)
    verdict = _headers(found, data)
    assert verdict.status == "error" and "RFC 6797 8.1.1" in verdict.message, verdict.message


def test_a_redirect_to_another_port_is_verified_there(tricky_web: TrickyWeb) -> None:
    probed = Probed(tricky_web)
    data = probed.data("redirect to an unlisted port")
    assert [a.certificate_verified for a in data.redirects] == [True]
    assert probed.verdict("redirect to an unlisted port", "web.headers").status == "pass"


def test_a_self_signed_certificate_declared_as_an_anchor_is_trusted(hsts_web: WebLab) -> None:
    # docs/trust-anchors.md: a department may declare the very self-signed certificate it accepts.
    pinned = hsts_web.access_log.parent / "selfsigned.pem"
    found, data = _probe(hsts_web, "selfsigned", str(pinned))
    assert data.certificate_verified is True
    assert _headers(found, data).status == "pass", _headers(found, data).message


def test_a_trust_store_with_no_certificate_judges_no_chain(
    hsts_web: WebLab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No system store (a minimal container without ca-certificates) and no anchors: every chain
    # would look untrusted, whatever browsers think of it; that is not a refusal observed.
    empty = tmp_path / "no-store"
    empty.mkdir()
    monkeypatch.setenv("SSL_CERT_FILE", str(empty / "none.pem"))
    monkeypatch.setenv("SSL_CERT_DIR", str(empty))
    assert (
        verifying_context(()) == "the trust store holds no certificate (no system CA store, no trust_anchors)"
    )
    assert isinstance(verifying_context((str(hsts_web.ca_file),)), ssl.SSLContext)
    found, data = _probe(hsts_web, "trusted")
    assert data.certificate_verified is None and "holds no certificate" in (data.certificate_unknown or "")
    assert _headers(found, data).status == "error"
