"""Whether a rule at one security level is at least as strict as the same rule one level below.

The comparison knows the params of the bundled controls field by field. A field it does not know
is accepted only when both levels give it the same value, so a new control whose params differ
between levels makes the property test fail until this table learns how to compare them.
"""

from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel

from attt.checks.tls.models import PROTOCOLS
from attt.scanner.models.policy import ResolvedRule

Stricter = Callable[[Any, Any], bool]
"""(lower level's value, higher level's value) -> the higher one is at least as strict."""


def at_least(lower: Any, higher: Any) -> bool:
    return bool(higher >= lower)


def at_most(lower: Any, higher: Any) -> bool:
    return bool(higher <= lower)


def superset(lower: Any, higher: Any) -> bool:
    """A deny-list: the higher level forbids everything the lower one does."""
    return set(_items(higher)) >= set(_items(lower))


def subset(lower: Any, higher: Any) -> bool:
    """An allow-list (None: no restriction): the higher level allows nothing the lower one refuses."""
    if higher is None or lower is None:
        return lower is None
    return set(_items(higher)) <= set(_items(lower))


def ordered(*weakest_first: Any) -> Stricter:
    return lambda lower, higher: weakest_first.index(higher) >= weakest_first.index(lower)


def never_enabled(lower: Any, higher: Any) -> bool:
    """A permission flag (`allow_*`): once refused it stays refused."""
    return bool(lower) or not higher


def never_disabled(lower: Any, higher: Any) -> bool:
    """A requirement flag: once required it stays required."""
    return bool(higher) or not lower


def _items(value: Any) -> list[Any]:
    # Port specs and similar list items may be mappings; compare them as sorted item tuples.
    return [tuple(sorted(v.items())) if isinstance(v, Mapping) else v for v in value or ()]


def _cves(lower: Any, higher: Any) -> bool:
    # None means every CVE of the table.
    return higher is None or (lower is not None and set(higher) >= set(lower))


def _caps(lower: Any, higher: Any) -> bool:
    # Schedules of lifetime caps by issue date: at every date either one changes, the higher
    # level's cap in force is no longer than the lower's (no step in force: no cap of its own).
    def cap(steps: list[dict[str, Any]], day: str) -> float:
        in_force = [s for s in steps if s["issued_from"] <= day]
        return max(in_force, key=lambda s: str(s["issued_from"]))["max_days"] if in_force else float("inf")

    days = {str(s["issued_from"]) for s in (*lower, *higher)}
    return all(cap(higher, day) <= cap(lower, day) for day in days)


FIELDS: dict[str, Stricter] = {
    "ports.forbidden.ports": superset,
    "ports.forbidden.services": superset,
    # None there means the system's registered allowed_ports, not "anything": compare lists only.
    "ports.only_allowed.ports": lambda lower, higher: None not in (lower, higher) and subset(lower, higher),
    # "all" claims every TCP port and needs a full scan to pass; "scanned" speaks of what was scanned.
    "ports.only_allowed.coverage": ordered("scanned", "all"),
    "tls.protocols_disabled.protocols": superset,
    "tls.min_version.version": ordered(*PROTOCOLS),
    "tls.cipher_suites_forbidden.families": superset,
    "tls.mozilla_profile.profile": ordered("intermediate", "modern"),
    "tls.mozilla_profile.ocsp_stapling": never_disabled,
    "tls.mozilla_profile.certificate_lifetime": never_disabled,
    "tls.certificate_expiry.min_days_left": at_least,
    "tls.certificate_lifetime.max_days": at_most,
    "tls.certificate_lifetime.schedule": _caps,
    "tls.certificate_key.rsa_min_bits": at_least,
    "tls.certificate_key.ec_min_bits": at_least,
    "tls.certificate_key.issuer_rsa_min_bits": at_least,
    "tls.certificate_key.issuer_ec_min_bits": at_least,
    "tls.certificate_key.allowed_types": subset,
    "tls.certificate_signature.forbidden_hashes": superset,
    "tls.no_known_vulnerabilities.checks": superset,
    "tls.hsts.min_max_age": at_least,
    "tls.hsts.include_subdomains": never_disabled,
    "ssh.algorithms_forbidden.kex": superset,
    "ssh.algorithms_forbidden.host_key_algorithms": superset,
    "ssh.algorithms_forbidden.ciphers": superset,
    "ssh.algorithms_forbidden.macs": superset,
    "ssh.algorithms_allowed_only.kex": subset,
    "ssh.algorithms_allowed_only.host_key_algorithms": subset,
    "ssh.algorithms_allowed_only.ciphers": subset,
    "ssh.algorithms_allowed_only.macs": subset,
    "ssh.host_key_min_bits.rsa": at_least,
    "ssh.host_key_min_bits.ecdsa": at_least,
    "ssh.host_key_min_bits.allow_dsa": never_enabled,
    "ssh.password_auth_disabled.keyboard_interactive_counts": never_disabled,
    "ssh.software_not_vulnerable.cves": _cves,
    "ssh.software_not_vulnerable.kinds": superset,
    "tls.key_exchange_min_bits.dh_min_bits": at_least,
    "tls.key_exchange_min_bits.ecdh_min_bits": at_least,
    "tls.starttls_offered.protocols": superset,
    "ssh.config.without_credentials": ordered("not_applicable", "error"),
    "ssh.forwarding_disabled.without_credentials": ordered("not_applicable", "error"),
}
"""`<control>.<field>` -> how to compare it. A field missing from one side (an allow-list the
lower level did not restrict) compares against None."""


