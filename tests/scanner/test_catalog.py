"""`attt checks list [--verbose]`: from a control id to what it checks, why, its params and code."""

import importlib
import inspect
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, ClassVar, Literal

import pytest
from click.testing import CliRunner
from pydantic import BaseModel, Field

from attt.checks.tls.controls import MinVersionParams
from attt.scanner.catalog import check_lines, field_docs, type_name
from attt.scanner.cli import main
from attt.scanner.models.observation import Observation
from attt.scanner.models.target import Target
from attt.scanner.plugin import (
    API_VERSION,
    Control,
    Controls,
    Described,
    Params,
    ProbeContext,
    Settings,
    Verdict,
)
from attt.scanner.registry import RegisteredCheck, Registry

BUILT_IN = ("ports", "ssh", "tls")


def _built_in_controls() -> list[Control[Any, Any]]:
    registry = Registry.load()
    return [control for name in BUILT_IN for control in registry.check(name).controls.values()]


@pytest.mark.parametrize("control", _built_in_controls(), ids=lambda c: c.id)
def test_every_built_in_control_says_what_and_why(control: Control[Any, Any]) -> None:
    summary, _, reason = control.doc.partition("\n\n")
    assert "\n" not in summary and summary.endswith("."), "one summary line first"
    assert len(reason.split()) >= 15, "then the reason: the attack or standard behind the control"


@pytest.mark.parametrize("name", BUILT_IN)
def test_every_built_in_param_and_setting_is_described(name: str) -> None:
    check = Registry.load().check(name)
    models = [check.settings_model, *(c.params_model for c in check.controls.values())]
    bare = [
        f"{m.__name__}.{f}"
        for m in models
        for f, info in m.model_fields.items()
        if not (info.description or field_docs(m).get(f))
    ]
    assert bare == []


def test_plain_list_is_one_line_per_control() -> None:
    result = CliRunner().invoke(main, ["checks", "list"])
    assert result.exit_code == 0
    assert "  tls.min_version" in result.output
    assert "params" not in result.output and "source:" not in result.output


def test_verbose_list_shows_reason_params_settings_and_source() -> None:
    result = CliRunner().invoke(main, ["checks", "list", "--verbose"])
    assert result.exit_code == 0
    out = result.output
    block = out[out.index("  tls.min_version ") : out.index("  tls.mozilla_profile ")]
    assert "RFC 8996" in block
    assert "params (MinVersionParams):" in block
    assert (
        "version: Literal['SSLv2', 'SSLv3', 'TLSv1.0', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3'] = 'TLSv1.2'" in block
    )
    assert field_docs(MinVersionParams)["version"] in block
    module, line = Registry.load().check("tls").controls["tls.min_version"].source.split(":")
    assert f"source: {module}:{line}" in block
    # The line is where the control is declared: its decorator names the id.
    declared = inspect.getsource(importlib.import_module(module)).splitlines()[int(line) - 1]
    assert declared.startswith('@CONTROLS.control("tls.min_version", MinVersionParams')
    tls = out[out.index("\ntls  (") :]
    assert "    One observation per TLS endpoint (port)" in tls  # the check class's docstring
    assert "settings (TlsSettings):" in tls and "trust_anchors: tuple[str, ...] = ()" in tls
    assert "ports: tuple[int, ...] = (20, 21, 22" in out and "…" in out  # long defaults are cut
    assert "params: none" in out  # a control without params says so


# --- a third-party check with more to say ------------------------------------------------------

CONTROLS = Controls("web")


class WebSettings(Settings):
    paths: tuple[str, ...] = ("/",)
    """Paths requested on every web endpoint."""


class Limit(Params):
    limit: Annotated[int, Field(ge=1)] = 3
    """Most redirects followed."""


@CONTROLS.control("web.redirects", Limit)
def _redirects(data: BaseModel, params: Limit, target: Target) -> Verdict:
    """Redirect chains are short.

    Long chains hide where a request ends up and cost every client a round trip each time."""
    raise AssertionError("never judged here")


class WebCheck:
    name: ClassVar[str] = "web"
    api_version: ClassVar[int] = API_VERSION
    data_model: ClassVar[type[BaseModel]] = WebSettings
    settings_model: ClassVar[type[BaseModel]] = WebSettings
    after: ClassVar[tuple[str, ...]] = ("ports",)
    controls: ClassVar[Mapping[str, Control[Any, Any]]] = CONTROLS

    @classmethod
    def describe(cls) -> Iterable[str]:
        return ["requests:", "  GET / (follows redirects)"]

    def probe(self, target: Target, ctx: ProbeContext[WebSettings]) -> Iterable[Observation]:
        return ()


def test_a_check_adds_its_own_lines_through_describe() -> None:
    check = WebCheck()
    assert isinstance(check, Described)
    lines = list(check_lines("web", RegisteredCheck(check, "attt-web"), verbose=True))
    assert lines == [
        "web  (from attt-web; after: ports)",
        "    settings (WebSettings):",
        "        paths: tuple[str, ...] = ('/',)",
        "            Paths requested on every web endpoint.",
        "    requests:",
        "      GET / (follows redirects)",
        "  web.redirects                        Redirect chains are short.",
        "        Long chains hide where a request ends up and cost every client a round trip each time.",
        "        params (Limit):",
        "            limit: int = 3",
        "                Most redirects followed.",
        f"        source: {__name__}:{_redirects.__code__.co_firstlineno}",
    ]
    assert list(check_lines("web", RegisteredCheck(check, "attt-web"))) == lines[:1] + lines[6:7]


@pytest.mark.parametrize(
    ("annotation", "shown"),
    [
        (int, "int"),
        (tuple[Annotated[int, Field(ge=1)], ...], "tuple[int, ...]"),
        (tuple[str, ...] | None, "tuple[str, ...] | None"),
        (dict[int, Literal["smtp", "imap"]], "dict[int, Literal['smtp', 'imap']]"),
        (Literal["error", "not_applicable"], "Literal['error', 'not_applicable']"),
    ],
)
def test_types_read_as_written(annotation: Any, shown: str) -> None:
    assert type_name(annotation) == shown


class _Base(Params):
    first: int = 1
    """Said in the base."""
    bare: int = 2


class _Derived(_Base):
    second: str = "x"
    """Said in the subclass,
    over two lines."""
    first: int = 3
    """Said again, closer."""


def test_field_docs_read_the_model_and_its_bases() -> None:
    assert field_docs(_Derived) == {
        "first": "Said again, closer.",
        "second": "Said in the subclass,\nover two lines.",
    }
    assert field_docs(Params) == {}
