"""The scan pipeline: configuration (checked before any packet) -> probes -> evaluation -> report."""

import functools
import os
import secrets
import sys
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Self

import attt
from attt.scanner.errors import ConfigError, Problem, StoreError, StoreWriteError
from attt.scanner.evaluate import Inapplicable, evaluate
from attt.scanner.inventory import load_inventory, resolve_targets, select_targets
from attt.scanner.models.base import vietnam_day
from attt.scanner.models.finding import Finding, FindingCodec
from attt.scanner.models.observation import Observation, ProbeKey
from attt.scanner.models.policy import ResolvedPolicy
from attt.scanner.models.report import PolicyRef, Report, RunInfo, RunStatus, Summary
from attt.scanner.models.target import SystemInfo, Target, Zone
from attt.scanner.plugin import Credential, observing_settings
from attt.scanner.policy import Read, default_policy_ref, load_policy
from attt.scanner.registry import Registry
from attt.scanner.runner import (
    DEFAULT_CONCURRENCY,
    DEFAULT_TIMEOUT,
    ProgressSink,
    Remote,
    Runner,
    ScanPlan,
    settings_for,
)
from attt.scanner.stored import HEARTBEAT_SECONDS, EndedProbe, StoredRun
from attt.scanner.storehost import RunStore
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
    vantage: str | None = None
    """The inventory zone the machine running the scan sits in (`--vantage`); None: not said."""


@dataclass(frozen=True)
class ScanOptions:
    """How to scan: the same for a new run and a resumed one."""

    timeout: float = DEFAULT_TIMEOUT
    concurrency: int = DEFAULT_CONCURRENCY
    credentials: Callable[[Target], Credential | None] = field(default=lambda _target: None)
    processes: int | None = None
    """Worker processes for CPU-heavy probes (`ScanPlan.processes`); None: one per core, when it pays."""


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
    redo: frozenset[ProbeKey] = frozenset()
    """Probes the earlier attempt ended in error (an interruption kills nmap or a connection
    with the scan): they run again, and what they saw then is forgotten."""
    inventory: str | None = None
    """The inventory file (resolved path) a new run scans: the key of the per-inventory lock."""


@dataclass(frozen=True)
class ScanOutcome:
    """How a scan ended."""

    run: StoredRun
    """Everything observed and judged, as held in memory: what the store holds too, unless it
    refused a write (`store_error`). The report is built from it, not from the store read back,
    which at a province's scale would cost as much as the scan's own bookkeeping."""
    interrupted: bool
    store_error: str | None = None
    """Why the store stopped taking writes mid-scan (disk full, lock held too long), if it did."""
    codec: FindingCodec | None = None
    """The findings as serialised for the store, for report.json to reuse."""


def prepare(
    request: ScanRequest, registry: Registry, remember: Mapping[str, str] | None = None
) -> PreparedScan:
    """Load and check everything a scan needs; raise ConfigError (exit 2) on any fault.

    `remember` holds the options (no secrets) a resumed run must run with again."""
    loaded = load_inventory(request.inventory)
    targets = select_targets(resolve_targets(loaded.inventory), request.systems, request.tags)
    if not targets:
        raise ConfigError(f"{request.inventory}: no host matches the --system/--tag selection")
    checks = _known_checks(request.checks or registry.checks, registry)
    systems = tuple(dict.fromkeys(t.system for t in targets))
    policies = policies_for(systems, request.policies, registry, request.policy_mode)
    known = {s.id for s in loaded.inventory.systems}
    policies = with_waivers(policies, request.waivers, known)
    zones = loaded.inventory.zones
    if request.vantage is not None:
        _check_vantage(request.vantage, zones, targets, request.inventory)
    started = utcnow()
    labels = judged_by(systems, policies, request.policy_mode)
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
            **(remember or {}),
            "policies": ",".join(request.policies),
            "policy_mode": request.policy_mode,
            "waivers": ",".join(str(w) for w in request.waivers),
            "inventory": str(loaded.path),
            "trigger": request.trigger,
        },
        owners=loaded.inventory.owners,
        judged_by=labels,
        probed_with=probed_with(systems, policies, labels, checks, registry),
        zones=zones,
        vantage=request.vantage,
    )
    return PreparedScan(
        run=run,
        targets=tuple(targets),
        systems=systems,
        policies=policies,
        inventory=str(loaded.path.resolve()),
    )


