"""The SSH knowledge checked against the references it cites: ssh-audit's algorithm database and
hardened policy (a dev dependency), and the shape of the distribution CVE table."""

import re
from fnmatch import fnmatchcase

import pytest
from ssh_audit.builtin_policies import BUILTIN_POLICIES
from ssh_audit.ssh2_kexdb import SSH2_KexDB

from attt.checks.ssh.controls import AllowedOnlyParams, ForbiddenParams
from attt.checks.ssh.cves import KnownCve, cve_table
from attt.checks.ssh.knowledge import parse_version_number, profiles, ssh_audit_differences
from attt.checks.ssh.models import KEX_MARKERS
from attt.checks.ssh.packages import compare, upstream_of
from attt.scanner.policy import bundled_policy_ids, load_policy
from attt.scanner.registry import Registry

# ssh-audit's categories and the SshData list each one is judged on.
CATEGORIES = {"kex": "kex", "key": "host_key_algorithms", "enc": "ciphers", "mac": "macs"}
HARDENED_POLICY = "Hardened OpenSSH Server v9.9 (version 1)"
REQUIRED_RELEASES = {
    ("debian", "11"),
    ("debian", "12"),
    ("debian", "13"),
    ("ubuntu", "20.04"),
    ("ubuntu", "22.04"),
    ("ubuntu", "24.04"),
    ("rhel", "8"),
    ("rhel", "9"),
}
ADVISORY = re.compile(r"^(DSA-\d+-\d+|DLA-\d+-\d+|USN-\d+-\d+|RHSA-\d{4}:\d+|Debian 12 point release.*)$")


def _failed_by_ssh_audit() -> dict[str, set[str]]:
    return {
        category: {name for name, entry in algorithms.items() if len(entry) > 1 and entry[1]}
        for category, algorithms in SSH2_KexDB.MASTER_DB.items()
    }


def _forbidden_patterns() -> dict[str, set[str]]:
    """Every pattern a bundled ssh.algorithms_forbidden rule forbids, per list."""
    registry = Registry.load()
    found: dict[str, set[str]] = {name: set() for name in CATEGORIES.values()}
    for policy_id in bundled_policy_ids():
        for rule in load_policy(policy_id, registry).rules:
            if isinstance(rule.params, ForbiddenParams):
                for name in found:
                    found[name].update(getattr(rule.params, name))
    return found


def _accepted_on_purpose() -> dict[str, set[str]]:
    listed: dict[str, set[str]] = {category: set() for category in CATEGORIES}
    for difference in ssh_audit_differences():
        for category in CATEGORIES:
            listed[category].update(getattr(difference, category))
    return listed


@pytest.mark.parametrize("category", sorted(CATEGORIES))
def test_every_algorithm_ssh_audit_fails_is_flagged_or_a_listed_difference(category: str) -> None:
    patterns = _forbidden_patterns()[CATEGORIES[category]]
    listed = _accepted_on_purpose()[category]
    missed = sorted(
        name
        for name in _failed_by_ssh_audit()[category]
        if name not in listed and not any(fnmatchcase(name, p) for p in patterns)
    )
    assert not missed, f"ssh-audit fails these {category} algorithms, attt neither flags nor lists them"


@pytest.mark.parametrize("category", sorted(CATEGORIES))
def test_listed_differences_are_real_and_not_flagged_after_all(category: str) -> None:
    patterns = _forbidden_patterns()[CATEGORIES[category]]
    failed = _failed_by_ssh_audit()[category]
    for name in _accepted_on_purpose()[category]:
        assert name in failed, f"{name}: listed as a difference but ssh-audit does not fail it"
        assert not any(fnmatchcase(name, p) for p in patterns), f"{name}: listed yet flagged"
        reasons = SSH2_KexDB.MASTER_DB[category][name][1]
        # The one deliberate difference is about the NIST curves; anything else needs its own entry.
        assert reasons == [SSH2_KexDB.FAIL_NSA_BACKDOORED_CURVE], name


def test_the_samples_the_issue_names_are_flagged() -> None:
    patterns = _forbidden_patterns()
    samples = {
        "ciphers": ["3des-ctr", "3des", "blowfish", "des", "idea-cbc", "seed-cbc@ssh.com", "serpent256-ctr"],
        "kex": ["diffie-hellman-group1-sha256"],
        "host_key_algorithms": ["ssh-rsa-cert-v00@openssh.com", "x509v3-ssh-rsa"],
    }
    for name, algorithms in samples.items():
        for algorithm in algorithms:
            assert any(fnmatchcase(algorithm, p) for p in patterns[name]), algorithm
    assert any(fnmatchcase("rijndael128-cbc", p) for p in patterns["ciphers"])


def test_hardened_profile_is_ssh_audits_hardened_policy() -> None:
    policy = BUILTIN_POLICIES[HARDENED_POLICY]
    profile = profiles()["hardened-openssh-9"]
    assert set(profile.kex) == set(policy["kex"]) - KEX_MARKERS
    assert set(profile.ciphers) == set(policy["ciphers"])
    assert set(profile.macs) == set(policy["macs"])
    # Certificates and security-key host keys are accepted exactly as the policy's optional list.
    assert set(profile.host_key_algorithms) == set(policy["host_keys"]) | set(policy["optional_host_keys"])
    allowed = AllowedOnlyParams(profile="hardened-openssh-9").allowed()
    assert "sk-ssh-ed25519-cert-v01@openssh.com" in allowed["host_key_algorithms"]


# --- the CVE table ---------------------------------------------------------------------


def test_the_table_covers_the_releases_the_province_runs() -> None:
    table = cve_table()
    assert {(r.distribution, r.release) for r in table.releases} >= REQUIRED_RELEASES


@pytest.mark.parametrize("cve", cve_table().cves, ids=lambda c: c.id)
def test_every_fix_is_a_build_of_its_release_inside_the_range(cve: KnownCve) -> None:
    releases = {(r.distribution, r.release): r.upstream for r in cve_table().releases}
    for fix in cve.fixes:
        upstream = upstream_of(fix.fixed)
        assert upstream == releases[(fix.distribution, fix.release)], f"{cve.id}: {fix.fixed}"
        assert cve.affects(parse_version_number(upstream)), f"{fix.fixed} is outside the range of {cve.id}"
        assert ADVISORY.match(fix.advisory), fix.advisory
        assert compare(fix.distribution, fix.fixed, fix.fixed) == 0


def test_ranges_have_the_lower_bounds_the_records_give() -> None:
    ranges = {c.id: c.ranges for c in cve_table().cves}
    assert ranges["CVE-2025-32728"] == (("7.4p1", "10.0p1"),)  # DisableForwarding appeared in 7.4
    assert ranges["CVE-2024-6387"] == ((None, "4.4p1"), ("8.5p1", "9.8p1"))
    assert ranges["CVE-2025-26466"] == (("9.5p1", "9.9p2"),)
    kinds = {c.id: c.kind for c in cve_table().cves}
    assert kinds["CVE-2025-32728"] == "post-auth" and kinds["CVE-2025-26465"] == "client-side"
