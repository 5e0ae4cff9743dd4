"""The scan pipeline: configuration (checked before any packet) -> probes -> evaluation -> report."""

import secrets
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from attt import __version__
from attt.scanner.errors import ConfigError
from attt.scanner.evaluate import evaluate
from attt.scanner.inventory import load_inventory, resolve_targets, select_targets
from attt.scanner.models.observation import Observation, ProbeKey
from attt.scanner.models.policy import ResolvedPolicy
from attt.scanner.models.report import PolicyRef, Report, RunInfo, Summary
from attt.scanner.models.target import SystemInfo, Target
from attt.scanner.plugin import Credential
from attt.scanner.policy import default_policy_ref, load_policy
from attt.scanner.registry import Registry
from attt.scanner.runner import DEFAULT_CONCURRENCY, DEFAULT_TIMEOUT, ProgressSink, Runner, ScanPlan
from attt.scanner.store import Store, StoredRun
from attt.scanner.waivers import with_waivers

PolicyMode = Literal["force", "overlay"]
"""How `-p` policies judge a system: `force` judges every system by them alone; `overlay` lays
each over the system's own level policy (its rules, overrides and waivers on top)."""


@dataclass(frozen=True)
class ScanRequest:
    """What to scan."""

    inventory: Path
    policies: Sequence[str] = ()
    """Policy files or bundled ids for every system; empty: each system's level policy."""
    systems: Sequence[str] = ()
    tags: Sequence[str] = ()
    checks: Sequence[str] = ()
    """Empty: every registered check."""
    waivers: Sequence[Path] = ()
    """Waiver files, applied on top of each system's policies."""
    policy_mode: PolicyMode = "force"
    trigger: str = "manual"
    """What started the run: `schedule`, or `manual` with the user's name."""


@dataclass(frozen=True)
class ScanOptions:
    """How to scan: the same for a new run and a resumed one."""

    timeout: float = DEFAULT_TIMEOUT
    concurrency: int = DEFAULT_CONCURRENCY
    credentials: Callable[[Target], Credential | None] = field(default=lambda _target: None)


@dataclass(frozen=True)
class PreparedScan:
    """A scan whose every input has been validated and scope-checked; nothing was sent yet."""

    run: RunInfo
    targets: tuple[Target, ...]
    systems: tuple[SystemInfo, ...]
    policies: Mapping[str, tuple[ResolvedPolicy, ...]]
    resumed: bool = False
    """The run exists in the store already: it was interrupted, or its process died."""
    done: Mapping[ProbeKey, tuple[Observation, ...]] = field(default_factory=dict)
    """Probes the earlier attempt finished, with what they saw: not repeated."""


def prepare(request: ScanRequest, registry: Registry) -> PreparedScan:
    """Load and check everything a scan needs; raise ConfigError (exit 2) on any fault."""
    loaded = load_inventory(request.inventory)
    targets = select_targets(resolve_targets(loaded.inventory), request.systems, request.tags)
    if not targets:
        raise ConfigError(f"{request.inventory}: no host matches the --system/--tag selection")
    checks = _known_checks(request.checks or registry.checks, registry)
    systems = tuple(dict.fromkeys(t.system for t in targets))
    policies = policies_for(systems, request.policies, registry, request.policy_mode)
    known = {s.id for s in loaded.inventory.systems}
    policies = with_waivers(policies, request.waivers, known)
    started = utcnow()
    run = RunInfo(
        id=new_run_id(started),
        started=started,
        status="running",
        province=loaded.inventory.province,
        scope=loaded.inventory.scope,
        inventory_sha256=loaded.sha256,
        policies=policy_refs(policies),
        checks=checks,
        options={
            "policies": ",".join(request.policies),
            "policy_mode": request.policy_mode,
            "waivers": ",".join(str(w) for w in request.waivers),
            "inventory": str(loaded.path),
            "trigger": request.trigger,
        },
        owners=loaded.inventory.owners,
        judged_by=judged_by(systems, policies, request.policy_mode),
    )
    return PreparedScan(run=run, targets=tuple(targets), systems=systems, policies=policies)


def prepare_resume(
    stored: StoredRun, done: Mapping[ProbeKey, tuple[Observation, ...]], registry: Registry
) -> PreparedScan:
    """Continue an interrupted run with its own targets (addresses as pinned then), checks and
    policies; the probes it finished are not repeated."""
    if stored.info.status == "complete":
        raise ConfigError(f"run {stored.info.id} is complete; there is nothing to resume")
    _known_checks(stored.info.checks, registry)
    return PreparedScan(
        run=stored.info,
        targets=stored.targets,
        systems=stored.systems,
        policies=stored_policies(stored, registry),
        resumed=True,
        done=done,
    )


def _known_checks(names: Iterable[str], registry: Registry) -> tuple[str, ...]:
    unknown = sorted(set(names) - set(registry.checks))
    if unknown:
        known = ", ".join(sorted(registry.checks)) or "none"
        raise ConfigError(f"unknown check {unknown[0]!r} (registered: {known})")
    return tuple(registry.ordered(names))


