"""FTP and mail judged on what they answer to AUTH TLS / STARTTLS, and the extended master
secret judged on TLS 1.2 itself: real vsftpd and OpenSSL servers (tests/servers/upgrade.py)."""

import datetime as dt
from typing import Any

import pytest

from attt.checks.tls import TlsData, _sslyze
from attt.checks.tls.controls import CONTROLS
from attt.checks.tls.models import StartTls
from attt.scanner.models.base import Severity
from attt.scanner.models.policy import ResolvedRule
from attt.scanner.policy import load_policy
from attt.scanner.registry import Registry
from tests import factories
from tests.servers.upgrade import UpgradeLab

P, F, NA = "pass", "fail", "not_applicable"
STARTTLS: dict[str, StartTls | None] = {"ftps": "ftp", "ftp": "ftp", "imap-plain": "imap", "no-ems": None}


@pytest.fixture(scope="module")
def scanned(upgrade_servers: UpgradeLab) -> dict[str, _sslyze.ScanOutcome]:
    endpoints = {
        name: _sslyze.Endpoint(ip=s.ip, port=s.port, sni=s.hostname, starttls=STARTTLS[name])
        for name, s in upgrade_servers.servers.items()
    }
    options = _sslyze.ScanOptions(connect_timeout=3, deadline=90, trust_anchors=(upgrade_servers.ca_file,))
    outcomes = _sslyze.scan(list(endpoints.values()), options)
    return {name: outcomes[endpoint] for name, endpoint in endpoints.items()}


@pytest.fixture(scope="module")
def rules() -> dict[str, ResolvedRule]:
    # vn-level-2 holds the baseline (PORT-FTP, the TLS rules) and the mail rule.
    return {rule.id: rule for rule in load_policy("vn-level-2", Registry.load()).rules}


def _data(scanned: dict[str, _sslyze.ScanOutcome], name: str) -> TlsData:
    outcome = scanned[name]
    assert isinstance(outcome, TlsData), f"{name}: {outcome}"
    return TlsData.model_validate(outcome.model_dump(mode="json"))


def _judge(rule: ResolvedRule, data: TlsData) -> Any:
    return CONTROLS[rule.control].judge(data, rule.params, factories.target(address="127.0.57.1"))


def test_explicit_ftps_is_judged_as_tls(
    scanned: dict[str, _sslyze.ScanOutcome], rules: dict[str, ResolvedRule]
) -> None:
    data = _data(scanned, "ftps")
    assert (data.starttls, data.starttls_refused) == ("ftp", False)
    assert "TLSv1.2" in data.protocols and data.certificate is not None
    assert _judge(rules["PORT-FTP"], data).status == P
    # Its TLS is judged like any other endpoint's.
    assert _judge(rules["TLS-CERT-TRUSTED"], data).status == P
    assert _judge(rules["TLS-MIN-TLS12"], data).status == P


def test_plain_ftp_fails_and_has_no_tls_to_judge(
    scanned: dict[str, _sslyze.ScanOutcome], rules: dict[str, ResolvedRule]
) -> None:
    data = _data(scanned, "ftp")
    assert (data.starttls, data.starttls_refused, data.protocols) == ("ftp", True, ())
    verdict = _judge(rules["PORT-FTP"], data)
    assert verdict.status == F and "FTP service refused the upgrade to TLS" in verdict.message
    for rule_id in ("TLS-MIN-TLS12", "TLS-CERT-TRUSTED", "TLS-VULN-PROTOCOL", "TLS-DH-WEAK", "TLS-HSTS"):
        assert _judge(rules[rule_id], data).status == NA, rule_id
    assert _judge(rules["VN-MAIL-CLEARTEXT"], data).status == NA  # not a mail endpoint


def test_mail_without_starttls_fails_at_medium(
    scanned: dict[str, _sslyze.ScanOutcome], rules: dict[str, ResolvedRule]
) -> None:
    data = _data(scanned, "imap-plain")
    assert (data.starttls, data.starttls_refused) == ("imap", True)
    assert _judge(rules["VN-MAIL-CLEARTEXT"], data).status == F
    assert rules["VN-MAIL-CLEARTEXT"].severity.rank <= Severity.MEDIUM.rank
    assert _judge(rules["PORT-FTP"], data).status == NA


def test_extended_master_secret_is_tested_on_tls12(
    scanned: dict[str, _sslyze.ScanOutcome], rules: dict[str, ResolvedRule]
) -> None:
    # sslyze alone says "supported" because TLS 1.3 is offered; the TLS 1.2 handshake says no.
    data = _data(scanned, "no-ems")
    assert data.protocols == ("TLSv1.2", "TLSv1.3")
    assert data.vulnerabilities.extended_master_secret is True
    verdict = _judge(rules["TLS-VULN-PROTOCOL"], data)
    assert verdict.status == F and "extended_master_secret" in verdict.message
    # The FTPS server (OpenSSL defaults) does use it on TLS 1.2.
    assert _data(scanned, "ftps").vulnerabilities.extended_master_secret is False


def test_certificate_lifetime_is_whole_days_rounded_down() -> None:
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    assert _sslyze.lifetime_days(start, start + dt.timedelta(days=366, hours=23)) == 366
    assert _sslyze.lifetime_days(start, start + dt.timedelta(days=90)) == 90
    assert _sslyze.lifetime_days(start, start + dt.timedelta(days=89, seconds=86399)) == 89
