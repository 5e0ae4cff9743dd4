"""Interface strings of the reports, read once per language from `reports/i18n/<lang>.yaml`."""

from functools import cache
from importlib.resources import files
from types import MappingProxyType
from typing import Any

import yaml

from attt.reports.base import Lang


@cache
def strings(lang: Lang) -> MappingProxyType[str, str]:
    """The interface strings of one language; both files carry the same keys (a test holds them to it)."""
    raw: Any = yaml.safe_load(files("attt.reports").joinpath("i18n", f"{lang}.yaml").read_text("utf-8"))
    if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
        raise TypeError(f"reports/i18n/{lang}.yaml must map keys to strings")
    return MappingProxyType({str(k): v for k, v in raw.items()})
