"""What `attt checks list` prints: each registered check, its controls, and with `verbose` what a
newcomer needs to go from a rule id to its code (docstring, params, settings, source line)."""

import ast
import inspect
import itertools
import textwrap
import types
from collections.abc import Iterable, Iterator
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from attt.scanner.plugin import Control, Described, NoParams, NoSettings
from attt.scanner.registry import RegisteredCheck

_INDENT = "    "
_LONG_DEFAULT = 80
"""A default longer than this (the ports check's 113 common ports) is cut: the source has it."""


def check_lines(name: str, registered: RegisteredCheck, verbose: bool = False) -> Iterator[str]:
    """The lines for one check: a heading, then one line per control (more with `verbose`)."""
    check = registered.check
    yield f"{name}  (from {registered.distribution}; after: {', '.join(check.after) or '—'})"
    if verbose:
        # The check class's docstring says what one observation is (per host, per endpoint).
        yield from _indented(inspect.cleandoc(type(check).__doc__ or "").splitlines(), 1)
        yield from _indented(_model_lines("settings", check.settings_model, NoSettings), 1)
        if isinstance(check, Described):
            yield from _indented(check.describe(), 1)
    for control_id, control in sorted(check.controls.items()):
        yield f"  {control_id:<36} {control.summary}"
        if verbose:
            yield from _indented(_control_lines(control), 2)


def _control_lines(control: Control[Any, Any]) -> Iterator[str]:
    rest = control.doc.split("\n", 1)[1].strip() if "\n" in control.doc else ""
    if rest:
        yield from rest.splitlines()
    yield from _model_lines("params", control.params_model, NoParams)
    yield f"source: {control.source}"


def _model_lines(label: str, model: type[BaseModel], empty: type[BaseModel]) -> Iterator[str]:
    """`label (Model):` and one line per field, its description under it; `label: none` for a
    model without fields."""
    if model is empty or not model.model_fields:
        yield f"{label}: none"
        return
    yield f"{label} ({model.__name__}):"
    docs = field_docs(model)
    for field_name, info in model.model_fields.items():
        yield f"{_INDENT}{field_name}: {type_name(info.annotation)}{_default(info)}"
        if described := info.description or docs.get(field_name):
            yield from (f"{_INDENT * 2}{line}" for line in described.splitlines())


def field_docs(model: type[BaseModel]) -> dict[str, str]:
    """Each field's docstring (the string right under it), from the source of the model and of
    its bases. Read here, when a listing asks: pydantic's `use_attribute_docstrings` reads the
    source of every model as it is defined, a tenth of every command's start-up."""
    docs: dict[str, str] = {}
    for cls in reversed(model.__mro__):
        if not issubclass(cls, BaseModel) or cls is BaseModel:
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
        except (OSError, TypeError, SyntaxError):  # no source at hand: the listing goes without
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for field, under in itertools.pairwise(body):
            if (
                isinstance(field, ast.AnnAssign)
                and isinstance(field.target, ast.Name)
                and isinstance(under, ast.Expr)
                and isinstance(under.value, ast.Constant)
                and isinstance(under.value.value, str)
            ):
                docs[field.target.id] = inspect.cleandoc(under.value.value)
    return docs


def type_name(annotation: Any) -> str:
    """A field's type as a reader writes it: `tuple[Literal['TLSv1.2', 'TLSv1.3'], ...] | None`.
    Constraints inside (`Annotated[int, Field(ge=1)]`) are left out; the source has them."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return type_name(args[0])
    if origin is Literal:
        return f"Literal[{', '.join(repr(a) for a in args)}]"
    if origin in (Union, types.UnionType):
        return " | ".join(type_name(a) for a in args)
    if annotation is type(None):
        return "None"
    if annotation is Ellipsis:
        return "..."
    if origin is not None:
        return f"{getattr(origin, '__name__', str(origin))}[{', '.join(type_name(a) for a in args)}]"
    return getattr(annotation, "__name__", str(annotation))


def _default(info: FieldInfo) -> str:
    if info.is_required():
        return " (required)"
    shown = repr(info.get_default(call_default_factory=True, validated_data={}))
    return f" = {shown if len(shown) <= _LONG_DEFAULT else shown[: _LONG_DEFAULT - 1] + '…'}"


def _indented(lines: Iterable[str], depth: int) -> Iterator[str]:
    prefix = _INDENT * depth
    for line in lines:
        yield f"{prefix}{line}" if line else ""
