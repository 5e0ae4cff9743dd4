"""An SMTP server that lists STARTTLS in its EHLO reply and then declines the command (RFC 3207's
454 "TLS not available due to temporary reason") has TLS that this scan did not see: an error,
never "a service without TLS" (every TLS rule not applicable). One that does not list STARTTLS
is a mail server without TLS, an observed fact. An IMAP server too busy to talk (BYE) or a POP3
server that hangs up before any command (or an LDAP server before its StartTLS response) did
not refuse STARTTLS either: `VN-MAIL-CLEARTEXT` failed the mail servers for "logins travel in
cleartext", and every TLS rule was not applicable."""

import time

import pytest

from attt.checks.tls import _sslyze
from attt.checks.tls.models import TlsData
from tests.servers.flaky_tls import (
    IMAP_BUSY,
    LDAP_HANGS_UP,
    POP3_HANGS_UP,
    SMTP_DECLINES,
    SMTP_NEVER_HELLO,
    SMTP_PORT,
    SMTP_WITHOUT_TLS,
    mail_servers,
)


@pytest.fixture(scope="module")
def outcomes() -> dict[str, _sslyze.ScanOutcome]:
    endpoints = {
        SMTP_DECLINES: _sslyze.Endpoint(ip=SMTP_DECLINES, port=SMTP_PORT, starttls="smtp"),
        SMTP_WITHOUT_TLS: _sslyze.Endpoint(ip=SMTP_WITHOUT_TLS, port=SMTP_PORT, starttls="smtp"),
        IMAP_BUSY: _sslyze.Endpoint(ip=IMAP_BUSY, port=143, starttls="imap"),
        POP3_HANGS_UP: _sslyze.Endpoint(ip=POP3_HANGS_UP, port=110, starttls="pop3"),
        LDAP_HANGS_UP: _sslyze.Endpoint(ip=LDAP_HANGS_UP, port=389, starttls="ldap"),
    }
    with mail_servers():
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


@pytest.mark.parametrize("ip", [IMAP_BUSY, POP3_HANGS_UP, LDAP_HANGS_UP])
def test_a_service_that_hangs_up_did_not_refuse_the_upgrade(outcomes, ip):
    outcome = outcomes[ip]
    # Whether the upgrade command meets a closed socket or a reset is a race: either is an error.
    assert isinstance(outcome, _sslyze.ScanFailure), outcome


def test_an_upgrade_never_followed_by_a_server_hello_ends_within_the_silence_budget():
    endpoint = _sslyze.Endpoint(ip=SMTP_NEVER_HELLO, port=SMTP_PORT, starttls="smtp")
    silence = 3.0
    with mail_servers():
        started = time.monotonic()
        outcome = _sslyze.scan(
            [endpoint], _sslyze.ScanOptions(connect_timeout=1, deadline=30, silence=silence)
        )
        seconds = time.monotonic() - started
    assert isinstance(outcome[endpoint], _sslyze.ScanFailure), outcome
    assert seconds < silence + 1
