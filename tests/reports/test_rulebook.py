"""Rule books: a resolved policy as Markdown for people and as one self-contained YAML file."""

from pathlib import Path
from typing import Any

import pytest

from attt.reports._i18n import strings
from attt.reports.rulebook import policy_markdown, policy_yaml
from attt.scanner.models.policy import ResolvedPolicy
from attt.scanner.policy import load_policy
from tests.scanner.test_policy import POLICIES, REGISTRY, bundled  # noqa: F401 - `bundled` is a fixture


def test_markdown_rule_book_marks_confidence() -> None:
    policy = load_policy(str(POLICIES / "demo-base.yaml"), REGISTRY)
    vi = policy_markdown(policy)
    assert vi.startswith("# Demo baseline\n")
    assert policy.sha256 in vi
    assert "### DEMO-VERSION — Phiên bản TLS tối thiểu" in vi
    assert f"TCVN 14423:2026 8.3.1 ({strings('vi')['unverified']})" in vi
    assert f"TT 39/2017/TT-BTTTT 4.2 ({strings('vi')['secondary']})" in vi
    assert '`{"ports": [21, 23], "strict": false}`' in vi
    assert "cấp độ 2, 3" in vi
    assert "Giám đốc Trung tâm CNTT tỉnh" in vi
    en = policy_markdown(policy, "en")
    assert "### DEMO-VERSION — Minimum TLS version" in en
    assert "- Severity: **medium**" in en
    assert f"TCVN 14423:2026 8.3.1 ({strings('en')['unverified']})" in en
    assert "every system" in en


@pytest.mark.usefixtures("bundled")  # no bundled policy may stand in for the test files
def test_resolved_yaml_loads_back_as_the_same_policy(tmp_path: Path) -> None:
    policy = load_policy(str(POLICIES / "demo-child.yaml"), REGISTRY)
    text = policy_yaml(policy)
    assert text.startswith(f"# resolved policy demo-child 1, sha256 {policy.sha256}\n")
    flat = tmp_path / "flat.yaml"
    flat.write_text(text, encoding="utf-8")
    again = load_policy(str(flat), REGISTRY)

    def essence(p: ResolvedPolicy) -> list[tuple[Any, ...]]:
        return [(r.id, r.control, r.params, r.severity, r.applies_to, r.title, r.references) for r in p.rules]

    assert essence(again) == essence(policy)
    assert again.waivers == policy.waivers
    assert again.settings == policy.settings