def _check_vantage(vantage: str, zones: Sequence[Zone], targets: Sequence[Target], inventory: Path) -> None:
    """Refuse a vantage the inventory does not know, and an outside vantage asked to probe a
    host of a zone it does not reach: the firewall would show that host closed, and rules would
    pass on what the Internet cannot see."""
    zone = next((z for z in zones if z.id == vantage), None)
    if zone is None:
        listed = ", ".join(z.id for z in zones) or "none: the inventory has no zones"
        raise ConfigError(f"--vantage {vantage}: not a zone of {inventory} ({listed})")
    unreached = [t for t in targets if zone.outside and t.zone not in zone.reaches]
    if unreached:
        first = unreached[0]
        more = f" (+{len(unreached) - 1} more)" if len(unreached) > 1 else ""
        raise ConfigError(
            f"--vantage {vantage}: host {first.address} of system {first.system.id} is in zone {first.zone},"
            f" which {vantage} does not reach (it reaches: {', '.join(zone.reaches) or 'none'}){more};"
            " leave such hosts out with --system or --tag"
        )


def vantages(info: RunInfo) -> dict[str, tuple[str, ...]]:
    """Zone -> the outside vantages that reach it: with the celery engine, a host of the zone
    is probed from each of them too (by the checks of rules judged from the Internet)."""
    reached: dict[str, tuple[str, ...]] = {}
    for zone in info.zones:
        for inside in zone.reaches if zone.outside else ():
            reached[inside] = (*reached.get(inside, ()), zone.id)
    return reached


def prepare_resume(
    stored: StoredRun, done: Mapping[ProbeKey, tuple[Observation, ...]], registry: Registry
) -> PreparedScan:
    """Continue an interrupted run with its own targets (addresses as pinned then), checks and
    policies; the probes it finished are not repeated, those that ended in error run again."""
    if stored.info.status == "complete":
        raise ConfigError(f"run {stored.info.id} is complete; there is nothing to resume")
    _known_checks(stored.info.checks, registry)
    policies = stored_policies(stored, registry)
    _judged_as_started(stored.info, policies)
    return PreparedScan(
        run=stored.info,
        targets=stored.targets,
        systems=stored.systems,
        policies=policies,
        resumed=True,
        done={key: seen for key, seen in done.items() if not _failed(seen)},
        redo=frozenset(key for key, seen in done.items() if _failed(seen)),
    )


def _judged_as_started(run: RunInfo, policies: Mapping[str, Sequence[ResolvedPolicy]]) -> None:
    """Refuse to resume `run` under policies other than those it started with (a file edited, or
    attt upgraded, in between): its report names the policies it started with, by version and
    sha256, and would judge by others."""
    now = policy_refs(policies)
    if {(p.id, p.sha256) for p in now} == {(p.id, p.sha256) for p in run.policies}:
        return
    then_files = {s.path: s.sha256 for p in run.policies for s in p.sources}
    now_files = {s.path: s.sha256 for p in now for s in p.sources}
    changed = sorted(f for f in then_files.keys() | now_files.keys() if then_files.get(f) != now_files.get(f))
    # A run stored before its policies' files were recorded: the policy is named by its id.
    where = changed[0] if changed else ", ".join(p.id for p in run.policies)
    values = {"run": run.id, "then": then_files.get(where, "-")[:12], "now": now_files.get(where, "-")[:12]}
    detail = (
        f"changed since run {run.id} started (sha256 {values['then']} then, {values['now']} now): a resumed"
        " run is judged by the policies it started with; restore them, or start a new scan"
    )
    raise ConfigError(detail, (Problem(where, 1, (), "policy_changed", detail, values),))


