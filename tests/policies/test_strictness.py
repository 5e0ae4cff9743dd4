"""The level-monotonicity comparison must itself catch a weaker rule, or the property test over
the bundled policies would pass vacuously."""

from functools import cache
from typing import Any

import pytest

from attt.scanner.models.base import Severity, Text
from attt.scanner.models.policy import AppliesTo, ResolvedRule
from attt.scanner.registry import Registry
from tests.policies.strictness import FIELDS, VIEWS, weaker_points


@cache
def registry() -> Registry:
    return Registry.load()


def rule(control: str, params: dict[str, Any], **changes: Any) -> ResolvedRule:
    found = registry().control(control)
    assert found is not None, control
    check, spec = found
    values: dict[str, Any] = {
        "id": "R-TEST",
        "control": control,
        "check": check,
        "params": spec.params_model.model_validate(params),
        "severity": Severity.HIGH,
        "applies_to": AppliesTo(),
        "title": Text(vi="Quy tắc thử", en="Test rule"),
        "remediation": Text(vi="Sửa lại", en="Fix it"),
        "references": (),
        "policy": "test",
    }
    return ResolvedRule(**(values | changes))


STRICTER = [
    ("tls.min_version", {"version": "TLSv1.2"}, {"version": "TLSv1.3"}),
    ("tls.certificate_key", {"rsa_min_bits": 2048}, {"rsa_min_bits": 3072}),
    ("tls.certificate_lifetime", {"max_days": 398}, {"max_days": 200}),
    (
        "tls.certificate_lifetime",
        {"schedule": [{"issued_from": "2026-03-15", "max_days": 200}]},
        {
            "schedule": [
                {"issued_from": "2026-03-15", "max_days": 200},
                {"issued_from": "2027-03-15", "max_days": 100},
            ]
        },
    ),
    ("ports.forbidden", {"ports": [23]}, {"ports": [23, 21]}),
    ("ssh.host_key_min_bits", {"rsa": 3072}, {"rsa": 4096}),
    (
        "ssh.config",
        {"expect": {"x": {"equals": "no"}}, "without_credentials": "not_applicable"},
        {"expect": {"x": {"equals": "no"}}, "without_credentials": "error"},
    ),
    ("ssh.forwarding_disabled", {"without_credentials": "not_applicable"}, {"without_credentials": "error"}),
    (
        "ssh.algorithms_allowed_only",
        {"profile": "mozilla-modern"},
        {"profile": "mozilla-modern", "macs": ["hmac-sha2-512-etm@openssh.com"]},
    ),
    ("ssh.software_not_vulnerable", {"cves": ["CVE-2024-6387"]}, {}),
]


@pytest.mark.parametrize(("control", "lower", "higher"), STRICTER)
def test_stricter_params_pass_and_the_reverse_fails(
    control: str, lower: dict[str, Any], higher: dict[str, Any]
) -> None:
    assert weaker_points(rule(control, lower), rule(control, higher), 3) == []
    assert weaker_points(rule(control, higher), rule(control, lower), 3)


def test_lower_severity_is_weaker() -> None:
    low = rule("tls.forward_secrecy", {})
    assert weaker_points(low, rule("tls.forward_secrecy", {}, severity=Severity.MEDIUM), 3)


def test_narrower_applicability_is_weaker() -> None:
    everywhere = rule("tls.forward_secrecy", {})
    assert weaker_points(everywhere, rule("tls.forward_secrecy", {}, applies_to=AppliesTo(levels=(3,))), 3)
    assert weaker_points(everywhere, rule("tls.forward_secrecy", {}, applies_to=AppliesTo(tags=("x",))), 3)
    assert not weaker_points(
        everywhere, rule("tls.forward_secrecy", {}, applies_to=AppliesTo(levels=(4, 5))), 3
    )


def test_a_param_the_table_does_not_know_must_not_change() -> None:
    assert "tls.mozilla_profile.unknown" not in FIELDS
    problems = weaker_points(
        rule("ssh.config", {"expect": {"maxauthtries": {"at_most": 4}}}),
        rule("ssh.config", {"expect": {"maxauthtries": {"at_most": 3}}}),
        3,
    )
    assert problems and "does not know" in problems[0]


def test_every_param_of_the_bundled_controls_is_in_the_table() -> None:
    # A new param of a bundled control must be taught to the comparison before levels vary it.
    known_opaque = {"ssh.config.expect"}
    for check_name in ("ports", "tls", "ssh"):
        for control_id, control in registry().check(check_name).controls.items():
            for name in control.params_model.model_fields:
                key = f"{control_id}.{name}"
                assert key in FIELDS or key in known_opaque or control_id in VIEWS, key


def test_judging_from_the_internet_only_is_weaker() -> None:
    # `vantage: internet` judges what an outside vantage saw, which is less than the inside view.
    inside = rule("ports.forbidden", {"ports": [3389]})
    outside = rule("ports.forbidden", {"ports": [3389]}, vantage="internet")
    assert weaker_points(inside, outside, 3)
    assert weaker_points(outside, inside, 3) == []
