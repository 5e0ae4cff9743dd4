"""Policy loading and resolution against a hand-built registry (no real checks, no network)."""

import re
import shutil
from collections.abc import Iterable, Mapping
from datetime import date
from pathlib import Path
from typing import Any, ClassVar, Literal

import pytest
from pydantic import BaseModel

import attt.scanner.policy
from attt.scanner.errors import ConfigError
from attt.scanner.models.base import Frozen, Severity, Text
from attt.scanner.models.observation import Observation
from attt.scanner.models.policy import AppliesTo, ResolvedRule
from attt.scanner.models.target import SystemInfo, Target
from attt.scanner.plugin import API_VERSION, Control, Params, ProbeContext, Verdict
from attt.scanner.policy import bundled_dir, bundled_policy_ids, default_policy_ref, load_policy
from attt.scanner.registry import RegisteredCheck, Registry

POLICIES = Path(__file__).resolve().parent.parent / "data" / "policies"


class DemoData(Frozen):
    version: str = "TLSv1.2"


class VersionParams(Params):
    version: Literal["TLSv1.2", "TLSv1.3"]
    allow: tuple[str, ...] = ()


class PortParams(Params):
    ports: tuple[int, ...]
    strict: bool = False


class DemoSettings(Frozen):
    depth: int = 1
    mode: Literal["fast", "full"] = "fast"


def judge_nothing(data: BaseModel, params: BaseModel, target: Target) -> Verdict:
    """Judges nothing: the tests here are about loading policies."""
    return Verdict.not_applicable("demo")


class DemoCheck:
    name: ClassVar[str] = "demo"
    api_version: ClassVar[int] = API_VERSION
    data_model: ClassVar[type[BaseModel]] = DemoData
    settings_model: ClassVar[type[BaseModel]] = DemoSettings
    after: ClassVar[tuple[str, ...]] = ()
    controls: ClassVar[Mapping[str, Control[Any, Any]]] = {
        "demo.min_version": Control("demo.min_version", VersionParams, judge_nothing),
        "demo.forbidden": Control("demo.forbidden", PortParams, judge_nothing),
    }

    def probe(self, target: Target, ctx: ProbeContext[Any]) -> Iterable[Observation]:
        return ()


REGISTRY = Registry.of({"demo": RegisteredCheck(DemoCheck(), "tests")})


@pytest.fixture
def policies(tmp_path: Path) -> Path:
    """A writable copy of the sample policies."""
    for source in POLICIES.glob("*.yaml"):
        shutil.copy(source, tmp_path / source.name)
    return tmp_path


@pytest.fixture
def bundled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "bundled"
    directory.mkdir()
    monkeypatch.setattr(attt.scanner.policy, "bundled_dir", lambda: directory)
    return directory


def test_child_resolves_extends_replacements_overrides_and_waivers() -> None:
    policy = load_policy(str(POLICIES / "demo-child.yaml"), REGISTRY)
    assert (policy.id, policy.title, policy.version) == ("demo-child", "Demo level 3", "1")
    rules = {r.id: r for r in policy.rules}
    # The child's DEMO-VERSION replaces the parent's in place; DEMO-OLD is disabled.
    assert list(rules) == ["DEMO-VERSION", "DEMO-PORTS", "DEMO-TELNET"]
    assert rules["DEMO-VERSION"].params == VersionParams(version="TLSv1.3")
    assert (rules["DEMO-VERSION"].policy, rules["DEMO-VERSION"].severity) == ("demo-child", Severity.HIGH)
    assert rules["DEMO-VERSION"].references == ()
    # Overridden: severity replaced, params merged over the parent's.
    assert rules["DEMO-PORTS"].severity is Severity.CRITICAL
    assert rules["DEMO-PORTS"].params == PortParams(ports=(21, 23), strict=True)
    assert rules["DEMO-PORTS"].applies_to == AppliesTo(levels=(2, 3))
    assert rules["DEMO-PORTS"].policy == "demo-base"
    assert all(r.check == "demo" for r in policy.rules)
    # Waivers accumulate; the one for the disabled rule waives nothing and is dropped.
    assert [(w.rule, w.expires) for w in policy.waivers] == [
        ("DEMO-PORTS", date(2027, 3, 31)),
        ("DEMO-TELNET", date(2027, 1, 15)),
    ]
    assert policy.settings == {"demo": DemoSettings(depth=2, mode="full")}
    assert [(s.id, s.version, s.path) for s in policy.sources] == [
        ("demo-base", "2", str(POLICIES / "demo-base.yaml")),
        ("demo-child", "1", str(POLICIES / "demo-child.yaml")),
    ]


