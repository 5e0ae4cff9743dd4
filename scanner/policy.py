"""Loading policy files, resolving `extends` and `overrides`, and validating every rule against
the controls the loaded checks provide, so that a bad policy fails before any scan.

Resolution of a file that extends parents P1, P2, ...:
1. the parents' resolved rules, in `extends` order; a later parent's rule with the same id
   replaces an earlier one in place (each file is loaded once, however often it is named);
2. the file's own rules; one with an inherited id replaces that rule in place;
3. the file's overrides, applied to the rules of steps 1-2;
4. waivers accumulate; each must name a rule of its own file's resolved view, and a waiver
   whose rule a descendant disabled is dropped, since it waives nothing;
5. settings merge per check, the descendant's keys winning.
Controls, params and settings are validated on the final result only, so a descendant can
disable a rule whose check is not installed.
"""

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from attt.scanner._yaml import Loc, YamlDoc, data_path, first_error, load_yaml, validate, with_more
from attt.scanner.errors import ConfigError
from attt.scanner.models.policy import (
    PolicyFile,
    PolicySource,
    ResolvedPolicy,
    ResolvedRule,
    RuleSpec,
    Waiver,
)
from attt.scanner.registry import Registry

_SUFFIXES = (".yaml", ".yml")


def bundled_dir() -> Path:
    """The directory of the bundled policies (the `policies` package, also when installed)."""
    return Path(str(resources.files("attt.policies")))


def bundled_policy_ids() -> list[str]:
    return sorted(p.stem for p in bundled_dir().iterdir() if p.suffix in _SUFFIXES)


def default_policy_ref(level: int) -> str:
    """The bundled policy for a security level, or `baseline` when there is none."""
    ref = f"vn-level-{level}"
    return ref if ref in bundled_policy_ids() else "baseline"


Read = dict[tuple[Path, str], tuple[YamlDoc, PolicyFile]]
"""(resolved path, name) -> the file parsed and validated: what several policies loaded in one
run share (every level policy extends `baseline`, which is read once)."""


def load_policy(
    ref: str,
    registry: Registry,
    *,
    search_dirs: Sequence[Path] = (),
    rebase: str | None = None,
    read: Read | None = None,
) -> ResolvedPolicy:
    """Load, resolve and validate a policy given as a file path or a bundled policy id.

    `extends` ids are looked up next to the file that names them, then in `search_dirs`,
    then among the bundled policies. Every error is a one-line ConfigError with file and line.

    `rebase` (overlay mode) lays the file over that policy instead of what it `extends`: its
    rules, overrides and waivers apply on top of, say, vn-level-1 for a level-1 system. Its
    overrides and waivers of rules the new base does not have are dropped, since they judge
    nothing there; load it once without `rebase` first to have every name checked.

    `read` keeps the files read, for the next policies loaded in the same run.
    """
    resolver = _Resolver(registry, tuple(search_dirs), rebase, {} if read is None else read)
    if ref.endswith(_SUFFIXES) or "/" in ref:
        path, name = Path(ref), ref
    else:
        found = resolver.find(ref, ())
        if found is None:
            known = ", ".join(bundled_policy_ids()) or "none"
            raise ConfigError(f"policy {ref!r}: no such file or bundled policy (bundled: {known})")
        path, name = found
    layer = resolver.layer(path, name, None, ())
    return resolver.finish(layer)


@dataclass(frozen=True)
class _Origin:
    """Where in which file a value was written, for error messages."""

    doc: YamlDoc
    loc: Loc


@dataclass(frozen=True)
class _Rule:
    spec: RuleSpec
    policy: str
    origin: _Origin
    params_origin: _Origin
    """Where `params` was last written; a missing param is reported there."""
    param_origins: Mapping[str, _Origin]


@dataclass
class _Layer:
    """The resolved state of one policy file and its ancestors, before final validation."""

    file: PolicyFile
    rules: dict[str, _Rule] = field(default_factory=dict)
    waivers: dict[tuple[str, int], tuple[Waiver, _Origin]] = field(default_factory=dict)
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    setting_origins: dict[tuple[str, str], _Origin] = field(default_factory=dict)
    check_origins: dict[str, _Origin] = field(default_factory=dict)

    def absorb(self, parent: "_Layer") -> None:
        self.rules.update(parent.rules)
        self.waivers.update(parent.waivers)
        for check, values in parent.settings.items():
            self.settings[check] = {**self.settings.get(check, {}), **values}
        self.setting_origins.update(parent.setting_origins)
        self.check_origins.update(parent.check_origins)


