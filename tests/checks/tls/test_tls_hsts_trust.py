"""tls.hsts counts HSTS only where browsers keep it (RFC 6797 8.1): sent with a certificate they
refuse, the header is ignored. The judge alone on built observations, then the tls probe against
the nginx sites of tests/servers/web.py `hsts_web`, which differ by their certificate only."""

import datetime as dt
from typing import Any

import pytest

from attt.checks.tls import _sslyze
from attt.checks.tls.controls import CONTROLS, HstsParams
from attt.checks.tls.models import Hsts, TlsData
from attt.scanner.plugin import Verdict
from tests import factories
from tests.checks.tls.scanning import scan_stored
from tests.checks.tls.test_tls import _synthetic
from tests.servers.web import HSTS_SITES, WebLab

HSTS = Hsts(max_age=63072000, include_subdomains=True, preload=False)


def _judge(data: TlsData, hostname: str | None = "x.attt.test") -> Verdict:
    target = factories.target(address="127.0.245.2", hostname=hostname)
    return CONTROLS["tls.hsts"].judge(data, HstsParams(), target)


def _with_certificate(**changes: Any) -> TlsData:
    data = _synthetic(http=True, hsts=HSTS)
    assert data.certificate is not None
    return data.model_copy(update={"certificate": data.certificate.model_copy(update=changes)})


def test_hsts_over_a_certificate_browsers_accept_passes() -> None:
    assert _judge(_with_certificate()).status == "pass"


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"trusted": False, "self_signed": True}, "self-signed"),
        ({"trusted": False, "trust_error": "unable to get local issuer certificate"}, "local issuer"),
        ({"not_after": dt.datetime(2026, 10, 1, tzinfo=dt.UTC)}, "not valid at scan time"),
        ({"not_before": dt.datetime(2026, 12, 1, tzinfo=dt.UTC)}, "not valid at scan time"),
        ({"hostname_matches": False}, "not valid for x.attt.test"),
        ({"stapled_status": "revoked"}, "revoked"),
    ],
)
def test_hsts_over_a_refused_certificate_fails_and_says_why(changes: dict[str, Any], why: str) -> None:
    verdict = _judge(_with_certificate(**changes))
    assert verdict.status == "fail" and why in verdict.message, verdict.message
    assert "browsers ignore it" in verdict.message and "RFC 6797 8.1" in verdict.message
    assert verdict.vi is not None and "bỏ qua" in verdict.vi


def test_an_untrusted_chain_names_the_setting_that_declares_a_provinces_ca() -> None:
    verdict = _judge(_with_certificate(trusted=False))
    assert "settings.tls.trust_anchors" in verdict.message


@pytest.mark.parametrize(
    ("data", "hostname", "why"),
    [
        # RFC 6797 8.1.1: browsers keep no HSTS for an IP address, and no name was matched.
        (_with_certificate(), None, "RFC 6797 8.1.1"),
        # Matched against another name (a run stored before the host's name was used).
        (_with_certificate(hostname="old.attt.test"), "x.attt.test", "was not judged for x.attt.test"),
    ],
)
def test_hsts_whose_certificate_was_not_judged_for_the_name_is_an_error(
    data: TlsData, hostname: str | None, why: str
) -> None:
    verdict = _judge(data, hostname)
    assert verdict.status == "error" and why in verdict.message, verdict.message


def test_a_missing_header_still_fails_whatever_the_certificate() -> None:
    data = _with_certificate(trusted=False).model_copy(update={"hsts": None})
    assert _judge(data).status == "fail"


@pytest.fixture(scope="module")
def scanned(hsts_web: WebLab) -> dict[str, TlsData]:
    endpoints = {
        name: _sslyze.Endpoint(ip=hsts_web[name].ip, port=443, sni=hsts_web[name].hostname)
        for name in HSTS_SITES
    }
    options = _sslyze.ScanOptions(
        connect_timeout=3, deadline=90, silence=10, trust_anchors=(hsts_web.ca_file,)
    )
    return scan_stored(endpoints, options)


@pytest.mark.parametrize(
    ("site", "status", "why"),
    [
        ("trusted", "pass", "HSTS max-age 63072000"),
        ("expired", "fail", "not valid at scan time"),
        ("mismatch", "fail", "not valid for mismatch.web.attt.test"),
        ("selfsigned", "fail", "self-signed"),
    ],
)
def test_hsts_from_a_real_server_counts_only_with_a_certificate_browsers_accept(
    scanned: dict[str, TlsData], hsts_web: WebLab, site: str, status: str, why: str
) -> None:
    data = scanned[site]
    assert data.hsts is not None and data.hsts.max_age == 63072000  # the header itself is sound
    verdict = _judge(data, hsts_web[site].hostname)
    assert (verdict.status, why in verdict.message) == (status, True), verdict.message