def _failed(seen: Sequence[Observation]) -> bool:
    return any(o.status == "error" for o in seen)


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
    read: Read = {}

    def load(ref: str, base: str | None) -> ResolvedPolicy:
        if (ref, base) not in cache:
            cache[(ref, base)] = load_policy(ref, registry, rebase=base, read=read)
        return cache[(ref, base)]

    level = _levels(systems)
    if mode == "overlay":
        for ref in refs:
            load(ref, None)  # every name checked against the file's own chain first
        return {
            s.id: tuple(load(r, level[s.level]) for r in refs) or (load(level[s.level], None),)
            for s in systems
        }
    return {s.id: tuple(load(r, None) for r in (refs or [level[s.level]])) for s in systems}


def _levels(systems: Iterable[SystemInfo]) -> dict[int, str]:
    """Each level's policy, looked up once per level: each look lists the bundled policies."""
    return {level: default_policy_ref(level) for level in {s.level for s in systems}}


def judged_by(
    systems: Sequence[SystemInfo], policies: Mapping[str, Sequence[ResolvedPolicy]], mode: PolicyMode
) -> dict[str, str]:
    """What the report says judged each system: `vn-level-2`, `hatinh over vn-level-2`."""

    level = _levels(systems)

    def label(system: SystemInfo) -> str:
        ids = " + ".join(p.id for p in policies.get(system.id, ()))
        rebased = mode == "overlay" and ids != level[system.level]
        return f"{ids} over {level[system.level]}" if rebased else ids

    return {s.id: label(s) for s in systems}


def probed_with(
    systems: Iterable[SystemInfo],
    policies: Mapping[str, Sequence[ResolvedPolicy]],
    labels: Mapping[str, str],
    checks: Iterable[str],
    registry: Registry,
) -> dict[str, dict[str, dict[str, Any]]]:
    """What `RunInfo.probed_with` records: for each judging policy (`labels`, as `judged_by`
    gives them: systems with one label have the same policies), each check's settings that shape
    what it observes."""
    recorded: dict[str, dict[str, dict[str, Any]]] = {}
    for system in systems:
        label = labels[system.id]
        if label not in recorded:
            judging = policies.get(system.id, ())
            recorded[label] = {
                check: observing_settings(settings_for(registry.check(check), judging)) for check in checks
            }
    return recorded


def _resettled(
    stored: StoredRun, policies: Mapping[str, Sequence[ResolvedPolicy]], registry: Registry
) -> dict[tuple[str, str], tuple[str, ...]]:
    """(system, check) -> the settings of the check that `policies` set otherwise than the run's
    probes ran with, where they differ (`evaluate`'s `resettled`). A run stored before its
    settings were recorded has none to compare."""
    changed: dict[tuple[str, str], tuple[str, ...]] = {}
    for system in stored.systems:
        then = stored.info.probed_with.get(stored.info.judged_by.get(system.id, ""), {})
        for check, was in then.items():
            if check not in registry.checks:
                continue  # its rules are not judged without it (evaluate says so)
            now = observing_settings(settings_for(registry.check(check), policies.get(system.id, ())))
            differ = tuple(sorted(k for k in was.keys() | now.keys() if was.get(k) != now.get(k)))
            if differ:
                changed[(system.id, check)] = differ
    return changed


def stored_policies(stored: StoredRun, registry: Registry) -> dict[str, tuple[ResolvedPolicy, ...]]:
    """The policies a stored run was judged by, read again from the options it recorded."""
    refs, mode = own_policies(stored.info)
    waivers = own_waivers(stored.info)
    policies = policies_for(stored.systems, refs, registry, mode)
    return with_waivers(policies, waivers, {s.id for s in stored.systems})


def own_policies(info: RunInfo) -> tuple[list[str], PolicyMode]:
    """The `-p` policies (none: each system's level policy) and policy mode a run was started with."""
    refs = [r for r in info.options.get("policies", "").split(",") if r]
    return refs, "overlay" if info.options.get("policy_mode") == "overlay" else "force"