class _Resolver:
    def __init__(
        self, registry: Registry, search_dirs: tuple[Path, ...], rebase: str | None, read: Read
    ) -> None:
        self.registry = registry
        self.search_dirs = search_dirs
        self.rebase = rebase
        """Base policy id replacing the top file's `extends` (overlay mode)."""
        self.sources: list[PolicySource] = []
        self.loaded: dict[Path, _Layer] = {}
        self.read = read

    def find(self, policy_id: str, near: tuple[Path, ...]) -> tuple[Path, str] | None:
        """The file of a policy id and the name errors use for it."""
        bundled = bundled_dir()
        for directory in (*near, *self.search_dirs, bundled):
            for suffix in _SUFFIXES:
                candidate = directory / f"{policy_id}{suffix}"
                if candidate.is_file():
                    name = f"bundled:{policy_id}" if directory == bundled else str(candidate)
                    return candidate, name
        return None

    def layer(self, path: Path, name: str, expected_id: str | None, chain: tuple[str, ...]) -> _Layer:
        key = path.resolve()
        if key in self.loaded:
            return self.loaded[key]
        if (key, name) not in self.read:
            doc = load_yaml(path, name)
            self.read[(key, name)] = (doc, validate(PolicyFile, doc))
        doc, policy = self.read[(key, name)]
        if expected_id is not None and policy.id != expected_id:
            raise doc.error(("id",), f"file is named for policy {expected_id!r} but declares {policy.id!r}")
        rebased = self.rebase is not None and not chain
        if rebased:
            policy = policy.model_copy(update={"extends": (self.rebase,)})
        chain = (*chain, policy.id)
        layer = _Layer(policy)
        for index, parent_id in enumerate(policy.extends):
            if parent_id in chain:
                cycle = " -> ".join((*chain[chain.index(parent_id) :], parent_id))
                raise doc.error(("extends", index), f"extends cycle: {cycle}")
            found = self.find(parent_id, (path.parent,))
            if found is None:
                raise doc.error(("extends", index), f"no policy {parent_id!r} next to this file or bundled")
            layer.absorb(self.layer(*found, parent_id, chain))
        self._own_rules(layer, doc)
        self._overrides(layer, doc, lenient=rebased)
        self._waivers(layer, doc, lenient=rebased)
        self._settings(layer, doc)
        self.loaded[key] = layer
        self.sources.append(PolicySource(id=policy.id, version=policy.version, sha256=doc.sha256, path=name))
        return layer

    def _own_rules(self, layer: _Layer, doc: YamlDoc) -> None:
        seen: set[str] = set()
        for index, spec in enumerate(layer.file.rules):
            loc = ("rules", index)
            if spec.id in seen:
                raise doc.error((*loc, "id"), f"rule {spec.id} is defined twice in this file")
            seen.add(spec.id)
            layer.rules[spec.id] = _Rule(
                spec=spec,
                policy=layer.file.id,
                origin=_Origin(doc, loc),
                params_origin=_Origin(doc, (*loc, "params")),
                param_origins={k: _Origin(doc, (*loc, "params", k)) for k in spec.params},
            )

    def _overrides(self, layer: _Layer, doc: YamlDoc, *, lenient: bool = False) -> None:
        seen: set[str] = set()
        for index, override in enumerate(layer.file.overrides):
            loc = ("overrides", index)
            if override.rule in seen:
                raise doc.error((*loc, "rule"), f"rule {override.rule} is overridden twice in this file")
            seen.add(override.rule)
            rule = layer.rules.get(override.rule)
            if rule is None and lenient:
                continue
            if rule is None:
                raise doc.error(
                    (*loc, "rule"), f"unknown rule {override.rule}: no policy in the chain defines it"
                )
            if not override.enabled:
                del layer.rules[override.rule]
                continue
            update: dict[str, Any] = {}
            if override.severity is not None:
                update["severity"] = override.severity
            if override.applies_to is not None:
                update["applies_to"] = override.applies_to
            if override.vantage is not None:
                update["vantage"] = None if override.vantage == "inside" else override.vantage
            params_origin, param_origins = rule.params_origin, dict(rule.param_origins)
            if override.params is not None:
                update["params"] = {**rule.spec.params, **override.params}
                params_origin = _Origin(doc, (*loc, "params"))
                param_origins.update({k: _Origin(doc, (*loc, "params", k)) for k in override.params})
            layer.rules[override.rule] = _Rule(
                spec=rule.spec.model_copy(update=update),
                policy=rule.policy,
                origin=rule.origin,
                params_origin=params_origin,
                param_origins=param_origins,
            )

    def _waivers(self, layer: _Layer, doc: YamlDoc, *, lenient: bool = False) -> None:
        for index, waiver in enumerate(layer.file.waivers):
            loc = ("waivers", index)
            if waiver.rule not in layer.rules and lenient:
                continue
            if waiver.rule not in layer.rules:
                raise doc.error(
                    (*loc, "rule"), f"waiver names rule {waiver.rule}, which this policy does not have"
                )
            layer.waivers[(doc.name, index)] = (waiver, _Origin(doc, loc))

    def _settings(self, layer: _Layer, doc: YamlDoc) -> None:
        for check, values in layer.file.settings.items():
            if check not in self.registry.checks:
                known = ", ".join(sorted(self.registry.checks)) or "none"
                raise doc.error(("settings", check), f"unknown check {check!r} (registered: {known})")
            layer.settings[check] = {**layer.settings.get(check, {}), **values}
            layer.check_origins[check] = _Origin(doc, ("settings", check))
            layer.setting_origins.update({(check, k): _Origin(doc, ("settings", check, k)) for k in values})

    def finish(self, layer: _Layer) -> ResolvedPolicy:
        rules = tuple(self._resolve_rule(rule) for rule in layer.rules.values())
        settings = {
            check: _validated(
                self.registry.check(check).settings_model,
                values,
                layer.check_origins[check],
                {k: layer.setting_origins[(check, k)] for k in values},
            )
            for check, values in layer.settings.items()
        }
        policy = layer.file
        digest = hashlib.sha256(json.dumps([[s.id, s.sha256] for s in self.sources]).encode()).hexdigest()
        return ResolvedPolicy(
            id=policy.id,
            title=policy.title,
            version=policy.version,
            description=policy.description,
            sha256=digest,
            sources=tuple(self.sources),
            rules=rules,
            waivers=tuple(w for w, _ in layer.waivers.values() if w.rule in layer.rules),
            settings=settings,
        )

    def _resolve_rule(self, rule: _Rule) -> ResolvedRule:
        spec = rule.spec
        found = self.registry.control(spec.control)
        if found is None:
            raise rule.origin.doc.error(
                (*rule.origin.loc, "control"),
                f"unknown control {spec.control!r}: no loaded check provides it",
            )
        check, control = found
        params = _validated(control.params_model, spec.params, rule.params_origin, rule.param_origins)
        return ResolvedRule(
            id=spec.id,
            control=spec.control,
            check=check,
            params=params,
            severity=spec.severity,
            applies_to=spec.applies_to,
            title=spec.title,
            remediation=spec.remediation,
            references=spec.references,
            policy=rule.policy,
            vantage=spec.vantage,
        )


