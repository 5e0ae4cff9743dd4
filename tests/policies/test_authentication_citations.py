"""SSH-PASSWORD-AUTH passes on a server that takes public keys only: one factor. It cites the
clause on password authentication (TCVN 14423:2026 x.6.2.2, standards.md A2 "Authentication
strength"), never the multi-factor one (x.6.2.4), which a key-only login does not meet either."""

import re
from functools import cache

import pytest

from attt.scanner.models.policy import ResolvedRule
from attt.scanner.policy import bundled_policy_ids, load_policy
from attt.scanner.registry import Registry

LEVELS = (1, 2, 3, 4, 5)
MFA_CLAUSE = re.compile(r"(?<![\d.])\d\.6\.2\.4(?![\d.])")
# standards.md A2 read 4.6.2.2 and 5.6.2.2 (levels 2 and 3); the others follow the structure.
READ_LEVELS = {2, 3}


@cache
def _password_rules() -> list[tuple[str, ResolvedRule]]:
    registry = Registry.load()
    return [
        (policy_id, rule)
        for policy_id in bundled_policy_ids()
        for rule in load_policy(policy_id, registry).rules
        if rule.control == "ssh.password_auth_disabled"
    ]


@pytest.mark.parametrize("n", LEVELS)
def test_the_password_rule_cites_the_password_clause_of_each_level(n: int) -> None:
    [rule] = [r for policy_id, r in _password_rules() if policy_id == f"vn-level-{n}"]
    cited = [r for r in rule.references if r.standard == "TCVN 14423:2026" and r.cited_for(n)]
    assert [r.clause.split(" ")[0] for r in cited if r.clause] == [f"{n + 2}.6.2.2"]
    [reference] = cited
    assert reference.confidence == ("secondary" if n in READ_LEVELS else "unverified")


def test_no_rule_offers_a_key_only_login_as_multi_factor() -> None:
    assert _password_rules()
    for policy_id, rule in _password_rules():
        for reference in rule.references:
            clause = reference.clause or ""
            assert not MFA_CLAUSE.search(clause), f"{policy_id}/{rule.id}: {reference}"
            assert "đa yếu tố" not in clause and "multi-factor" not in clause.lower()
        # The remediation says what a key alone is, and where multi-factor authentication is asked.
        assert "một yếu tố" in rule.remediation.vi and "one factor" in rule.remediation.en
        assert "6.2.4" in rule.remediation.vi and "6.2.4" in rule.remediation.en