def _allowed_lists(params: Any) -> dict[str, Any]:
    # A profile is shorthand for lists: compare what it expands to, so that swapping a profile
    # for an explicit, narrower list is recognised as stricter.
    return {name: list(values) for name, values in params.allowed().items()}


def _fields(params: BaseModel) -> dict[str, Any]:
    return params.model_dump(mode="json")


VIEWS: dict[str, Callable[[Any], dict[str, Any]]] = {"ssh.algorithms_allowed_only": _allowed_lists}
"""Controls whose params are compared through a derived view rather than their fields."""


def weaker_points(lower: ResolvedRule, higher: ResolvedRule, lower_level: int) -> list[str]:
    """Every way `higher` (judging level `lower_level + 1`) is weaker than `lower`; empty if none."""
    problems: list[str] = []
    if higher.control != lower.control:
        problems.append(f"control changed from {lower.control} to {higher.control}")
        return problems
    if higher.severity.rank < lower.severity.rank:
        problems.append(f"severity lowered from {lower.severity} to {higher.severity}")
    problems += _applies_weaker(lower, higher, lower_level)
    if higher.vantage is not None and lower.vantage is None:
        # The inside view sees the most; judging only what the Internet sees can miss an open port.
        problems.append(f"judged from the {higher.vantage} vantage instead of every vantage")
    view: Callable[[Any], dict[str, Any]] = VIEWS.get(lower.control, _fields)
    low, high = view(lower.params), view(higher.params)
    for name in sorted(set(low) | set(high)):
        before, after = low.get(name), high.get(name)
        if before == after:
            continue
        compare = FIELDS.get(f"{lower.control}.{name}")
        if compare is None:
            problems.append(
                f"param {name} changed ({before!r} -> {after!r}) and tests/policies/strictness.py "
                "does not know which way is stricter"
            )
        elif not compare(before, after):
            problems.append(f"param {name} weakened: {before!r} -> {after!r}")
    return problems


def _applies_weaker(lower: ResolvedRule, higher: ResolvedRule, lower_level: int) -> list[str]:
    low, high = lower.applies_to, higher.applies_to
    problems: list[str] = []
    if (low.levels is None or lower_level in low.levels) and not (
        high.levels is None or lower_level + 1 in high.levels
    ):
        problems.append(f"applied at level {lower_level} but not at level {lower_level + 1}")
    if high.tags is not None and (low.tags is None or not set(high.tags) >= set(low.tags)):
        problems.append(f"narrowed to tags {high.tags}")
    if high.systems is not None and (low.systems is None or not set(high.systems) >= set(low.systems)):
        problems.append(f"narrowed to systems {high.systems}")
    if high.except_roles is not None and not set(high.except_roles) <= set(low.except_roles or ()):
        problems.append(f"exempts more roles: {high.except_roles}")
    return problems