def _validated(
    model: type[BaseModel], values: dict[str, Any], origin: _Origin, key_origins: Mapping[str, _Origin]
) -> BaseModel:
    """Validate a mapping merged from several files, blaming the file that wrote the bad key."""
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        loc, message, more = first_error(exc)
        path = data_path(values, loc)
        blamed = key_origins.get(path[0]) if path else None
        where, full = (blamed, (*blamed.loc, *path[1:])) if blamed else (origin, (*origin.loc, *path))
        raise where.doc.error(full, with_more(message, more)) from None


def with_settings(
    policies: Mapping[str, tuple[ResolvedPolicy, ...]],
    forced: Mapping[str, Mapping[str, Any]],
    registry: Registry,
) -> dict[str, tuple[ResolvedPolicy, ...]]:
    """Each system's policies with `forced` (check -> settings) laid over their check settings.

    A choice made on the command line for one run (`--tls-exhaustive`) wins over every policy's;
    the policies' hashes stay those of their files, so the run's options record the choice."""
    if not forced:
        return dict(policies)

    def laid(policy: ResolvedPolicy) -> ResolvedPolicy:
        settings = dict(policy.settings)
        for check, values in forced.items():
            own = settings.get(check)
            base = own.model_dump() if own is not None else {}
            settings[check] = registry.check(check).settings_model.model_validate({**base, **values})
        return policy.model_copy(update={"settings": settings})

    return {system: tuple(laid(p) for p in chosen) for system, chosen in policies.items()}
