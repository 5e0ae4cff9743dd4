"""The bundled knowledge checked against what it cites: thresholds against the data of their
references (Mozilla's guideline JSON, ssh-audit's policies and code), per-level TCVN clauses,
unconfirmed sources marked so, severities ordered by exposure, and comments that point to
files that exist."""

import inspect
import json
import re
from functools import cache
from pathlib import Path

import pytest
from ssh_audit import hostkeytest
from ssh_audit.builtin_policies import BUILTIN_POLICIES

from attt.checks.tls.profile import mozilla_guidelines
from attt.scanner.models.base import Severity
from attt.scanner.models.policy import Reference, ResolvedPolicy, ResolvedRule
from attt.scanner.models.target import SystemInfo
from attt.scanner.policy import bundled_dir, bundled_policy_ids, load_policy
from attt.scanner.registry import Registry

ROOT = Path(__file__).resolve().parents[2]
LEVELS = (1, 2, 3, 4, 5)
HARDENED = "Hardened OpenSSH Server v9.9 (version 1)"

# Within a family, each rule's exposure is at most as bad as the next one's: its severity must
# never rank above theirs at any level (issue: SSH password logins critical, Telnet only high).
EXPOSURE_ORDER: dict[str, list[tuple[str, str]]] = {
    "cleartext logins": [
        ("SSH-PASSWORD-AUTH", "PORT-TELNET"),
        ("SSH-PASSWORD-AUTH", "PORT-RSERVICES"),
        ("SSH-PASSWORD-AUTH", "PORT-FTP"),
        ("SSH-PASSWORD-AUTH", "PORT-VNC"),
        ("SSH-PASSWORD-AUTH", "PORT-X11"),
        ("VN-SSH-INTERNET", "PORT-TELNET"),
    ],
    "TLS versions": [("TLS-MOZILLA-INTERMEDIATE", "TLS-MIN-TLS12"), ("TLS-MIN-TLS12", "TLS-PROTO-SSL")],
    "TLS suites": [
        ("TLS-CIPHER-CBC", "TLS-CIPHER-BROKEN"),
        ("TLS-CIPHER-STATIC-RSA", "TLS-CIPHER-BROKEN"),
        ("TLS-DH-WEAK", "TLS-CIPHER-BROKEN"),
    ],
    "SSH algorithms": [
        ("SSH-CIPHER-CBC", "SSH-CIPHER-BROKEN"),
        ("SSH-ALGORITHMS-PROFILE", "SSH-KEX-WEAK"),
        ("SSH-ALGORITHMS-PROFILE", "SSH-CIPHER-BROKEN"),
    ],
    "SSH software": [("SSH-SOFTWARE-CVE-POSTAUTH", "SSH-SOFTWARE-CVE")],
    "data stores": [("PORT-DB-EXPOSED", "PORT-DATASTORE-EXPOSED")],
    # A service open inside the data centre is a weaker exposure than the same service open to
    # the Internet.
    "zone and Internet": [
        ("PORT-SMB-ZONE", "PORT-SMB"),
        ("PORT-MSRPC-ZONE", "PORT-MSRPC"),
        ("PORT-DIRECTORY-ZONE", "PORT-LDAP"),
        ("PORT-DIRECTORY-ZONE", "PORT-KERBEROS"),
    ],
    "monitoring": [("PORT-MONITORING-EXPOSED", "PORT-MIDDLEWARE-EXPOSED")],
}
PAIRS = [(family, weaker, stronger) for family, pairs in EXPOSURE_ORDER.items() for weaker, stronger in pairs]


@cache
def level(n: int) -> ResolvedPolicy:
    return load_policy(f"vn-level-{n}", Registry.load())


def _rules(n: int) -> dict[str, ResolvedRule]:
    return {rule.id: rule for rule in level(n).rules}


def _all_rules() -> list[tuple[str, ResolvedRule]]:
    registry = Registry.load()
    return [(pid, rule) for pid in bundled_policy_ids() for rule in load_policy(pid, registry).rules]


def _cites(rule: ResolvedRule, standard: str) -> list[Reference]:
    return [r for r in rule.references if r.standard.startswith(standard)]


# --- item 10: numbers agree with the references -----------------------------------------


