"""The bundled policies: they load against the real checks, every rule speaks both languages and
cites its sources honestly, a higher security level is never weaker, and the rule books in
docs/policies/ are current."""

import calendar
import re
from functools import cache
from pathlib import Path

import pytest

from attt.scanner._yaml import load_yaml, validate
from attt.scanner.inventory import load_inventory
from attt.scanner.models.policy import PolicyFile, ResolvedPolicy, ResolvedRule
from attt.scanner.pipeline import policies_for
from attt.scanner.policy import bundled_dir, bundled_policy_ids, default_policy_ref, load_policy
from attt.scanner.registry import Registry
from tests.policies import generate_rulebooks
from tests.policies.strictness import weaker_points

LEVELS = (1, 2, 3, 4, 5)
LEVEL_IDS = tuple(f"vn-level-{n}" for n in LEVELS)
DOCS = Path(__file__).resolve().parents[2] / "docs"

_VI_LETTERS = frozenset("àáảãạăằắẳẵặâầấẩẫậèéẻẽẹêềếểễệìíỉĩịòóỏõọôồốổỗộơờớởỡợùúủũụưừứửữựỳýỷỹỵđ")
# Words that written Vietnamese never leaves unaccented: a sign someone typed without diacritics.
_UNACCENTED = re.compile(r"\b(khong|duoc|cua|nguoi|thong tin|may chu|he thong|bao mat|mat khau)\b")

LEGACY = ("TT 12/2022/TT-BTTTT", "TCVN 11930:2017", "NĐ 85/2016/NĐ-CP")
CURRENT = ("NĐ 331/2026/NĐ-CP", "TCVN 14423:2026", "Luật An ninh mạng 116/2025/QH15")
BOTH = ("TT 39/2017/TT-BTTTT",)
"""Circular 39/2017 is in force under both regimes."""

_CONFIDENCE_RANK = {"unverified": 0, "secondary": 1, "verified": 2}
CONFIDENCE_CAP = {
    "NĐ 331/2026/NĐ-CP": "secondary",
    "TCVN 14423:2026": "secondary",
    "Luật An ninh mạng 116/2025/QH15": "secondary",
    "TT 39/2017/TT-BTTTT": "secondary",
    "NĐ 85/2016/NĐ-CP": "secondary",
    "BSI TR-02102-2": "secondary",
    "CA/Browser Forum": "secondary",
    "CISA BOD 23-02": "secondary",
    "NIST SP 800-52 Rev. 2": "secondary",
}
"""The highest confidence standards.md supports for each source read only second-hand ([S])."""


@cache
def registry() -> Registry:
    return Registry.load()


@cache
def resolved(policy_id: str) -> ResolvedPolicy:
    return load_policy(policy_id, registry())


def all_rules() -> list[tuple[str, ResolvedRule]]:
    return [(pid, rule) for pid in bundled_policy_ids() for rule in resolved(pid).rules]


def _has_vietnamese(text: str) -> bool:
    return any(c in _VI_LETTERS for c in text.lower()) and not _UNACCENTED.search(text.lower())


def test_every_level_and_the_baseline_are_bundled() -> None:
    assert {"baseline", *LEVEL_IDS} <= set(bundled_policy_ids())
    assert registry().failures == ()


@pytest.mark.parametrize("level", LEVELS)
def test_a_system_without_p_is_judged_by_its_level(level: int) -> None:
    assert default_policy_ref(level) == f"vn-level-{level}"


@pytest.mark.parametrize("policy_id", bundled_policy_ids())
def test_policy_loads_and_every_rule_is_valid_for_its_control(policy_id: str) -> None:
    policy = resolved(policy_id)
    assert policy.rules, f"{policy_id} has no rules"
    for rule in policy.rules:
        found = registry().control(rule.control)
        assert found is not None, f"{rule.id}: no check provides {rule.control}"
        check, control = found
        assert (rule.check, type(rule.params)) == (check, control.params_model), rule.id


