"""VN-SMTP-STARTTLS: an SMTP service (25, 587) offers STARTTLS (Circular 39/2017 item 4.4, SMTPS
mandatory), judged on real SMTP servers (tests/servers/smtp.py) through the tls probe and the
evaluation of the level policies: `pass` when STARTTLS is offered and the TLS handshake completes,
`fail` when the EHLO reply does not list it, `error` when the answer was not observed (declined
for now with 454, a hang-up, silence)."""

from datetime import UTC, datetime
from pathlib import Path

import pytest

from attt.checks.tls import TlsCheck, TlsData, TlsSettings
from attt.scanner.evaluate import evaluate
from attt.scanner.models.finding import Finding
from attt.scanner.models.observation import Observation
from attt.scanner.models.target import Host, Service, SystemInfo, Target
from attt.scanner.plugin import ProbeContext
from attt.scanner.policy import load_policy
from attt.scanner.registry import Registry
from tests.servers.smtp import SERVERS, Behaviour, smtp_servers

RULE = "VN-SMTP-STARTTLS"
TIMEOUT = 30.0


def _target(behaviour: Behaviour, level: int = 2) -> Target:
    ip, port = SERVERS[behaviour]
    info = SystemInfo(id=behaviour, name="Thư điện tử", owner="Sở KH&CN", level=level)
    return Target(system=info, host=Host(address=ip, services=(Service(port=port, kind="smtp"),)), ip=ip)


@pytest.fixture(scope="module")
def observations(tmp_path_factory: pytest.TempPathFactory) -> dict[Behaviour, list[Observation]]:
    with smtp_servers(Path(tmp_path_factory.mktemp("smtp"))):
        return {
            behaviour: list(
                TlsCheck().probe(_target(behaviour), ProbeContext(timeout=TIMEOUT, settings=TlsSettings()))
            )
            for behaviour in SERVERS
        }


def _findings(observations: list[Observation], target: Target) -> list[Finding]:
    registry = Registry.load()
    policy = load_policy(f"vn-level-{target.system.level}", registry)
    return evaluate(
        [target], observations, {target.system.id: [policy]}, registry, {"tls"}, datetime.now(UTC)
    )


def _verdict(observations: dict[Behaviour, list[Observation]], behaviour: Behaviour) -> Finding:
    target = _target(behaviour)
    found = _findings(observations[behaviour], target)
    [finding] = [f for f in found if f.rule_id == RULE or RULE in (f.blocked or ())]
    assert finding.port == SERVERS[behaviour][1]
    return finding


@pytest.mark.parametrize("behaviour", ["starttls", "starttls-submission"])
def test_starttls_offered_and_completed_passes(observations, behaviour: Behaviour) -> None:
    [observation] = observations[behaviour]
    assert observation.status == "ok", observation.error
    assert isinstance(observation.data, TlsData) and observation.data.protocols
    assert _verdict(observations, behaviour).status == "pass"


def test_starttls_not_listed_fails(observations) -> None:
    finding = _verdict(observations, "plain")
    assert finding.status == "fail"
    assert (
        finding.message.en
        == "the SMTP service refused the upgrade to TLS: mail and logins travel in cleartext"
    )


@pytest.mark.parametrize(
    ("behaviour", "why"),
    [
        # sslyze keeps the 454 reply's text, not its code.
        ("declines", "lists STARTTLS but declined to start it (TLS not available)"),
        ("hangs-up", ""),
        ("silent", ""),
    ],
)
def test_an_answer_not_observed_is_an_error(observations, behaviour: Behaviour, why: str) -> None:
    finding = _verdict(observations, behaviour)
    assert (finding.status, finding.kind) == ("error", "probe_error")
    assert why in finding.message.en


def test_the_rule_holds_from_level_2_like_the_mailbox_rule() -> None:
    registry = Registry.load()
    for level in (1, 2, 3, 4, 5):
        rules = {r.id: r for r in load_policy(f"vn-level-{level}", registry).rules}
        if level == 1:
            assert RULE not in rules and "VN-MAIL-CLEARTEXT" not in rules
            continue
        rule = rules[RULE]
        assert rule.applies(_target("plain", level).system)
        assert rule.severity == rules["VN-MAIL-CLEARTEXT"].severity
        assert any(
            r.standard.startswith("TT 39/2017") and (r.clause or "").startswith("4.4")
            for r in rule.references
        )
