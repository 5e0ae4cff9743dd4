"""Discovers checks through the `attt.checks` entry-point group, built-ins included."""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from pydantic import BaseModel

from attt.scanner.plugin import API_VERSION, Check, Control

ENTRY_POINT_GROUP = "attt.checks"


@dataclass(frozen=True)
class PluginFailure:
    """A plugin that could not be loaded: listed by `attt checks list`, never fatal by itself."""

    name: str
    distribution: str
    reason: str


@dataclass(frozen=True)
class RegisteredCheck:
    check: Check
    distribution: str


@dataclass(frozen=True)
class Registry:
    checks: Mapping[str, RegisteredCheck]
    failures: tuple[PluginFailure, ...] = ()
    _control_index: Mapping[str, tuple[str, Control[Any, Any]]] = field(default_factory=dict)

    @classmethod
    def load(cls) -> "Registry":
        return cls.from_entry_points(entry_points(group=ENTRY_POINT_GROUP))

    @classmethod
    def from_entry_points(cls, eps: Iterable[EntryPoint]) -> "Registry":
        checks: dict[str, RegisteredCheck] = {}
        failures: list[PluginFailure] = []
        # Editable installs can list an entry point twice; (name, value) identifies it.
        unique = {(ep.name, ep.value): ep for ep in eps}
        for ep in sorted(unique.values(), key=lambda e: e.name):
            dist = ep.dist.name if ep.dist is not None else "unknown"
            try:
                check = _instantiate(ep)
            except Exception as exc:  # a broken plugin must not take the scanner down
                failures.append(PluginFailure(ep.name, dist, f"{type(exc).__name__}: {exc}"))
                continue
            if ep.name in checks:
                failures.append(PluginFailure(ep.name, dist, "check name already registered"))
                continue
            checks[ep.name] = RegisteredCheck(check, dist)
        return cls.of(checks, failures)

    @classmethod
    def of(cls, checks: Mapping[str, RegisteredCheck], failures: Iterable[PluginFailure] = ()) -> "Registry":
        index: dict[str, tuple[str, Control[Any, Any]]] = {}
        problems = list(failures)
        for name, registered in checks.items():
            for control_id, control in registered.check.controls.items():
                if control_id in index:
                    problems.append(
                        PluginFailure(
                            name,
                            registered.distribution,
                            f"control {control_id} is already provided by check {index[control_id][0]}",
                        )
                    )
                    continue
                index[control_id] = (name, control)
        return cls(dict(checks), tuple(problems), index)

    def control(self, control_id: str) -> tuple[str, Control[Any, Any]] | None:
        """The check name and control for an id, or None when no loaded check provides it."""
        return self._control_index.get(control_id)

    def check(self, name: str) -> Check:
        return self.checks[name].check

    @property
    def data_models(self) -> Mapping[str, type[BaseModel]]:
        """Check name -> the model of its observations' data."""
        return {name: registered.check.data_model for name, registered in self.checks.items()}

    def ordered(self, names: Iterable[str]) -> list[str]:
        """Check names with every check after the checks it reads (`Check.after`)."""
        wanted = set(names)
        done: list[str] = []

        def visit(name: str, path: tuple[str, ...]) -> None:
            if name in done or name not in wanted:
                return
            if name in path:
                raise ValueError(f"checks depend on each other in a cycle: {' -> '.join(path)}")
            for dependency in self.check(name).after:
                visit(dependency, (*path, name))
            done.append(name)

        for name in sorted(wanted):
            visit(name, ())
        return done


def _instantiate(ep: EntryPoint) -> Check:
    cls = ep.load()
    check: Check = cls()
    if check.name != ep.name:
        raise TypeError(f"class declares name {check.name!r}, entry point says {ep.name!r}")
    if check.api_version != API_VERSION:
        raise TypeError(f"plugin API version {check.api_version}, attt speaks {API_VERSION}")
    for control_id in check.controls:
        if not control_id.startswith(f"{check.name}."):
            raise TypeError(f"control {control_id} must be named {check.name}.<something>")
    return check
