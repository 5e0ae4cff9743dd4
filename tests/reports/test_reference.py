"""A reference and its confidence read the same in every format that prints one (in the
format's language)."""

import html

import pytest

from attt.reports._i18n import strings
from attt.reports._reference import reference_text
from attt.reports.base import Lang, Renderer
from attt.reports.csv import CsvRenderer
from attt.reports.html import HtmlRenderer
from attt.reports.junit import JunitRenderer
from attt.reports.rulebook import policy_markdown
from attt.scanner.models.policy import Reference
from attt.scanner.policy import load_policy
from tests import factories as F
from tests.scanner.test_policy import POLICIES, REGISTRY


@pytest.mark.parametrize(
    ("reference", "lang", "template"),
    [
        (F.reference(), "vi", "TCVN 11930:2017 7.2.3.4 ({unverified})"),
        (F.reference(), "en", "TCVN 11930:2017 7.2.3.4 ({unverified})"),
        (F.reference("TT 39", None, confidence="secondary"), "en", "TT 39 ({secondary})"),
        (F.reference("ISO 27001", "A.8", confidence="verified"), "vi", "ISO 27001 A.8"),
    ],
)
def test_reference_text_marks_every_clause_not_verified(
    reference: Reference, lang: Lang, template: str
) -> None:
    # The confidence reads as its interface string in the report's language; verified needs none.
    text = template.format_map(strings(lang))
    assert reference_text(reference, lang) == text
    with_url = reference.model_copy(update={"url": "https://example.org/tt39"})
    assert reference_text(with_url, lang) == text
    assert reference_text(with_url, lang, url=True) == f"{text} <https://example.org/tt39>"


@pytest.mark.parametrize("lang", ["vi", "en"])
@pytest.mark.parametrize("renderer", [HtmlRenderer(), CsvRenderer(), JunitRenderer()], ids=lambda r: r.format)
def test_every_report_format_cites_references_one_way(renderer: Renderer, lang: Lang) -> None:
    finding = F.finding()
    out = renderer.render(F.report([finding]), lang).decode("utf-8-sig")
    shown = html.unescape(out)
    for reference in finding.references:
        assert reference_text(reference, lang) in shown


def test_rule_books_cite_references_the_same_way() -> None:
    policy = load_policy(str(POLICIES / "demo-base.yaml"), REGISTRY)
    references = [r for rule in policy.rules for r in rule.references]
    assert references
    languages: tuple[Lang, ...] = ("vi", "en")
    for lang in languages:
        book = policy_markdown(policy, lang)
        assert all(reference_text(r, lang, url=True) in book for r in references)