def test_parent_alone_keeps_its_rules_and_settings() -> None:
    policy = load_policy(str(POLICIES / "demo-base.yaml"), REGISTRY)
    assert [r.id for r in policy.rules] == ["DEMO-VERSION", "DEMO-PORTS", "DEMO-OLD"]
    assert policy.settings == {"demo": DemoSettings(depth=2)}
    assert len(policy.waivers) == 2


def test_sha256_is_stable_and_covers_every_file(policies: Path) -> None:
    ref = str(policies / "demo-child.yaml")
    first = load_policy(ref, REGISTRY)
    assert re.fullmatch(r"[0-9a-f]{64}", first.sha256)
    assert load_policy(ref, REGISTRY).sha256 == first.sha256
    assert load_policy(str(POLICIES / "demo-child.yaml"), REGISTRY).sha256 == first.sha256
    parent = policies / "demo-base.yaml"
    parent.write_text(parent.read_text(encoding="utf-8") + "# edited\n", encoding="utf-8")
    changed = load_policy(ref, REGISTRY)
    assert changed.sha256 != first.sha256
    assert changed.sources[1] == first.sources[1]


def test_id_ref_uses_search_dirs() -> None:
    policy = load_policy("demo-child", REGISTRY, search_dirs=[POLICIES])
    assert policy.id == "demo-child"
    assert policy.sources[-1].path == str(POLICIES / "demo-child.yaml")


def test_bundled_policies_by_id_and_through_extends(bundled: Path, tmp_path: Path) -> None:
    shutil.copy(POLICIES / "demo-base.yaml", bundled / "demo-base.yaml")
    (bundled / "vn-level-3.yaml").write_text("id: vn-level-3\ntitle: L3\nextends: [demo-base]\n", "utf-8")
    assert bundled_policy_ids() == ["demo-base", "vn-level-3"]
    assert default_policy_ref(3) == "vn-level-3"
    assert default_policy_ref(2) == "baseline"
    policy = load_policy("vn-level-3", REGISTRY)
    assert [s.path for s in policy.sources] == ["bundled:demo-base", "bundled:vn-level-3"]
    # A user file extends a bundled policy it does not sit next to.
    user = tmp_path / "mine.yml"
    user.write_text("id: mine\ntitle: Mine\nextends: [demo-base]\n", "utf-8")
    assert [s.path for s in load_policy(str(user), REGISTRY).sources] == ["bundled:demo-base", str(user)]


def test_file_next_to_the_naming_file_wins_over_bundled(bundled: Path, policies: Path) -> None:
    (bundled / "demo-base.yaml").write_text("id: demo-base\ntitle: Bundled\n", "utf-8")
    policy = load_policy(str(policies / "demo-child.yaml"), REGISTRY)
    assert policy.sources[0].path == str(policies / "demo-base.yaml")


def test_real_bundled_dir_is_the_policies_package() -> None:
    assert (bundled_dir() / "__init__.py").is_file()


def test_unknown_ref(bundled: Path) -> None:
    with pytest.raises(ConfigError, match=r"^policy 'nope': no such file or bundled policy"):
        load_policy("nope", REGISTRY)
    with pytest.raises(ConfigError, match=r"nope\.yaml: no such file"):
        load_policy("nope.yaml", REGISTRY)


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_extends_cycle_is_named(tmp_path: Path, bundled: Path) -> None:
    write(tmp_path, "a", "id: a\ntitle: A\nextends: [b]\n")
    b = write(tmp_path, "b", "id: b\ntitle: B\nextends:\n  - c\n  - a\n")
    write(tmp_path, "c", "id: c\ntitle: C\n")
    with pytest.raises(
        ConfigError, match=rf"^{re.escape(str(b))}:5: extends item 2: extends cycle: a -> b -> a$"
    ):
        load_policy(str(tmp_path / "a.yaml"), REGISTRY)


def test_self_extension_is_a_cycle(tmp_path: Path, bundled: Path) -> None:
    a = write(tmp_path, "a", "id: a\ntitle: A\nextends: [a]\n")
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(a))}:3: .*extends cycle: a -> a$"):
        load_policy(str(a), REGISTRY)


def test_diamond_loads_each_file_once(tmp_path: Path, bundled: Path) -> None:
    shutil.copy(POLICIES / "demo-base.yaml", tmp_path)
    write(
        tmp_path,
        "left",
        "id: left\ntitle: L\nextends: [demo-base]\noverrides: [{rule: DEMO-OLD, severity: info}]\n",
    )
    write(tmp_path, "right", "id: right\ntitle: R\nextends: [demo-base]\n")
    top = write(tmp_path, "top", "id: top\ntitle: T\nextends: [left, right]\n")
    policy = load_policy(str(top), REGISTRY)
    assert [s.id for s in policy.sources] == ["demo-base", "left", "right", "top"]
    assert len(policy.waivers) == 2
    # `right` comes later in `extends`, so its view of DEMO-OLD (not overridden) wins.
    assert {r.id: r.severity for r in policy.rules}["DEMO-OLD"] is Severity.LOW


