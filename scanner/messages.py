"""What the command line says, in the user's language: `--lang`, else `ATTT_LANG`, else the
locale (`LC_ALL`, `LC_MESSAGES`, `LANG`). A locale naming neither language (`C`, `POSIX`) gets
English messages, as gettext falls back to its message ids; reports then default to Vietnamese,
the language of the agencies attt serves. The catalogs are `scanner/i18n/<lang>.yaml`, one key
set in both (a test holds them to it).
"""

import os
from collections.abc import Mapping
from functools import cache
from importlib.resources import files
from types import MappingProxyType
from typing import Any, Final, Literal

import yaml

from attt.scanner.errors import Problem

Lang = Literal["vi", "en"]
LANGS: Final[tuple[Lang, ...]] = ("vi", "en")
HINTS: Final = {r"^[a-z0-9][a-z0-9-]{0,62}$": "hint_id", r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$": "hint_id"}
"""Patterns the models use, and the message that explains each in words."""


def language(
    explicit: str | None = None, environ: Mapping[str, str] = os.environ, fallback: Lang = "en"
) -> Lang:
    """The language to speak: the option, else ATTT_LANG, else the locale, else `fallback`."""
    for value in (explicit, environ.get("ATTT_LANG")):
        if value:
            code = value[:2].lower()
            if code in LANGS:
                return code
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        code = environ.get(name, "")[:2].lower()
        if code in LANGS:
            return code
    return fallback


@cache
def catalog(lang: Lang) -> MappingProxyType[str, str]:
    # libyaml's loader, as for every other YAML file: eight times faster than the pure-Python one.
    text = files("attt.scanner").joinpath("i18n", f"{lang}.yaml").read_text("utf-8")
    raw: Any = yaml.load(text, Loader=yaml.CSafeLoader)
    return MappingProxyType({str(k): str(v) for k, v in raw.items()})


def say(lang: Lang, key: str, **values: Any) -> str:
    return catalog(lang)[key].format(**values)


def problem_text(problem: Problem, lang: Lang) -> str:
    """`file:line: where: what`, the place named by ids and 1-based numbers."""
    messages = catalog(lang)
    where = ", ".join(_step(step, messages) for step in problem.place)
    key = f"err_{problem.kind}"
    values = dict(problem.values)
    if problem.kind == "string_pattern_mismatch":
        values["hint"] = messages[HINTS.get(values.get("pattern", ""), "hint_other")]
    try:
        what = messages[key].format(**values) if key in messages else problem.detail
    except (KeyError, IndexError):  # a message naming a value this error did not carry
        what = problem.detail
    head = f"{problem.file}:{problem.line}"
    return f"{head}: {where}: {what}" if where else f"{head}: {what}"


def _step(step: tuple[str, ...], messages: Mapping[str, str]) -> str:
    key, *args = step
    if key == "place_item":
        return messages[key].format(key=args[0], n=args[1])
    if key == "place_field":
        return messages[key].format(key=args[0])
    return messages[key].format(id=args[0])
