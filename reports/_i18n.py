"""Interface strings of the reports, read once per language from `reports/i18n/<lang>.yaml`, and
the glossary (`reports/i18n/glossary.yaml`) that fixes the Vietnamese terms and values."""

from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from types import MappingProxyType
from typing import Any

import yaml

from attt.reports.base import Lang
from attt.scanner.models.finding import Finding


def _load(name: str) -> Any:
    return yaml.safe_load(files("attt.reports").joinpath("i18n", name).read_text("utf-8"))


@cache
def strings(lang: Lang) -> MappingProxyType[str, str]:
    """The interface strings of one language; both files carry the same keys (a test holds them to it)."""
    raw = _load(f"{lang}.yaml")
    if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
        raise TypeError(f"reports/i18n/{lang}.yaml must map keys to strings")
    return MappingProxyType({str(k): v for k, v in raw.items()})


@dataclass(frozen=True, slots=True)
class Term:
    vi: str
    en: tuple[str, ...]
    forbidden: tuple[str, ...]
    forbidden_patterns: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Glossary:
    terms: tuple[Term, ...]
    values: MappingProxyType[str, str]
    """English evidence value -> how a Vietnamese report shows it."""


@cache
def glossary() -> Glossary:
    raw = _load("glossary.yaml")
    return Glossary(
        terms=tuple(
            Term(
                vi=t["vi"],
                en=tuple(t.get("en", ())),
                forbidden=tuple(t.get("forbidden", ())),
                forbidden_patterns=tuple(t.get("forbidden_patterns", ())),
            )
            for t in raw["terms"]
        ),
        values=MappingProxyType({str(k): str(v) for k, v in raw["values"].items()}),
    )


def value_text(value: str, lang: Lang) -> str:
    """An evidence value as the report's language shows it: a value the glossary knows is
    translated; any other (a protocol name, a cipher suite, what a server sent) stays as written."""
    return glossary().values.get(value, value) if lang == "vi" else value


def evidence_value(value: Any, lang: Lang) -> Any:
    """An evidence value (JSON-like) with every string the glossary knows in the language."""
    if isinstance(value, str):
        return value_text(value, lang)
    if isinstance(value, list | tuple):
        return [evidence_value(v, lang) for v in value]
    if isinstance(value, dict):
        return {k: evidence_value(v, lang) for k, v in value.items()}
    return value


def vantage_text(f: Finding, lang: Lang) -> str:
    """Where a finding was judged from, for the flat formats: the zone id, the words `judged from
    inside` when a rule asking for the Internet had to do without; empty without zones."""
    t = strings(lang)
    if f.judged_from_inside:
        return t["vantage_inside"].format(zone=f.vantage or t["vantage_here"])
    return f.vantage or ""