def own_waivers(info: RunInfo) -> list[Path]:
    """The waiver files (`--waivers`) a run was started with."""
    return [Path(w) for w in info.options.get("waivers", "").split(",") if w]


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
    store: RunStore,
    registry: Registry,
    progress: ProgressSink | None = None,
    stop: threading.Event | None = None,
    remote: Remote | None = None,
    *,
    close: bool = True,
) -> ScanOutcome:
    """Probe, store what each probe saw as soon as it ends, evaluate, and close the run (with
    `close=False`, the caller closes it with `close_run`, rendering its report meanwhile).

    With `remote` (the celery engine's coordinator) the probes run on the zones' workers; the
    plan, the order, the store and the evaluation stay here, exactly as with the local engine.

    `stop` set (a signal) ends probing: what was observed is evaluated, stored and marked
    `incomplete`, so that `attt scan --resume RUN` can finish it. A store that refuses a write
    (disk full, lock held too long) also ends probing: the scan goes on in memory, evaluates what
    it saw and tries once more to close the run. What finished probes saw is kept either way; a
    probe the stop cut short is left for `--resume`.
    """
    plan = scan_plan(prepared, options, remote is not None)
    # The outside probes planned by this attempt and any earlier one: a rule waits for them all.
    planned = _merged(prepared.run.probed_from, plan.vantages)
    info = prepared.run.model_copy(update={"probed_from": planned})
    if prepared.resumed:
        store.claim(info.id, prepared.redo, probed_from=planned)
    else:
        store.create_run(info, prepared.systems, prepared.targets, inventory=prepared.inventory)
    stop = stop or threading.Event()
    observations: list[Observation] = [o for seen in prepared.done.values() for o in seen]
    probed: set[ProbeKey] = set(prepared.done)
    lock = threading.Lock()
    store_errors: list[str] = []
    judge = _Judge(prepared, registry, planned, functools.partial(store.stage_findings, info.id))
    with _heartbeat(store, info.id), _Recorder(store, info.id, stop) as recorder, judge:

        def keep(target: Target, check: str, seen: Sequence[Observation]) -> None:
            with lock:
                observations.extend(seen)
                probed.add((check, *target.key))
            recorder.add(check, target, seen)
            judge.ended(target, check, seen)

        complete = Runner(registry, keep, progress, stop, remote).run(plan)
    if recorder.error is not None:
        store_errors.append(recorder.error)
    finished = utcnow()
    findings = judge.findings(observations, probed, finished)
    # Checked after evaluation: a signal that lands while judging also leaves the run incomplete.
    interrupted = stop.is_set() and not store_errors
    status: RunStatus = "complete" if complete and not stop.is_set() else "incomplete"
    info = info.model_copy(update={"status": status, "finished": finished})
    memory = StoredRun(
        info, prepared.systems, prepared.targets, tuple(observations), tuple(findings), frozenset(probed)
    )
    outcome = ScanOutcome(memory, interrupted, next(iter(store_errors), None), judge.codec)
    return close_run(store, outcome) if close else outcome


def close_run(store: RunStore, outcome: ScanOutcome) -> ScanOutcome:
    """Store the findings of a run `run_scan` left open and how it ended, and release its lease.
    A store that refuses (disk full, lock held too long) leaves the run `incomplete`, saying why."""
    info = outcome.run.info
    assert info.finished is not None, "close_run takes what run_scan judged"
    try:
        stored = store.finish_run(info.id, info.status, info.finished, outcome.run.findings, outcome.codec)
    except StoreWriteError as exc:
        refused = info.model_copy(update={"status": "incomplete"})
        return replace(
            outcome, run=replace(outcome.run, info=refused), store_error=outcome.store_error or str(exc)
        )
    return replace(outcome, run=replace(outcome.run, info=stored))


def _merged(*plans: Mapping[str, Sequence[str]]) -> dict[str, tuple[str, ...]]:
    """Zone -> every vantage any of `plans` probes it from."""
    zones: dict[str, tuple[str, ...]] = {}
    for plan in plans:
        for zone, vantages in plan.items():
            zones[zone] = tuple(dict.fromkeys((*zones.get(zone, ()), *vantages)))
    return zones