@pytest.mark.parametrize("level", LEVELS)
def test_each_level_extends_the_one_below(level: int) -> None:
    below = resolved("baseline" if level == 1 else f"vn-level-{level - 1}")
    sources = [s.id for s in resolved(f"vn-level-{level}").sources]
    assert below.id in sources
    assert {r.id for r in below.rules} <= {r.id for r in resolved(f"vn-level-{level}").rules}


def test_every_rule_speaks_both_languages() -> None:
    for policy_id, rule in all_rules():
        for text in (rule.title, rule.remediation):
            assert text.vi.strip() and text.en.strip(), f"{policy_id}/{rule.id}: empty text"
            assert _has_vietnamese(text.vi), f"{policy_id}/{rule.id}: unaccented Vietnamese: {text.vi!r}"
            assert text.vi != text.en, f"{policy_id}/{rule.id}: the Vietnamese text is the English one"


@pytest.mark.parametrize("level", LEVELS)
def test_level_description_explains_both_regimes_and_the_transition(level: int) -> None:
    policy = validate(PolicyFile, load_yaml(bundled_dir() / f"vn-level-{level}.yaml"))
    assert policy.description is not None
    assert _has_vietnamese(policy.description.vi)
    for needle in ("NĐ 85/2016", "NĐ 331/2026", "TCVN 11930:2017", "TCVN 14423:2026", "2027"):
        assert needle in policy.description.vi and needle in policy.description.en, needle


def test_every_rule_cites_a_source_and_no_more_confidence_than_it_has() -> None:
    for policy_id, rule in all_rules():
        assert rule.references, f"{policy_id}/{rule.id}: no reference"
        for ref in rule.references:
            cap = next((c for s, c in CONFIDENCE_CAP.items() if ref.standard.startswith(s)), "verified")
            assert _CONFIDENCE_RANK[ref.confidence] <= _CONFIDENCE_RANK[cap], (
                f"{policy_id}/{rule.id}: {ref.standard} {ref.clause} is marked {ref.confidence}, "
                f"standards.md supports at most {cap}"
            )


def test_level_rules_cite_both_regimes_and_an_international_source() -> None:
    for policy_id, rule in all_rules():
        if not rule.policy.startswith("vn-level-"):
            continue
        standards = [r.standard for r in rule.references]
        where = f"{policy_id}/{rule.id}"
        assert any(s.startswith(LEGACY + BOTH) for s in standards), f"{where}: no legacy-regime reference"
        assert any(s.startswith(CURRENT + BOTH) for s in standards), f"{where}: no 2026-regime reference"
        assert any(not s.startswith(LEGACY + CURRENT + BOTH) for s in standards), (
            f"{where}: no international reference"
        )


@pytest.mark.parametrize("level", LEVELS[:-1])
def test_a_higher_level_is_never_weaker(level: int) -> None:
    lower = {r.id: r for r in resolved(f"vn-level-{level}").rules}
    higher = {r.id: r for r in resolved(f"vn-level-{level + 1}").rules}
    assert not (removed := sorted(set(lower) - set(higher))), f"level {level + 1} drops {removed}"
    problems = [
        f"{rule_id}: {problem}"
        for rule_id, rule in lower.items()
        for problem in weaker_points(rule, higher[rule_id], level)
    ]
    assert not problems, f"vn-level-{level + 1} is weaker than vn-level-{level}:\n" + "\n".join(problems)


def test_levels_grow_stricter_somewhere() -> None:
    # The property above holds trivially for identical policies; each level must add something.
    for level in LEVELS[:-1]:
        lower, higher = resolved(f"vn-level-{level}"), resolved(f"vn-level-{level + 1}")
        assert lower.rules != higher.rules, f"vn-level-{level + 1} adds nothing to vn-level-{level}"


def test_rule_books_are_current() -> None:
    stale = generate_rulebooks.stale(registry())
    assert not stale, "stale rule books (run `python -m tests.policies.generate_rulebooks`): " + ", ".join(
        stale
    )