def test_thresholds_agree_with_mozillas_json() -> None:
    intermediate = mozilla_guidelines().profiles["intermediate"]
    expected: dict[str, dict[str, object]] = {
        "tls.hsts": {"min_max_age": intermediate.hsts_min_age},
        "tls.certificate_lifetime": {"max_days": intermediate.max_certificate_lifetime_days},
        "tls.certificate_key": {"rsa_min_bits": intermediate.rsa_key_min_bits},
        "tls.key_exchange_min_bits": {
            "dh_min_bits": intermediate.dh_min_bits,
            "ecdh_min_bits": intermediate.ecdh_min_bits,
        },
        "tls.min_version": {"version": min(intermediate.protocols)},
    }
    checked = 0
    for policy_id, rule in _all_rules():
        if not _cites(rule, "Mozilla Server Side TLS 6.0") or rule.control not in expected:
            continue
        params = rule.params.model_dump()
        for name, number in expected[rule.control].items():
            assert params[name] == number, f"{policy_id}/{rule.id}: {name} {params[name]}, Mozilla {number}"
        checked += 1
    assert checked >= 5


def test_rules_citing_bsi_ask_for_its_rsa_size() -> None:
    for policy_id, rule in _all_rules():
        if _cites(rule, "BSI TR-02102-2") and rule.control == "tls.certificate_key":
            assert rule.params.model_dump()["rsa_min_bits"] >= 3000, f"{policy_id}/{rule.id}"


def test_a_certificate_key_floor_above_nists_does_not_rest_on_nist() -> None:
    # NIST SP 800-52r2 3.2 accepts RSA-2048: a stricter floor must name the standard it follows,
    # and its NIST reference must not read as if NIST asked for it.
    for policy_id, rule in _all_rules():
        if rule.control != "tls.certificate_key" or rule.params.model_dump()["rsa_min_bits"] <= 2048:
            continue
        assert _cites(rule, "BSI TR-02102-2"), f"{policy_id}/{rule.id}"
        for reference in _cites(rule, "NIST SP 800-52"):
            assert "2048" in (reference.clause or ""), f"{policy_id}/{rule.id}: {reference.clause}"


def test_ssh_host_key_sizes_agree_with_ssh_audit() -> None:
    hardened = BUILTIN_POLICIES[HARDENED]["hostkey_sizes"]["rsa-sha2-512"]["hostkey_size"]
    good = re.search(r"hostkey_min_good = cakey_min_good = (\d+)", inspect.getsource(hostkeytest))
    assert good is not None, "ssh-audit's host key test changed shape"
    for policy_id, rule in _all_rules():
        if rule.control != "ssh.host_key_min_bits":
            continue
        rsa = rule.params.model_dump()["rsa"]
        if _cites(rule, "ssh-audit built-in policies"):
            assert rsa == hardened, f"{policy_id}/{rule.id}: {rsa}, ssh-audit's hardened policy {hardened}"
        if _cites(rule, "ssh-audit hostkeytest.py"):
            assert rsa == int(good.group(1)), f"{policy_id}/{rule.id}"


# --- item 11: a weaker exposure never outranks a stronger one ------------------------------


@pytest.mark.parametrize("n", LEVELS)
@pytest.mark.parametrize(("family", "weaker", "stronger"), PAIRS)
def test_a_weaker_exposure_never_ranks_above_a_stronger_one(
    n: int, family: str, weaker: str, stronger: str
) -> None:
    rules = _rules(n)
    if weaker not in rules or stronger not in rules:
        pytest.skip(f"{weaker} or {stronger} is not part of level {n}")
    low, high = rules[weaker].severity, rules[stronger].severity
    assert low.rank <= high.rank, f"level {n} ({family}): {weaker} is {low}, above {stronger} at {high}"


@pytest.mark.parametrize("n", LEVELS)
def test_cleartext_mail_stays_at_medium_or_below(n: int) -> None:
    rule = _rules(n).get("VN-MAIL-CLEARTEXT")
    assert rule is None or rule.severity.rank <= Severity.MEDIUM.rank


def test_every_ordered_rule_exists() -> None:
    known = set(_rules(5))
    assert {rule for _, weaker, stronger in PAIRS for rule in (weaker, stronger)} <= known


# --- item 12: per-level clauses, unconfirmed sources ---------------------------------------

SECTION_OFFSET = {"TCVN 11930:2017": 4, "TCVN 14423:2026": 2}


def _sections(clause: str) -> set[int]:
    """The leading section number of every clause the text names (`7.2.3.4`, `5.12.2.2 a–b`)."""
    return {int(m.group(1)) for m in re.finditer(r"(?<![\d.])(\d+)\.\d+(?:\.\d+)+", clause)}