RULE = """\
id: bad
title: Bad
extends: [demo-base]
settings:
  demo:
    depth: 3
rules:
  - id: BAD-RULE
    control: demo.forbidden
    params:
      ports: [21]
    severity: low
    title: {vi: x, en: x}
    remediation: {vi: x, en: x}
overrides:
  - rule: DEMO-PORTS
    severity: low
waivers:
  - rule: DEMO-PORTS
    system: qlvb
    reason: r
    approved_by: a
    expires: 2027-03-31
"""

BROKEN = """\
id: broken
title: B
rules:
  - id: X-1
    params: {version: SSLv3}
    control: demo.min_version
    severity: low
    title: {vi: x, en: x}
    remediation: {vi: x, en: x}
"""

BAD = [
    # (what, replace this, with this, file that is blamed, line, text in the message)
    (
        "unknown control",
        "control: demo.forbidden",
        "control: demo.nope",
        "bad",
        9,
        "rule 'BAD-RULE', control: unknown control 'demo.nope'",
    ),
    (
        "control of an absent check",
        "control: demo.forbidden",
        "control: tls.min_version",
        "bad",
        9,
        "no loaded check provides it",
    ),
    ("bad control id", "control: demo.forbidden", "control: Demo", "bad", 9, "rule 'BAD-RULE', control:"),
    (
        "param of wrong type",
        "ports: [21]",
        "ports: [twenty-one]",
        "bad",
        11,
        "rule 'BAD-RULE', params, ports item 1:",
    ),
    (
        "unknown param",
        "ports: [21]",
        "ports: [21]\n      prots: [1]",
        "bad",
        12,
        "rule 'BAD-RULE', params, prots: unknown key",
    ),
    (
        "missing param",
        "    params:\n      ports: [21]\n",
        "",
        "bad",
        8,
        "rule 'BAD-RULE', params, ports: required key is missing",
    ),
    (
        "unknown rule key",
        "    severity: low\n    title",
        "    severity: low\n    sevrity: low\n    title",
        "bad",
        13,
        "rule 'BAD-RULE', sevrity: unknown key",
    ),
    (
        "bad severity",
        "    severity: low\n    title",
        "    severity: urgent\n    title",
        "bad",
        12,
        "rule 'BAD-RULE', severity: 'urgent' is not one of",
    ),
    ("bad rule id", "id: BAD-RULE", "id: bad rule", "bad", 8, "rule 'bad rule', id:"),
    (
        "duplicate rule id",
        "overrides:",
        "  - {id: BAD-RULE, control: demo.forbidden, params: {ports: [1]}, severity: low,"
        " title: {vi: x, en: x}, remediation: {vi: x, en: x}}\noverrides:",
        "bad",
        15,
        "BAD-RULE is defined twice",
    ),
    (
        "override of unknown rule",
        "rule: DEMO-PORTS\n    severity",
        "rule: DEMO-PORTZ\n    severity",
        "bad",
        16,
        "overrides item 1, rule: unknown rule DEMO-PORTZ",
    ),
    (
        "override with bad param",
        "    severity: low\nwaivers",
        "    params: {strict: maybe}\nwaivers",
        "bad",
        17,
        "overrides item 1, params, strict:",
    ),
    (
        "override twice",
        "    severity: low\nwaivers",
        "    severity: low\n  - {rule: DEMO-PORTS, enabled: false}\nwaivers",
        "bad",
        18,
        "overridden twice",
    ),
    (
        "waiver of unknown rule",
        "  - rule: DEMO-PORTS\n    system",
        "  - rule: NOPE\n    system",
        "bad",
        19,
        "waiver of 'NOPE', rule: waiver names rule NOPE",
    ),
    (
        "waiver of disabled rule",
        "    severity: low\nwaivers",
        "    enabled: false\nwaivers",
        "bad",
        19,
        "waiver of 'DEMO-PORTS', rule: waiver names rule DEMO-PORTS",
    ),
    ("waiver bad date", "expires: 2027-03-31", "expires: 2027-02-30", "bad", 23, "waivers[0].expires:"),
    (
        "waiver missing approver",
        "    approved_by: a\n",
        "",
        "bad",
        19,
        "waiver of 'DEMO-PORTS', approved_by: required, but missing",
    ),
    ("settings of unknown check", "  demo:\n", "  dmo:\n", "bad", 5, "settings, dmo: unknown check 'dmo'"),
    ("settings bad value", "depth: 3", "depth: deep", "bad", 6, "settings, demo, depth:"),
    ("settings unknown key", "depth: 3", "dept: 3", "bad", 6, "settings, demo, dept: unknown key"),
    (
        "settings not a mapping",
        "  demo:\n    depth: 3\n",
        "  demo: 3\n",
        "bad",
        5,
        "settings, demo: must be a mapping",
    ),
    ("extends missing", "extends: [demo-base]", "extends: [demo-bse]", "bad", 3, "no policy 'demo-bse'"),
    ("bad policy id", "id: bad\n", "id: Bad Policy\n", "bad", 1, "id:"),
    ("unknown top key", "title: Bad\n", "title: Bad\nrulez: []\n", "bad", 3, "rulez: unknown key"),
    (
        "parent's bad param blamed on parent",
        "extends: [demo-base]",
        "extends: [demo-base, broken]",
        "broken",
        5,
        "rule 'X-1', params, version:",
    ),
    (
        "parent's bad setting blamed on parent",
        "    depth: 3\n",
        "    mode: full\n",
        "demo-base",
        6,
        "settings, demo, depth",
    ),
]