def test_trust_anchor_example_in_the_docs_loads(tmp_path: Path) -> None:
    text = (DOCS / "trust-anchors.md").read_text(encoding="utf-8")
    block = re.search(r"```yaml\n(id: vn-gov-trust\n.*?)```", text, re.DOTALL)
    assert block is not None, "docs/trust-anchors.md lost its vn-gov-trust example"
    path = tmp_path / "vn-gov-trust.yaml"
    path.write_text(block.group(1), encoding="utf-8")
    policy = load_policy(str(path), registry())
    anchors = policy.settings["tls"].model_dump()["trust_anchors"]
    assert anchors and all(a.endswith(".pem") for a in anchors)
    assert {r.id for r in resolved("vn-level-3").rules} <= {r.id for r in policy.rules}


def test_the_demo_inventory_is_judged_by_each_systems_level() -> None:
    systems = load_inventory(
        Path(__file__).resolve().parents[1] / "demo" / "inventory.yaml"
    ).inventory.systems
    chosen = policies_for(systems, [], registry())
    assert {s.id: [p.id for p in chosen[s.id]] for s in systems} == {
        s.id: [f"vn-level-{s.level}"] for s in systems
    }


_VI_DATE = re.compile(r"\b(\d{1,2})/(\d{1,2})/(\d{4})\b")
_EN_WORDS = {"one": "1", "two": "2"}


def _numbers(text: str, *, vi: bool) -> set[str]:
    """The numbers a text states (ports, days, bits, clause numbers), dates written as in English."""
    if vi:
        text = _VI_DATE.sub(lambda m: f"{int(m[1])} {calendar.month_name[int(m[2])]} {m[3]}", text)
    else:
        # Vietnamese writes durations in digits ("2 năm"), English in words ("two years").
        text = re.sub(r"\b(one|two)(?= years?\b)", lambda m: _EN_WORDS[m[1]], text)
    return set(re.findall(r"\d+(?:[.,]\d+)*", text))


def test_both_languages_state_the_same_numbers() -> None:
    # A port, a key size or a clause number in one language only is a translation that says
    # something else.
    for policy_id in bundled_policy_ids():
        policy = resolved(policy_id)
        texts = [(policy_id, policy.description)] if policy.description else []
        texts += [(f"{policy_id}/{r.id}", t) for r in policy.rules for t in (r.title, r.remediation)]
        for where, text in texts:
            assert _numbers(text.vi, vi=True) == _numbers(text.en, vi=False), f"{where}: {text.en}"


@pytest.mark.parametrize("policy_id", bundled_policy_ids())
def test_vulnerability_rules_name_each_weakness_in_both_languages(policy_id: str) -> None:
    words = {
        "heartbleed": ("Heartbleed", "Heartbleed"),
        "ccs_injection": ("CCS injection", "CCS injection"),
        "robot": ("ROBOT", "ROBOT"),
        "insecure_renegotiation": ("tái thương lượng không an toàn", "insecure"),
        "client_renegotiation": ("do máy khách khởi tạo", "client-initiated"),
        "compression": ("nén TLS", "TLS compression"),
        "fallback_scsv": ("TLS_FALLBACK_SCSV", "TLS_FALLBACK_SCSV"),
        "extended_master_secret": ("extended master secret", "extended master secret"),
    }
    for rule in resolved(policy_id).rules:
        if rule.control != "tls.no_known_vulnerabilities":
            continue
        for check in rule.params.model_dump()["checks"]:
            vi, en = words[check]
            assert vi in rule.title.vi and en in rule.title.en, f"{rule.id}: {check}"


@pytest.mark.parametrize("level", LEVELS[:-1])
def test_a_higher_level_never_probes_less(level: int) -> None:
    # Probe settings decide what the rules can see: a higher level keeps every setting of the one
    # below, except that it may widen the port scan to every TCP port.
    lower, higher = resolved(f"vn-level-{level}").settings, resolved(f"vn-level-{level + 1}").settings
    for check, settings in lower.items():
        assert check in higher, f"level {level + 1} drops the {check} settings"
        before, after = settings.model_dump(), higher[check].model_dump()
        for key, value in before.items():
            if (check, key) == ("ports", "full_range"):
                assert after[key] or not value, f"level {level + 1} stops scanning every TCP port"
            else:
                assert after[key] == value, f"level {level + 1} changes {check}.{key}"