def scan_plan(prepared: PreparedScan, options: ScanOptions, remote: bool) -> ScanPlan:
    """What the runner is to probe; `remote`: the zones' workers probe (the celery engine),
    from the outside vantages that reach a zone too."""
    info = prepared.run
    return ScanPlan(
        targets=prepared.targets,
        checks=info.checks,
        policies=prepared.policies,
        timeout=options.timeout,
        concurrency=options.concurrency,
        credentials=options.credentials,
        processes=options.processes,
        done=prepared.done,
        vantage=info.vantage,
        vantages=vantages(info) if remote else {},
    )


def planned_probes(prepared: PreparedScan, registry: Registry, remote: bool) -> int:
    """The probes a scan has yet to run: the total its progress counts up to."""
    return Runner(registry, lambda *_: None).planned(scan_plan(prepared, ScanOptions(), remote))


_JUDGED_AT_ONCE = 32
"""Hosts the judge waits for before judging them (fewer when the scan is over)."""


class _Worker:
    """A thread fed under one condition (`_more`) until the block ends: leaving it marks the
    feed closed, wakes the thread and waits for it to drain what was handed over."""

    def __init__(self, name: str, work: Callable[[], None]) -> None:
        self._more = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=work, name=name, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with self._more:
            self._closed = True
            self._more.notify()
        self._thread.join()


class _Judge(_Worker):
    """Judges each host as soon as every check has probed it, on a thread of its own, while the
    runner still waits on the other hosts' probes (nmap's runs): the judging of a province then
    mostly overlaps the scan instead of following it, at a lower CPU priority than the probes
    (`_yield_to_probes`). `findings` judges the rest at the end, what the thread had not begun
    when the probes ended included.

    The findings are those one `evaluate` of every target at the end gives, in the same order:
    `evaluate` judges each target on its own observations and probes only. Its `now` serves only
    to tell which waivers have expired, by the day: hosts judged early are judged again at the
    end when the run ends on another day. A run with outside probes planned (`vantages`: zone ->
    vantages, by this attempt or an earlier one; its steps vary by host) judges everything at the
    end, knowing which hosts were to be probed from outside."""

    def __init__(
        self,
        prepared: PreparedScan,
        registry: Registry,
        vantages: Mapping[str, Sequence[str]],
        stage: Callable[[Sequence[Finding], FindingCodec], None] = lambda *_: None,
    ) -> None:
        """`stage` is handed the findings of each dozen hosts judged, serialised in `codec`
        (`RunStore.stage_findings`)."""
        self._prepared = prepared
        self._stage = stage
        self._registry = registry
        self._checks = prepared.run.checks
        self._outside = prepared.run.outside()
        self._reaching = vantages
        early = not vantages
        self._seen: dict[tuple[str, str], list[Observation]] = {t.key: [] for t in prepared.targets}
        for (_, system, host), seen in prepared.done.items():
            self._seen.setdefault((system, host), []).extend(seen)
        # Hosts waiting for a check; those that all ran before (a resumed run) wait for the end.
        self._left = {
            t.key: {c for c in self._checks if (c, *t.key) not in prepared.done}
            for t in prepared.targets
            if early
        }
        self._targets = {t.key: t for t in prepared.targets}
        self._now = utcnow()
        self._judged: dict[tuple[str, str], list[Finding]] = {}
        self.codec = FindingCodec()
        """What was judged, serialised on this thread too, while the probes still run."""
        self._inapplicable = Inapplicable(prepared.policies, self._checks)
        self._probing = False
        self._ready: list[Target] = []
        super().__init__("attt-judge", self._judge)

    def ended(self, target: Target, check: str, seen: Sequence[Observation]) -> None:
        """A probe of `target` ended with `seen`."""
        with self._more:
            if not self._probing:
                self._probing = True
                self._more.notify()
            self._seen[target.key].extend(seen)
            left = self._left.get(target.key)
            if left is None or check not in left:
                return
            left.discard(check)
            if not left:
                self._ready.append(self._targets[target.key])
                if len(self._ready) >= _JUDGED_AT_ONCE:
                    self._more.notify()

    def _judge(self) -> None:
        _yield_to_probes()
        # Findings that need no probe first, once the first probe has ended. Made as soon as the
        # hosts were handed to the runner, they held the interpreter's lock while nmap's command
        # was being built (a 1,000-host scan started nmap 0.05 s later); the first probes' results
        # take long enough to come for them to be made meanwhile.
        with self._more:
            while not self._probing and not self._closed:
                self._more.wait()
            if self._closed:
                return
        with suppress(Exception):  # left to the end: made again in the scan's own thread
            for first, alike in self._inapplicable.made(self._prepared.targets):
                self.codec.encode_alike(first, alike)
        while True:
            with self._more:
                # Judged by the dozen: hosts end a batch at a time, and each `evaluate` works out
                # its rules' references afresh.
                while len(self._ready) < _JUDGED_AT_ONCE and not self._closed:
                    self._more.wait()
                if self._closed:
                    return  # the rest is judged at the scan's own priority (`findings`)
                ready, self._ready = self._ready, []
                seen = [o for t in ready for o in self._seen[t.key]]
            # Each host's probes all ended: those are the only ones `evaluate` asks about.
            probed = {(c, *t.key) for t in ready for c in self._checks}
            try:
                found = self._evaluate(ready, seen, probed, self._now)
                made = [f for judged in found.values() for f in judged]
                self.codec.encode(made)
            except Exception:
                # Left to the end: judged again in the scan's own thread, the error surfaces there.
                found, made = {}, []
            with self._more:
                self._judged.update(found)
            try:
                self._stage(made, self.codec)
            except StoreError:
                self._stage = lambda *_: None  # the store refused: closing the run will say so

    def _evaluate(
        self,
        targets: Sequence[Target],
        seen: Iterable[Observation],
        probed: Collection[ProbeKey],
        now: datetime,
    ) -> dict[tuple[str, str], list[Finding]]:
        """The findings of each of `targets`, by target."""
        prepared = self._prepared
        found: dict[tuple[str, str], list[Finding]] = {t.key: [] for t in targets}
        for finding in evaluate(
            targets,
            seen,
            prepared.policies,
            self._registry,
            self._checks,
            now,
            probed,
            self._outside,
            self._reaching,
            self._inapplicable,
        ):
            found[(finding.system, finding.host)].append(finding)
        return found

    def findings(
        self, observations: Sequence[Observation], probed: Collection[ProbeKey], finished: datetime
    ) -> list[Finding]:
        """Every target's findings, in target order: judged early, or now (as of `finished`)."""
        judged = self._judged if vietnam_day(finished) == vietnam_day(self._now) else {}
        rest = [t for t in self._prepared.targets if t.key not in judged]
        late = self._evaluate(rest, observations, probed, finished) if rest else {}
        # Serialised now, in this thread: the report is rendered while the store closes the run on
        # another (`attt scan`), and both read the codec; two threads encoding the same finding at
        # once could each see a rule text's key before the other had kept its text.
        self.codec.encode(f for made in late.values() for f in made)
        return [
            f for t in self._prepared.targets for f in (judged[t.key] if t.key in judged else late[t.key])
        ]