def test_tcvn_clauses_belong_to_the_levels_they_are_cited_for() -> None:
    for policy_id, rule in _all_rules():
        rule_levels = set(rule.applies_to.levels or LEVELS)
        for ref in rule.references:
            offset = SECTION_OFFSET.get(ref.standard)
            if offset is None:
                continue
            where = f"{policy_id}/{rule.id}: {ref.standard} {ref.clause}"
            assert ref.levels, f"{where}: no levels"
            assert set(ref.levels) <= rule_levels, f"{where}: cited for a level the rule does not judge"
            assert _sections(ref.clause or "") == {n + offset for n in ref.levels}, where


def test_no_finding_claims_a_clause_of_another_level() -> None:
    # Evaluation keeps only the references of the system's level.
    rule = next(r for r in level(3).rules if r.id == "TLS-MIN-TLS12")
    system = SystemInfo(id="x", name="x", owner="x", level=2)
    cited = [r for r in rule.references if r.cited_for(system.level)]
    assert all(
        _sections(r.clause or "") == {2 + SECTION_OFFSET[r.standard]}
        for r in cited
        if r.standard in SECTION_OFFSET
    )
    assert any(r.standard == "TCVN 11930:2017" for r in cited)


def test_tcvn_clauses_beyond_level_3_are_marked_unverified() -> None:
    # standards.md verifies TCVN 11930's items at levels 1-3 only (TT 12/2022 annexes).
    for policy_id, rule in _all_rules():
        for ref in _cites(rule, "TCVN 11930:2017"):
            if ref.levels and min(ref.levels) >= 4:
                assert ref.confidence == "unverified", f"{policy_id}/{rule.id}: {ref.clause}"


@pytest.mark.parametrize("n", LEVELS)
def test_decree_331_is_marked_unconfirmed(n: int) -> None:
    description = level(n).description
    assert description is not None
    for text, mark in ((description.vi, "(chưa xác nhận)"), (description.en, "(unconfirmed)")):
        first = text.index("NĐ 331/2026")
        assert mark in text[first : first + 60], text[first : first + 80]
    for _, rule in _all_rules():
        for ref in _cites(rule, "NĐ 331/2026"):
            assert ref.confidence == "unverified", rule.id


# --- item 5 and 6: roles, new ports, the UDP caveat ---------------------------------------


def test_zone_rules_leave_domain_controllers_and_file_servers_alone() -> None:
    rules = _rules(3)
    base = {"id": "x", "name": "x", "owner": "x", "level": 3}
    plain = SystemInfo(**base)
    dc = SystemInfo(**base, role="domain-controller")
    files = SystemInfo(**base, role="file-server")
    assert rules["PORT-SMB-ZONE"].applies(plain) and not rules["PORT-SMB-ZONE"].applies(dc)
    assert not rules["PORT-SMB-ZONE"].applies(files) and not rules["PORT-MSRPC-ZONE"].applies(dc)
    assert rules["PORT-DIRECTORY-ZONE"].applies(files) and not rules["PORT-DIRECTORY-ZONE"].applies(dc)
    # The internet-facing rules judge every role.
    exposed_dc = SystemInfo(**{**base, "tags": ("internet-facing",)}, role="domain-controller")
    for rule_id in ("PORT-SMB", "PORT-MSRPC", "PORT-LDAP", "PORT-KERBEROS"):
        assert rules[rule_id].applies(exposed_dc), rule_id


def test_a_role_outside_the_list_is_rejected() -> None:
    with pytest.raises(ValueError, match="role"):
        SystemInfo(id="x", name="x", owner="x", level=3, role="wizard")


def test_ports_scanned_but_never_judged_now_have_rules() -> None:
    forbidden: set[int] = set()
    for rule in level(1).rules:
        if rule.control == "ports.forbidden":
            forbidden.update(rule.params.model_dump()["ports"])
    wanted = {389, 636, 3268, 88, 464, 6000, 2049, 111, 873, 5601, 8161, 61616, 9092, 2181, 1883, 9100, 7547}
    assert wanted <= forbidden, sorted(wanted - forbidden)
    db = next(r for r in level(1).rules if r.id == "PORT-DB-EXPOSED").params.model_dump()["ports"]
    assert {9042, 7474, 8086} <= set(db)  # Cassandra, Neo4j, InfluxDB from level 1


