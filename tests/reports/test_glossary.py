"""One clean Vietnamese: every Vietnamese text attt ships follows reports/i18n/glossary.yaml.

Covered: the report's and the command line's interface strings (reports/i18n/vi.yaml,
scanner/i18n/vi.yaml), every `vi=` text written in the
built-in checks and the engine (verdicts, score formula, messages), and the Vietnamese titles,
descriptions and remediations of the bundled policies (policies/*.yaml). A text fails when it
uses a variant the glossary forbids, or leaves in its prose an English word the glossary knows.
"""

import ast
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from attt.reports._i18n import glossary, strings, value_text
from attt.scanner.messages import catalog

ROOT = Path(__file__).resolve().parents[2]
CODE_SPAN = re.compile(r"`[^`]*`|\{[^{}]*\}|\"[^\"]*\"")
"""Not prose: names in backticks, the {placeholders} a message fills in, quoted snippets."""


def i18n_texts() -> Iterator[tuple[str, str]]:
    for key, text in strings("vi").items():
        yield f"reports/i18n/vi.yaml:{key}", text
    for key, text in catalog("vi").items():
        yield f"scanner/i18n/vi.yaml:{key}", text


VIETNAMESE = re.compile(
    "[ăâđêôơưĂÂĐÊÔƠƯ\u00c0-\u00c3\u00c8-\u00ca\u00cc\u00cd\u00d2-\u00d5\u00d9\u00da\u00dd\u00e0-\u00e3\u00e8-\u00ea\u00ec\u00ed\u00f2-\u00f5\u00f9\u00fa\u00fd\u0128\u0129\u0168\u0169\u1ea0-\u1ef9]"
)


ENGLISH_NAMING_VIETNAMESE = {
    ("scanner/register.py", "headers such as"): "an English error that quotes the Vietnamese column names",
}
"""English texts that quote Vietnamese words: not Vietnamese texts, so not held to the glossary."""


def code_texts() -> Iterator[tuple[str, str]]:
    """Each `vi=` argument in checks/ and scanner/, and every other string there written in
    Vietnamese (a `why_vi`, a label pair), docstrings aside; f-string fields shown as `{}`. In a
    deliberately bilingual line (`vi / en`) only the Vietnamese half is held to the glossary."""
    for path in sorted([*ROOT.joinpath("checks").rglob("*.py"), *ROOT.joinpath("scanner").rglob("*.py")]):
        where = str(path.relative_to(ROOT))
        tree = ast.parse(path.read_text("utf-8"))
        docstrings = {
            id(node.value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
        }
        seen: set[str] = set()
        for node in ast.walk(tree):
            texts: list[tuple[int, str | None]] = []
            if isinstance(node, ast.Call):
                texts = [(k.value.lineno, _literal(k.value)) for k in node.keywords if k.arg == "vi"]
            elif isinstance(node, ast.JoinedStr | ast.Constant) and id(node) not in docstrings:
                text = _literal(node)
                texts = [(node.lineno, text)] if text and VIETNAMESE.search(text) else []
            for line, text in texts:
                if text is None or text in seen:
                    continue
                seen.add(text)
                if any(where == f and marker in text for f, marker in ENGLISH_NAMING_VIETNAMESE):
                    continue
                halves = [h for h in text.split(" / ") if VIETNAMESE.search(h)] if " / " in text else [text]
                for half in halves:
                    yield f"{where}:{line}", half


def _literal(node: ast.expr) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(_literal(part) or "{}" for part in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _literal(node.left), _literal(node.right)
        return None if left is None and right is None else (left or "{}") + (right or "{}")
    return None


def policy_texts() -> Iterator[tuple[str, str]]:
    for path in sorted(ROOT.joinpath("policies").glob("*.yaml")):
        yield from (
            (f"{path.relative_to(ROOT)}:{where}", text)
            for where, text in _vi_values(yaml.safe_load(path.read_text("utf-8")), "")
        )


def _vi_values(node: Any, where: str) -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "vi" and isinstance(value, str):
                yield where, value
            else:
                label = node.get("id", key) if key in ("title", "remediation", "description") else key
                yield from _vi_values(value, f"{where}/{label}")
    elif isinstance(node, list):
        for item in node:
            yield from _vi_values(item, f"{where}/{item.get('id', '') if isinstance(item, dict) else ''}")


SOURCES = {"i18n": i18n_texts, "code": code_texts, "policies": policy_texts}


def problems(text: str) -> list[str]:
    """What is wrong with one Vietnamese text, by the glossary."""
    found: list[str] = []
    prose = CODE_SPAN.sub(" ", text)
    lowered = prose.lower()
    for term in glossary().terms:
        found.extend(
            f"uses {variant!r} (say {term.vi!r})" for variant in term.forbidden if variant.lower() in lowered
        )
        found.extend(
            f"uses the wording {pattern!r} (say {term.vi!r})"
            for pattern in term.forbidden_patterns
            if re.search(pattern, prose, flags=re.IGNORECASE)
        )
        found.extend(
            f"leaves the English {word!r} (say {term.vi!r})"
            for word in term.en
            if re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", prose)
        )
    return found


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_vietnamese_texts_follow_the_glossary(source):
    texts = list(SOURCES[source]())
    bad = [f"{where}: {problem}: {text!r}" for where, text in texts for problem in problems(text)]
    assert bad == [], "\n".join(bad)


def test_the_glossary_covers_every_source():
    """Guards the collectors: a refactor that hides texts from them must not pass silently."""
    counts = {name: len(list(collect())) for name, collect in SOURCES.items()}
    assert counts["i18n"] >= 200
    assert counts["code"] >= 150
    assert counts["policies"] >= 100


def test_the_checker_catches_what_the_issue_reported():
    assert problems("không cipher suite nào được chấp nhận")
    assert problems("chứng chỉ đã hết hạn")
    assert problems("mọi bộ mã hóa đều bảo đảm forward secrecy")
    assert problems("thiếu header Strict-Transport-Security")
    assert problems("thuật toán khóa host yếu")
    assert problems("Không công bố dịch vụ ra Internet")
    assert problems("thuật toán đã bị phá")
    assert not problems("Đặt `ssl_ciphers` và Ciphers, HostKeyAlgorithms trong sshd_config")
    assert not problems("khóa máy chủ ssh-ed25519 256 bit; bộ mã hóa TLS_RSA_WITH_AES_128_CBC_SHA")


def test_the_glossary_is_consistent():
    terms = glossary().terms
    for term in terms:
        for other in terms:
            assert not [v for v in other.forbidden if v.lower() in term.vi.lower()], (
                term.vi,
                other.forbidden,
            )
    for english, vietnamese in glossary().values.items():
        assert not problems(vietnamese), (english, vietnamese)


def test_known_english_values_read_in_vietnamese():
    assert value_text("closed", "vi") == "đóng"
    assert value_text("trusted chain", "vi") == "chuỗi chứng thư số được tin cậy"
    assert value_text("closed", "en") == "closed"
    assert value_text("TLSv1.3", "vi") == "TLSv1.3"  # not in the glossary: shown as the tool wrote it