def policies_for(
    systems: Sequence[SystemInfo], refs: Sequence[str], registry: Registry, mode: PolicyMode = "force"
) -> dict[str, tuple[ResolvedPolicy, ...]]:
    """Every system gets the given policies, or with none given, the one for its level; in
    overlay mode each given policy is laid over the system's level policy instead."""
    cache: dict[tuple[str, str | None], ResolvedPolicy] = {}

    def load(ref: str, base: str | None) -> ResolvedPolicy:
        if (ref, base) not in cache:
            cache[(ref, base)] = load_policy(ref, registry, rebase=base)
        return cache[(ref, base)]

    if mode == "overlay":
        for ref in refs:
            load(ref, None)  # every name checked against the file's own chain first
        return {
            s.id: tuple(load(r, default_policy_ref(s.level)) for r in refs) or (load(_level(s), None),)
            for s in systems
        }
    return {s.id: tuple(load(r, None) for r in (refs or [_level(s)])) for s in systems}


def _level(system: SystemInfo) -> str:
    return default_policy_ref(system.level)


def judged_by(
    systems: Sequence[SystemInfo], policies: Mapping[str, Sequence[ResolvedPolicy]], mode: PolicyMode
) -> dict[str, str]:
    """What the report says judged each system: `vn-level-2`, `hatinh over vn-level-2`."""

    def label(system: SystemInfo) -> str:
        ids = " + ".join(p.id for p in policies.get(system.id, ()))
        rebased = mode == "overlay" and ids != _level(system)
        return f"{ids} over {_level(system)}" if rebased else ids

    return {s.id: label(s) for s in systems}


def stored_policies(stored: StoredRun, registry: Registry) -> dict[str, tuple[ResolvedPolicy, ...]]:
    """The policies a stored run was judged by, read again from the options it recorded."""
    options = stored.info.options
    refs = [r for r in options.get("policies", "").split(",") if r]
    mode: PolicyMode = "overlay" if options.get("policy_mode") == "overlay" else "force"
    waivers = [Path(w) for w in options.get("waivers", "").split(",") if w]
    policies = policies_for(stored.systems, refs, registry, mode)
    return with_waivers(policies, waivers, {s.id for s in stored.systems})


def utcnow() -> datetime:
    """The clock runs read (started, finished, and the day waivers are judged against): one seam,
    so a test can play weeks of scheduled runs without waiting for them."""
    return datetime.now(UTC)


def new_run_id(now: datetime) -> str:
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def policy_refs(policies: Mapping[str, Sequence[ResolvedPolicy]]) -> tuple[PolicyRef, ...]:
    unique = {p.sha256: p for ps in policies.values() for p in ps}
    return tuple(
        PolicyRef(id=p.id, version=p.version, sha256=p.sha256, sources=p.sources)
        for p in sorted(unique.values(), key=lambda p: p.id)
    )


def run_scan(
    prepared: PreparedScan,
    options: ScanOptions,
    store: Store,
    registry: Registry,
    progress: ProgressSink | None = None,
) -> tuple[RunInfo, bool]:
    """Probe, store what each probe saw as soon as it ends, evaluate, and close the run.

    Returns the run and whether it was interrupted. An interruption (KeyboardInterrupt, which
    the CLI also raises for SIGTERM) still evaluates and stores what was observed and marks the
    run `incomplete`, so that `attt scan --resume RUN` can finish it.
    """
    info = prepared.run
    if prepared.resumed:
        store.reopen(info.id)
    else:
        store.create_run(info, prepared.systems, prepared.targets)
    observations: list[Observation] = [o for seen in prepared.done.values() for o in seen]
    probed: set[ProbeKey] = set(prepared.done)
    lock = threading.Lock()

    def keep(target: Target, check: str, seen: Sequence[Observation]) -> None:
        store.record_probe(info.id, check, target, seen)
        with lock:
            observations.extend(seen)
            probed.add((check, *target.key))

    runner = Runner(registry, keep, progress)
    plan = ScanPlan(
        targets=prepared.targets,
        checks=info.checks,
        policies=prepared.policies,
        timeout=options.timeout,
        concurrency=options.concurrency,
        credentials=options.credentials,
        done=prepared.done,
    )
    complete = interrupted = False
    try:
        complete = runner.run(plan)
    except KeyboardInterrupt:
        interrupted = True
    finished = utcnow()
    findings = evaluate(
        prepared.targets, observations, prepared.policies, registry, info.checks, finished, probed
    )
    info = store.finish_run(info.id, "complete" if complete else "incomplete", finished, findings)
    return info, interrupted


def reevaluate(
    stored: StoredRun,
    refs: Sequence[str],
    registry: Registry,
    now: datetime,
    *,
    mode: PolicyMode = "force",
    waivers: Sequence[Path] = (),
) -> StoredRun:
    """Judge a stored run's observations again under other policies and waivers, without the network."""
    known = {s.id for s in stored.systems}
    policies = with_waivers(policies_for(stored.systems, refs, registry, mode), waivers, known)
    # A complete run ran every planned probe (runs stored before probes were recorded too).
    probed = None if stored.info.status == "complete" else stored.probes
    findings = evaluate(
        stored.targets, stored.observations, policies, registry, stored.info.checks, now, probed
    )
    info = stored.info.model_copy(
        update={"policies": policy_refs(policies), "judged_by": judged_by(stored.systems, policies, mode)}
    )
    return replace(stored, info=info, findings=tuple(findings))


def build_report(stored: StoredRun) -> Report:
    return Report(
        tool_version=__version__,
        run=stored.info,
        systems=stored.systems,
        targets=stored.targets,
        observations=stored.observations,
        findings=stored.findings,
        summary=Summary.of(list(stored.findings), stored.systems),
    )