def test_the_rule_books_say_udp_is_not_scanned() -> None:
    for policy_id in ("baseline", *(f"vn-level-{n}" for n in LEVELS)):
        for name in (f"{policy_id}.md", f"{policy_id}.en.md"):
            text = (ROOT / "docs" / "policies" / name).read_text(encoding="utf-8")
            assert "UDP" in text and "SNMP (161)" in text, name


# --- item 13: comments point to files that exist -------------------------------------------

_PATH = re.compile(
    r"(?<![\w/.-])((?:checks|policies|scanner|reports|tests|docs|attt)/[\w./-]+\.(?:py|json|yaml|md))"
)


def _bundled_texts() -> dict[Path, str]:
    files = [*bundled_dir().glob("*.yaml"), *(ROOT / "checks").glob("*/data/*.json")]
    files += [p for p in (ROOT / "checks").rglob("*.py") if "__pycache__" not in p.parts]
    return {path: path.read_text(encoding="utf-8") for path in files}


def test_comments_in_bundled_files_point_to_files_that_exist() -> None:
    for path, text in _bundled_texts().items():
        assert "/work/" not in text, f"{path.relative_to(ROOT)} points outside the repository"
        for match in _PATH.finditer(text):
            assert (ROOT / match.group(1)).exists(), f"{path.relative_to(ROOT)} names {match.group(1)}"


def test_data_files_name_their_source_and_date() -> None:
    for path in (ROOT / "checks").glob("*/data/*.json"):
        data = json.loads(path.read_text(encoding="utf-8"))
        assert data.get("_comment") or data.get("source"), path.name


# --- TT 12/2022: each annex speaks for one security level ----------------------------------

_ANNEX = re.compile(r"Phụ lục ((?:[IV]+(?:[/,] ?)?)+)")
_ROMAN = {"I": 1, "II": 2, "III": 3, "IV": 4, "V": 5}


def _annex_levels(clause: str) -> set[int]:
    """The levels of every annex a TT 12/2022 clause names (`Phụ lục II/III, mục II.1.b.i`)."""
    return {_ROMAN[n] for m in _ANNEX.finditer(clause) for n in re.split(r"[/,] ?", m.group(1)) if n}


def test_tt12_annex_clauses_belong_to_the_levels_they_are_cited_for() -> None:
    # TT 12/2022 Art. 10 puts level N's requirements in Annex N: a level-1 finding citing
    # Annex III (the level-3 database zone) claims a clause its system is not held to.
    for policy_id, rule in _all_rules():
        rule_levels = set(rule.applies_to.levels or LEVELS)
        for ref in _cites(rule, "TT 12/2022"):
            annexes = _annex_levels(ref.clause or "")
            if not annexes:
                continue
            where = f"{policy_id}/{rule.id}: {ref.clause}"
            assert ref.levels is not None, f"{where}: no levels"
            assert len(ref.levels) == 1 and annexes == set(ref.levels), where
            assert set(ref.levels) <= rule_levels, f"{where}: cited for a level the rule does not judge"


def test_tt12_annexes_standards_md_did_not_read_are_marked_unverified() -> None:
    # standards.md read the network design items of Annexes II and III only.
    for policy_id, rule in _all_rules():
        for ref in _cites(rule, "TT 12/2022"):
            if _annex_levels(ref.clause or "") - {2, 3}:
                assert ref.confidence == "unverified", f"{policy_id}/{rule.id}: {ref.clause}"


def test_annex_parsing() -> None:
    assert _annex_levels("Phụ lục II/III, mục II.1.b.i") == {2, 3}
    assert _annex_levels("Phụ lục II, III, mục II.1.b.i; Phụ lục III mục II.1") == {2, 3}
    assert _annex_levels("Phụ lục IV, mục II.1") == {4}
    assert _annex_levels("Điều 12.3") == set()


# --- thresholds no cited source sets say they are attt's own ------------------------------

OWN_THRESHOLDS = {
    # standards.md B5: "warn before expiry (30/14 days, local policy)".
    "TLS-CERT-EXPIRY": "min_days_left",
    # TCVN 14423 4.12.2.4 d / 5.12.2.4 c ask for idle sessions to be cut but name no duration.
    "SSH-IDLE-TIMEOUT": "expect",
}