@pytest.mark.parametrize(("what", "old", "new", "blamed", "line", "text"), BAD, ids=[b[0] for b in BAD])
def test_bad_policy_names_file_line_and_field(
    policies: Path, bundled: Path, what: str, old: str, new: str, blamed: str, line: int, text: str
) -> None:
    assert old in RULE, what
    write(policies, "broken", BROKEN)
    if blamed == "demo-base":
        parent = policies / "demo-base.yaml"
        parent.write_text(parent.read_text("utf-8").replace("{depth: 2}", "{depth: many}"), "utf-8")
    path = write(policies, "bad", RULE.replace(old, new, 1))
    with pytest.raises(ConfigError) as info:
        load_policy(str(path), REGISTRY)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{policies / (blamed + '.yaml')}:{line}: "), message
    assert text in message, message


def test_the_unmodified_bad_template_loads(policies: Path, bundled: Path) -> None:
    path = write(policies, "bad", RULE)
    policy = load_policy(str(path), REGISTRY)
    assert policy.settings["demo"] == DemoSettings(depth=3)
    assert [r.id for r in policy.rules][-1] == "BAD-RULE"


def test_file_found_by_id_must_declare_that_id(tmp_path: Path, bundled: Path) -> None:
    parent = write(tmp_path, "parent", "id: other\ntitle: P\n")
    child = write(tmp_path, "child", "id: child\ntitle: C\nextends: [parent]\n")
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(parent))}:1: id: .*declares 'other'"):
        load_policy(str(child), REGISTRY)


def test_first_error_counts_the_rest(tmp_path: Path, bundled: Path) -> None:
    path = write(tmp_path, "p", "id: p\ntitle: P\nrules:\n  - id: X-1\n    control: demo.forbidden\n")
    with pytest.raises(
        ConfigError,
        match=r":4: rule 'X-1', severity: required, but missing \(\+2 more problems\)$",
    ):
        load_policy(str(path), REGISTRY)


def make_rule(applies_to: AppliesTo) -> ResolvedRule:
    return ResolvedRule(
        id="R-1",
        control="demo.forbidden",
        check="demo",
        params=PortParams(ports=(1,)),
        severity=Severity.LOW,
        applies_to=applies_to,
        title=Text(vi="t", en="t"),
        remediation=Text(vi="r", en="r"),
        references=(),
        policy="p",
    )


SYSTEM = SystemInfo(id="qlvb", name="Q", owner="O", level=3, tags=("internal", "web"))


@pytest.mark.parametrize(
    ("applies_to", "expected"),
    [
        (AppliesTo(), True),
        (AppliesTo(levels=(3, 4)), True),
        (AppliesTo(levels=(4, 5)), False),
        (AppliesTo(tags=("web", "mail")), True),
        (AppliesTo(tags=("mail",)), False),
        (AppliesTo(tags=()), False),
        (AppliesTo(systems=("qlvb",)), True),
        (AppliesTo(systems=("other",)), False),
        (AppliesTo(levels=(3,), tags=("web",), systems=("qlvb",)), True),
        (AppliesTo(levels=(3,), tags=("web",), systems=("other",)), False),
    ],
)
def test_rule_applies(applies_to: AppliesTo, expected: bool) -> None:
    assert make_rule(applies_to).applies(SYSTEM) is expected
