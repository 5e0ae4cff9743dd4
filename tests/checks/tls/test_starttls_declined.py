"""An SMTP server that lists STARTTLS in its EHLO reply and then declines the command (RFC 3207's
454 "TLS not available due to temporary reason") has TLS that this scan did not see: an error,
never "a service without TLS" (every TLS rule not applicable). One that does not list STARTTLS
is a mail server without TLS, an observed fact."""

import pytest

from attt.checks.tls import _sslyze
from attt.checks.tls.models import TlsData
from tests.servers.flaky_tls import SMTP_DECLINES, SMTP_PORT, SMTP_WITHOUT_TLS, smtp_servers


@pytest.fixture(scope="module")
def outcomes() -> dict[str, _sslyze.ScanOutcome]:
    endpoints = {
        ip: _sslyze.Endpoint(ip=ip, port=SMTP_PORT, starttls="smtp")
        for ip in (SMTP_DECLINES, SMTP_WITHOUT_TLS)
    }
    with smtp_servers():
        scanned = _sslyze.scan(
            list(endpoints.values()), _sslyze.ScanOptions(connect_timeout=2, deadline=30, silence=8)
        )
    return {ip: scanned[endpoint] for ip, endpoint in endpoints.items()}


def test_starttls_listed_then_declined_is_an_error_with_the_reply(outcomes):
    outcome = outcomes[SMTP_DECLINES]
    assert isinstance(outcome, _sslyze.ScanFailure), outcome
    assert "lists STARTTLS" in outcome.reason
    assert "TLS not available due to temporary reason" in outcome.reason


def test_starttls_not_listed_is_a_mail_server_without_tls(outcomes):
    outcome = outcomes[SMTP_WITHOUT_TLS]
    assert isinstance(outcome, TlsData) and outcome.starttls_refused