_JUDGE_NICENESS = 10
"""How much less CPU the judge asks for than the probes: about a tenth of a core's share when both
want one (the kernel's weight for nice 10 against nice 0)."""


def _yield_to_probes() -> None:
    """Lower the calling thread's CPU priority, so that judging while probes run never delays
    them: on two cores, the judge competing on equal terms with nmap (a thousand hosts' findings
    judged as their groups end) made nmap take a third longer, and every probe's budget runs
    meanwhile. The judge has no deadline and takes the cycles the probes leave. Linux keeps a
    nice value per thread; elsewhere `setpriority` would slow the whole process, so it is left
    alone. A thread cannot raise its priority again without privilege: the judge stops when the
    probes end and the scan's own thread judges what is left.

    Not Linux's idle policy (SCHED_IDLE), though with it nmap waited half as long for a core in a
    1,000-host ports scan (0.12 s against 0.22 s): the judge, descheduled while it holds the
    interpreter's lock, holds up every other thread of the scan until a core is free. With two
    CPU-bound programs in the scan's own session, each 12-system scan stalled at least once for
    0.85 to 1.4 s (86 ms at most at nice 10) and took 7.4 s against 5.1 s."""
    if sys.platform != "linux":
        return
    with suppress(OSError):
        thread = threading.get_native_id()
        niceness = os.getpriority(os.PRIO_PROCESS, thread)
        os.setpriority(os.PRIO_PROCESS, thread, min(19, niceness + _JUDGE_NICENESS))