@pytest.mark.parametrize("rule_id", sorted(OWN_THRESHOLDS))
def test_a_threshold_of_our_own_says_so(rule_id: str) -> None:
    for n in LEVELS:
        rule = _rules(n)[rule_id]
        assert "do attt chọn" in rule.title.vi, f"level {n}: {rule.title.vi}"
        assert "attt's own" in rule.title.en, f"level {n}: {rule.title.en}"
        assert OWN_THRESHOLDS[rule_id] in rule.params.model_dump()


def test_nist_is_not_cited_as_forbidding_tls_1_0_for_citizen_facing_servers() -> None:
    # standards.md B2: SP 800-52r2 3.1 forbids TLS 1.0/1.1 on government-only servers and only
    # discourages them on citizen-facing ones, which most provincial portals are.
    for policy_id, rule in _all_rules():
        if rule.control != "tls.min_version":
            continue
        for ref in _cites(rule, "NIST SP 800-52"):
            assert "người dân" in (ref.clause or ""), f"{policy_id}/{rule.id}: {ref.clause}"


def test_accepting_the_nist_p_curves_in_ssh_rests_on_a_source_standards_md_read() -> None:
    # standards.md C3: Mozilla's OpenSSH guidelines list ecdh-sha2-nistp256/384/521.
    for policy_id, rule in _all_rules():
        if "NIST P-256/384/521" in rule.title.en:
            assert any(r.confidence == "verified" for r in _cites(rule, "Mozilla OpenSSH")), (
                f"{policy_id}/{rule.id}"
            )


# --- both regimes at every level a Vietnamese clause is cited for -------------------------

LEGACY_REGIME = ("TT 12/2022", "TCVN 11930:2017", "NĐ 85/2016")
CURRENT_REGIME = ("NĐ 331/2026", "TCVN 14423:2026", "Luật An ninh mạng 116/2025")
ONE_REGIME_ONLY = {
    # standards.md A2 names an item of one regime only for these ("—" in the other column, or no
    # row): citing the other regime would invent a clause.
    "SSH-SOFTWARE-CVE": "TCVN 14423 5.7.2.2 (EOL, unpatched software); TT 12/TCVN 11930: —",
    "SSH-SOFTWARE-CVE-POSTAUTH": "as SSH-SOFTWARE-CVE",
    "WEB-VERSION-DISCLOSURE": "as SSH-SOFTWARE-CVE",
    "SSH-IDLE-TIMEOUT": "TCVN 14423 x.12.2.4 (idle sessions); TCVN 11930: —",
    "SSH-FORWARDING": "TCVN 14423 x.5.2.1 c (unused services); no TCVN 11930 row",
    "SSH-ROOT-LOGIN": "TCVN 11930 x.2.2.2 (server access control); no TCVN 14423 row",
    "SSH-LOG-LEVEL": "TCVN 11930 x.2.2.3 (server logs); the TCVN 14423 log clause is not named",
    "WEB-EXPOSED-FILES": "TCVN 11930 x.2.4.2 (data confidentiality); no TCVN 14423 row",
}


@pytest.mark.parametrize("n", LEVELS[2:])
def test_a_vietnamese_clause_comes_with_the_other_regimes(n: int) -> None:
    # standards.md section 0: auditors in 2026-27 meet both regimes, so a finding that cites the
    # legacy clause of its level also cites the 2026 one, and the reverse. Levels 1-2 are left
    # out: TCVN 11930 has no communications-confidentiality item there (A2).
    problems = []
    for rule in level(n).rules:
        system = SystemInfo(id="x", name="x", owner="x", level=n, tags=("internet-facing",))
        if not rule.applies(system) or rule.id in ONE_REGIME_ONLY:
            continue
        cited = [r.standard for r in rule.references if r.cited_for(n)]
        legacy = any(s.startswith(LEGACY_REGIME) for s in cited)
        current = any(s.startswith(CURRENT_REGIME) for s in cited)
        if legacy != current:
            problems.append(f"{rule.id}: {'legacy' if legacy else '2026'} regime only")
    assert not problems, f"level {n}:\n" + "\n".join(problems)


def test_level_5_reads_every_sshd_setting_with_a_credential() -> None:
    # Its description says every sshd configuration rule needs a credential: none may be
    # not_applicable for want of one.
    checked = [rule for rule in level(5).rules if "without_credentials" in rule.params.model_dump()]
    assert {"SSH-ROOT-LOGIN", "SSH-FORWARDING"} <= {rule.id for rule in checked}
    for rule in checked:
        assert rule.params.model_dump()["without_credentials"] == "error", rule.id
