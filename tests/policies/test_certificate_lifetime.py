"""The level-4 certificate-lifetime rule holds a certificate to the CA/Browser Forum cap that was
in force when it was issued (SC-081v3 lowers the cap in steps, each for certificates issued from
its date on), and never to less than Mozilla's 366 days that levels 1-3 apply. The endpoint is
the TLS tests' synthetic one; only its certificate's dates change."""

import datetime as dt

import pytest

from attt.checks.tls.controls import CONTROLS
from attt.checks.tls.models import TlsData
from attt.scanner.models.policy import ResolvedRule
from attt.scanner.policy import load_policy
from attt.scanner.registry import Registry
from tests import factories
from tests.checks.tls.test_tls import _synthetic

SCANNED = dt.datetime(2027, 6, 1, tzinfo=dt.UTC)


def _rule(level: int) -> ResolvedRule:
    policy = load_policy(f"vn-level-{level}", Registry.load())
    return next(r for r in policy.rules if r.id == "TLS-CERT-LIFETIME")


def _data(issued: dt.date, days: int) -> TlsData:
    start = dt.datetime.combine(issued, dt.time(12), tzinfo=dt.UTC)
    endpoint = _synthetic(scanned_at=SCANNED)
    assert endpoint.certificate is not None
    cert = endpoint.certificate.model_copy(
        update={"not_before": start, "not_after": start + dt.timedelta(days=days), "lifetime_days": days}
    )
    return endpoint.model_copy(update={"certificate": cert})


def _status(level: int, issued: dt.date, days: int) -> str:
    rule = _rule(level)
    judge = CONTROLS[rule.control].judge
    return judge(_data(issued, days), rule.params, factories.target(hostname="x.attt.test")).status


@pytest.mark.parametrize(
    ("issued", "days", "status"),
    [
        # Issued before SC-081v3's first step: 300 days was allowed, Mozilla's 366 still holds.
        (dt.date(2026, 2, 1), 300, "pass"),
        (dt.date(2026, 2, 1), 380, "fail"),
        # From 15 March 2026: 200 days; from 15 March 2027: 100 days.
        (dt.date(2026, 3, 15), 200, "pass"),
        (dt.date(2026, 4, 1), 250, "fail"),
        (dt.date(2027, 3, 14), 200, "pass"),
        (dt.date(2027, 4, 1), 150, "fail"),
        (dt.date(2027, 4, 1), 90, "pass"),
    ],
)
def test_level_4_judges_the_cap_in_force_on_the_issue_date(issued: dt.date, days: int, status: str) -> None:
    assert _status(4, issued, days) == status
    assert _status(5, issued, days) == status


def test_the_failure_names_the_cap_and_the_date_it_took_effect() -> None:
    rule = _rule(4)
    verdict = CONTROLS[rule.control].judge(
        _data(dt.date(2026, 4, 1), 250), rule.params, factories.target(hostname="x.attt.test")
    )
    assert verdict.status == "fail"
    assert "200" in str(verdict.expected) and "2026-03-15" in str(verdict.expected)


def test_levels_1_to_3_keep_mozillas_cap_whatever_the_issue_date() -> None:
    for level in (1, 2, 3):
        assert _status(level, dt.date(2026, 4, 1), 300) == "pass"
        assert _status(level, dt.date(2026, 4, 1), 367) == "fail"