_COMMIT_EVERY = 0.2
"""Seconds at least between two commits of ended probes. At --concurrency 16 nmap ends a group
of hosts every few hundredths of a second: a commit for each cost a thousand hosts 190 commits and
a fifth of a second. A crash loses at most this much of what ended, which `--resume` probes again."""


class _Recorder(_Worker):
    """Stores what each probe saw as it ends, from one thread: each write commits every probe
    that ended since the previous one, at most every `_COMMIT_EVERY` (`Store.record_probes`), so
    a thousand hosts finishing one nmap run cost a few commits, not a thousand. The runner's
    threads only hand their probes over. Leaving the block writes what is still pending at once.
    A store that refuses a write stops the scan (`stop`), says why in `error`, and is written no
    more."""

    def __init__(self, store: RunStore, run_id: str, stop: threading.Event) -> None:
        self._store = store
        self._run_id = run_id
        self._stop = stop
        self._pending: list[EndedProbe] = []
        self.error: str | None = None
        self._crash: BaseException | None = None
        super().__init__("attt-recorder", self._write)

    def __exit__(self, *exc: object) -> None:
        super().__exit__(*exc)
        if self._crash is not None:
            raise self._crash  # a bug, not a refused write: the scan fails as if it had written itself

    def add(self, check: str, target: Target, seen: Sequence[Observation]) -> None:
        with self._more:
            if self.error is None:
                self._pending.append((check, target, seen))
                if len(self._pending) == 1:
                    self._more.notify()

    def _write(self) -> None:
        due = 0.0
        while True:
            with self._more:
                while not self._closed and (not self._pending or time.monotonic() < due):
                    self._more.wait(due - time.monotonic() if self._pending else None)
                if not self._pending:
                    return
                ended, self._pending = self._pending, []
            due = time.monotonic() + _COMMIT_EVERY
            try:
                self._store.record_probes(self._run_id, ended)
            except StoreWriteError as exc:
                with self._more:
                    self.error = str(exc)
                    self._pending.clear()
                self._stop.set()
                return
            except BaseException as exc:
                self._crash = exc
                self._stop.set()
                return


@contextmanager
def _heartbeat(store: RunStore, run_id: str) -> Iterator[None]:
    """Renew the run's lease while probes run; a store that cannot take a beat skips it."""
    done = threading.Event()

    def beat() -> None:
        while not done.wait(HEARTBEAT_SECONDS):
            try:
                store.heartbeat(run_id)
            except StoreError:
                continue

    thread = threading.Thread(target=beat, name="attt-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


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
    outside = stored.info.outside()
    findings = evaluate(
        stored.targets,
        stored.observations,
        policies,
        registry,
        stored.info.checks,
        now,
        probed,
        outside,
        stored.info.probed_from,
        resettled=_resettled(stored, policies, registry),
    )
    info = stored.info.model_copy(
        update={"policies": policy_refs(policies), "judged_by": judged_by(stored.systems, policies, mode)}
    )
    return replace(stored, info=info, findings=tuple(findings))


def judged_run(stored: StoredRun, registry: Registry, now: datetime) -> StoredRun:
    """`stored`, judged by its own policies and waivers if it ended before it was judged (killed
    while probing: a run's findings are written when it ends): what its probes saw, and each
    probe that never ran as such. Never a report without findings that reads as nothing found."""
    if stored.judged:
        return stored
    refs, mode = own_policies(stored.info)
    return reevaluate(stored, refs, registry, now, mode=mode, waivers=own_waivers(stored.info))


def build_report(stored: StoredRun) -> Report:
    return Report(
        tool_version=attt.__version__,
        run=stored.info,
        systems=stored.systems,
        targets=stored.targets,
        observations=stored.observations,
        findings=stored.findings,
        summary=Summary.of(list(stored.findings), stored.systems),
    )
