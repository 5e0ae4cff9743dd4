"""Runs the checks' probes against the targets: concurrent, bounded, timed out, fail-closed.

Each target is one job; inside a job the checks run in dependency order (`Check.after`), so a
check can read what an earlier one saw on the same host. A probe that raises or overruns its
budget yields an `error` observation and never stops the others.

A check that probes many targets at once (`Batched`, e.g. one nmap run for many hosts) is run
ahead of the jobs, in target order, a batch at a time; a job waits only for its own batch, so a
host's later checks start as soon as its batch is done.

A check whose probes are CPU work under the GIL (`cpu_heavy`: TLS, SSH) has them run in worker
processes, one per core, when the plan holds enough of them (scanner/processes.py); the rest
of the run, storing and progress included, stays here.
"""

import itertools
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol, Self

from pydantic import BaseModel, Field

from attt.scanner.models.base import Frozen
from attt.scanner.models.observation import Observation, ProbeKey, probe_check
from attt.scanner.models.policy import ResolvedPolicy, ResolvedRule
from attt.scanner.models.target import Target
from attt.scanner.plugin import Batched, Check, Credential, ProbeContext, batch_budget, cpu_heavy, streams
from attt.scanner.registry import Registry

if TYPE_CHECKING:
    from attt.scanner.processes import ProcessPool

DEFAULT_CONCURRENCY = 16
"""Hosts probed at once: a province registers a few hundred hosts; 16 keeps a night's scan
short without flooding one network segment."""
DEFAULT_TIMEOUT = 120.0
"""Seconds one check may spend on one host (a full TLS scan of several ports fits)."""
GRACE = 5.0
"""Extra seconds before an overrunning probe is abandoned, so probes can report their own timeout."""
LOOK_EVERY = 1.0
"""Seconds at most between two looks at the stop signal by a thread waiting on a probe. At
`--concurrency 256` as many threads wait, and each wake-up takes the interpreter's lock from
the threads reading the servers' answers: looking every 0.2 s was 1,280 wake-ups a second."""
MIN_PROBES = 32
# Unasked, no more workers than this: each holds 100-200 MiB at a province's scale, and a scan of
# 1,000 systems must stay within 1 GB on a many-core machine too; `--processes` may ask for more.
DEFAULT_MAX_WORKERS = 4
"""CPU-heavy probes a plan must hold before worker processes are started on its own account:
starting them costs about 0.5 CPU-s (the fork server's imports), which a few TLS probes
(0.06-0.08 CPU-s each, measured on the lab servers) do not repay."""
_BATCH_WORKERS = 2
"""Batches of one check run at once: each is a whole process over many hosts (an nmap run)."""
_GROUPS_PER_BATCH = 8
"""Host groups (of --concurrency hosts) one batch holds at most: one process for several groups
costs far less than a process each, and a stopped scan loses no more than that much work."""
_REMOTE_BATCH_HOSTS = 16
"""Hosts in one batch sent to a zone's workers: one process start for 16 hosts is most of what a
batch saves, and a zone of 200 hosts still makes 13 tasks for its workers to share."""
_REMOTE_BATCHES = 16
"""Batches of one check sent to the zones' workers at once: each zone's workers' own
`--concurrency` bounds how many of them run."""

_LOG = logging.getLogger("attt.runner")

ProbeSink = Callable[[Target, str, Sequence[Observation]], None]
"""Told what each finished probe saw (possibly nothing), as soon as it ends."""


@dataclass(frozen=True)
class ScanPlan:
    targets: Sequence[Target]
    checks: Sequence[str]
    """Check names in dependency order."""
    policies: Mapping[str, Sequence[ResolvedPolicy]]
    """System id -> the policies that judge it."""
    timeout: float = DEFAULT_TIMEOUT
    concurrency: int = DEFAULT_CONCURRENCY
    credentials: Callable[[Target], Credential | None] = field(default=lambda _target: None)
    done: Mapping[ProbeKey, Sequence[Observation]] = field(default_factory=dict)
    """(check, system, host) -> observations of probes an earlier attempt finished: not repeated."""
    vantage: str | None = None
    """The zone this machine probes from, recorded on every observation; None: not said."""
    vantages: Mapping[str, Sequence[str]] = field(default_factory=dict)
    """Zone -> the outside vantages that reach it (`Inventory.vantages_reaching`): a host of the
    zone is probed from each of them too, by the checks of its rules that need such a vantage.
    Only a remote engine has workers there; the local engine probes from where it runs."""
    processes: int | None = None
    """Worker processes for the probes of CPU-heavy checks (`cpu_heavy`, scanner/processes.py):
    1, none (threads of this process, as for every other check); N, N of them whenever the plan
    has such probes; None, one per core when the plan holds enough of them to repay starting
    them (`MIN_PROBES`)."""


class ProgressSink:
    """Told when a probe starts and ends; the CLI turns this into a progress display."""

    def started(self, target: Target, check: str) -> None:
        """A probe began."""

    def finished(self, target: Target, check: str, observations: Sequence[Observation]) -> None:
        """A probe ended with these observations."""


Split = dict[tuple[str, str], list[Observation]]
"""(system, host) -> what a batch saw of each of its targets."""
Chunk = Sequence[tuple[Target, ProbeContext[Any]]]


class Remote(Protocol):
    """Where probes run when not here (the celery engine's zone workers): the plan, the order
    and the bookkeeping stay with the runner."""

    def probe(
        self, check: Check, target: Target, ctx: ProbeContext[Any], vantage: str | None
    ) -> list[Observation] | None:
        """What one probe saw, made from the target's zone or the outside vantage given; None
        when the scan was stopped before it answered."""

    def probe_batch(self, check: Batched, name: str, chunk: Chunk) -> Split | None:
        """What one batch of a zone's targets saw, each target's part (`split_batch`)."""


class Runner:
    def __init__(
        self,
        registry: Registry,
        sink: ProbeSink,
        progress: ProgressSink | None = None,
        stop: threading.Event | None = None,
        remote: Remote | None = None,
    ) -> None:
        self._registry = registry
        self._sink = sink
        self._progress = progress or ProgressSink()
        self.stop = stop or threading.Event()
        """Set to stop starting new probes (a signal, a store that refuses writes); probes under
        way are abandoned, what was observed is kept."""
        self._remote = remote
        self._workers: ProcessPool | None = None
        # (system, check) -> the check's rules and settings for that system in the plan being run:
        # the same for each of a system's hosts, and asked for several times per host.
        self._rules_of: dict[tuple[str, str], tuple[tuple[ResolvedRule, ...], BaseModel]] = {}

    def run(self, plan: ScanPlan) -> bool:
        """Probe every target; return True when every planned probe ran to its end."""
        batches: dict[str, _Batches] = {}
        complete = True
        self._rules_of = {}
        try:
            self._workers = self._process_pool(plan)
            batches.update(self._start_batches(plan))
            with ThreadPoolExecutor(
                max_workers=max(1, plan.concurrency), thread_name_prefix="attt-target"
            ) as pool:
                # Woken by an Event, not concurrent.futures.wait: a signal (Ctrl-C, SIGTERM)
                # raised inside wait() can leave futures' locks held and the workers hung.
                # Each future hands itself over as it ends, so a wake-up costs what ended, not
                # a look at every host still pending (quadratic over a province). Only what
                # changes the loop's course wakes it: a host that failed or stopped, or the last
                # one (a wake-up per host took the GIL from the thread reading nmap's output).
                ended = threading.Event()
                finished: deque[Future[bool]] = deque()
                pending: set[Future[bool]] = set()
                hosts = _by_host(plan.targets)
                ends = itertools.count(1)  # next() is atomic: callbacks run on the hosts' threads

                def hand_over(future: Future[bool]) -> None:
                    finished.append(future)
                    last = next(ends) == len(hosts)
                    if last or future.cancelled() or future.exception() is not None or not future.result():
                        ended.set()

                try:
                    for targets in hosts:
                        future = pool.submit(self._run_host, plan, targets, batches)
                        pending.add(future)
                        future.add_done_callback(hand_over)
                    while pending:
                        ended.wait(0.5)
                        ended.clear()
                        while finished:
                            future = finished.popleft()
                            pending.discard(future)
                            complete &= future.result()
                except BaseException:
                    self.stop.set()
                    for future in pending:
                        future.cancel()
                    raise
        except BaseException:
            self.stop.set()
            raise
        finally:
            for batch in batches.values():
                batch.close()
            if self._workers is not None:
                self._workers.close()
                self._workers = None
        return complete and not self.stop.is_set()

    def _process_pool(self, plan: ScanPlan) -> "ProcessPool | None":
        """Worker processes for the plan's CPU-heavy probes, starting; None when those run in
        threads here (`ScanPlan.processes`)."""
        size = (
            0 if self._remote is not None else workers_for(plan.processes, self.heavy_probes(plan), cores())
        )
        if not size:
            return None
        # Imported only now (a small scan never needs it), and here: the pool runs probes with
        # this module's code, so it imports it.
        from attt.scanner.processes import ProcessPool

        pool = ProcessPool(self._registry, size, plan.timeout, self.stop)
        pool.start()
        return pool

    def heavy_probes(self, plan: ScanPlan) -> int:
        """Hosts times CPU-heavy checks the plan has yet to probe (several systems registering
        one host mostly share its probe)."""
        return sum(
            1
            for targets in _by_host(plan.targets)
            for name, vantage in self.steps(plan, targets)
            if vantage is None
            and cpu_heavy(self._registry.check(name))
            and any((name, *t.key) not in plan.done for t in targets)
        )

    def _start_batches(self, plan: ScanPlan) -> dict[str, "_Batches"]:
        """Start every batched check's probes of the targets it has yet to see."""
        batches: dict[str, _Batches] = {}
        for name in plan.checks:
            check = self._registry.check(name)
            if not isinstance(check, Batched) or check.after:
                continue
            contexts = [
                (t, self._context(plan, t, check, {}))
                for t in plan.targets
                if (name, *t.key) not in plan.done
            ]
            jobs = [(t, ctx) for t, ctx in contexts if check.batchable(t, ctx)]
            batches[name] = _Batches(self, check, jobs, plan.concurrency, self._remote)
        return batches

    def _run_host(self, plan: ScanPlan, targets: Sequence[Target], batches: Mapping[str, "_Batches"]) -> bool:
        """Every check on one host, for each system that registers it. A probe whose context is
        the same for several systems (same settings, rules, credential, earlier facts, and the
        same registration of the host) runs once; each system gets its own copy of what it saw,
        and is judged on it."""
        seen: dict[tuple[str, str], list[Observation]] = {}  # (system, probe check) -> observations
        # Most hosts are registered once: nothing to share, nothing to compare.
        views = [_as_probed(target) for target in targets] if len(targets) > 1 else list(targets)
        for name, vantage in self.steps(plan, targets):
            check = self._registry.check(name)
            key = probe_check(name, vantage)
            # (context, the target as the probe sees it, targets): contexts are not hashable
            groups: list[tuple[ProbeContext[Any] | None, Target, list[Target]]] = []
            for target, view in zip(targets, views, strict=True):
                earlier = plan.done.get((key, *target.key))
                if earlier is not None:
                    seen[(target.system.id, key)] = list(earlier)
                    continue
                if len(targets) == 1:  # most hosts: nothing to compare with
                    groups.append((None, view, [target]))
                    continue
                ctx = _comparable(self._context(plan, target, check, seen, vantage))
                same = next(
                    (group for other, seen_as, group in groups if other == ctx and seen_as == view), None
                )
                if same is None:
                    groups.append((ctx, view, [target]))
                else:
                    same.append(target)
            for _ctx, _view, group in groups:
                if self.stop.is_set():
                    return False
                batch = None if vantage else batches.get(name)
                if not self._probe_group(check, plan, group, seen, batch, vantage):
                    return False
        return True

    def planned(self, plan: ScanPlan) -> int:
        """The probes the plan has yet to run, one per target and step (what progress counts)."""
        return sum(
            1
            for targets in _by_host(plan.targets)
            for name, vantage in self.steps(plan, targets)
            for target in targets
            if (probe_check(name, vantage), *target.key) not in plan.done
        )

    def steps(self, plan: ScanPlan, targets: Sequence[Target]) -> list[tuple[str, str | None]]:
        """(check, vantage) in the order a host is probed: every check from inside its zone,
        then, from each outside vantage that reaches the zone, the checks of the rules that
        must be judged from outside (`vantage: internet`) and the checks they read."""
        steps: list[tuple[str, str | None]] = [(name, None) for name in plan.checks]
        zone = targets[0].zone
        outside = plan.vantages.get(zone, ()) if zone is not None else ()
        if not outside:
            return steps
        wanted = {
            r.check
            for t in targets
            for p in plan.policies.get(t.system.id, ())
            for r in p.rules
            if r.vantage is not None and r.applies(t.system)
        }
        needed: set[str] = set()
        while wanted - needed:
            name = (wanted - needed).pop()
            needed.add(name)
            wanted.update(self._registry.check(name).after if name in self._registry.checks else ())
        chosen = [name for name in plan.checks if name in needed]
        return steps + [(name, vantage) for vantage in outside for name in chosen]

    def _probe_group(
        self,
        check: Check,
        plan: ScanPlan,
        group: Sequence[Target],
        seen: dict[tuple[str, str], list[Observation]],
        batch: "_Batches | None" = None,
        vantage: str | None = None,
    ) -> bool:
        first = group[0]
        key = probe_check(check.name, vantage)
        ctx = self._context(plan, first, check, seen, vantage)
        for target in group:
            self._progress.started(target, key)
        if batch is not None and batch.holds(first):
            observations = batch.wait(first)
        elif self._remote is not None:
            observations = self._remote.probe(check, first, ctx, vantage)
        elif self._workers is not None and cpu_heavy(check):
            observations = self._workers.probe(check, first, ctx)
        else:
            observations = probe_target(check, first, ctx, self.stop)
        if observations is None or (self.stop.is_set() and any(o.status == "error" for o in observations)):
            # Cut short: a signal also kills the probe's nmap or connection, and that error
            # is not a fact about the target. The probe is left for a resumed run.
            return False
        if not observations and ctx.prior and all(o.status == "error" for o in ctx.prior):
            # Endpoints come from a check that failed here: "nothing found" would be a lie.
            failed = ", ".join(check.after)
            observations = [
                Observation.failed(check.name, first, f"cannot find endpoints: {failed} check failed")
            ]
        for target in group:
            # A local scan says where it ran (`--vantage`); a worker's answer where it was made.
            mine = [
                o.model_copy(update={"system": target.system.id, "zone": plan.vantage or o.zone})
                for o in observations
            ]
            self._sink(target, key, mine)
            seen[(target.system.id, key)] = mine
            self._progress.finished(target, key, mine)
        return True

    def _context(
        self,
        plan: ScanPlan,
        target: Target,
        check: Check,
        seen: Mapping[tuple[str, str], list[Observation]],
        vantage: str | None = None,
    ) -> ProbeContext[Any]:
        key = (target.system.id, check.name)
        known = self._rules_of.get(key)
        if known is None:
            policies = plan.policies.get(target.system.id, ())
            rules = tuple(
                r for p in policies for r in p.rules_by_check.get(check.name, ()) if r.applies(target.system)
            )
            known = self._rules_of[key] = (rules, settings_for(check, policies))
        rules, settings = known
        return ProbeContext(
            timeout=plan.timeout,
            settings=settings,
            rules=rules,
            prior=tuple(
                o for dep in check.after for o in seen.get((target.system.id, probe_check(dep, vantage)), ())
            ),
            credential=plan.credentials(target),
            concurrency=plan.concurrency,
        )


def cores() -> int:
    """The cores this process may run on (its CPU affinity, which a container or `taskset` may
    narrow), else the machine's count."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not every platform (or sandbox) tells the affinity
        return os.cpu_count() or 1


def workers_for(asked: int | None, heavy: int, machine: int) -> int:
    """Worker processes for a plan with `heavy` CPU-heavy probes on a machine of `machine`
    cores, `asked` for by `--processes` (None: not said); 0: none, the probes run in threads."""
    size = min(machine, DEFAULT_MAX_WORKERS) if asked is None else asked
    if size <= 1 or not heavy or (asked is None and heavy < MIN_PROBES):
        return 0
    return min(size, heavy)


def probe_target(
    check: Check, target: Target, ctx: ProbeContext[Any], stop: threading.Event
) -> list[Observation] | None:
    """Run one probe in its own thread so a hung probe can be abandoned after its budget: the
    same code wherever the probe runs (here, or on a zone's worker).

    None when `stop` was set mid-probe: nothing was observed, and the probe is left for a
    resumed run."""
    started = datetime.now(UTC)
    beat = _Heartbeat()
    ctx = replace(ctx, keepalive=beat)
    outcome = bounded(lambda: list(check.probe(target, ctx)), ctx.timeout, check.name, stop, beat)
    if outcome is None:
        return None
    finished = datetime.now(UTC)
    if isinstance(outcome, str):
        result = [Observation.failed(check.name, target, outcome)]
    else:
        result = [own_observation(obs, check.name, target) for obs in outcome]
    return [obs.timed(obs.started or started, obs.finished or finished) for obs in result]


class ProbeJob(Frozen):
    """One probe as it travels away from the runner, to a zone's worker (`ProbeTask`, the celery
    engine) or to a worker process of this machine (scanner/processes.py): JSON, and never a
    credential. Where it arrives, `context` makes the probe's context again and `probe_target`
    runs it: one way to run a probe elsewhere."""

    check: str
    target: Target
    timeout: float
    concurrency: int = Field(default=1, ge=1, le=1024)
    """Hosts the run probes at once: a batch probes that many of its hosts at a time."""
    settings: dict[str, Any]
    rules: tuple[dict[str, Any], ...] = ()
    """Each rule without its params, which travel beside it (`params`) in the same order."""
    params: tuple[dict[str, Any], ...] = ()
    prior: tuple[Observation, ...] = ()

    @classmethod
    def of(cls, check: str, target: Target, ctx: ProbeContext[Any], **more: Any) -> Self:
        """The job of one probe (`more`: the fields of a subclass)."""
        return cls(
            check=check,
            target=target,
            timeout=ctx.timeout,
            concurrency=ctx.concurrency,
            settings=ctx.settings.model_dump(mode="json"),
            rules=tuple(r.model_dump(mode="json", exclude={"params"}) for r in ctx.rules),
            params=tuple(r.params.model_dump(mode="json") for r in ctx.rules),
            prior=ctx.prior,
            **more,
        )

    def context(
        self, registry: Registry, credential: Credential | None, max_timeout: float | None = None
    ) -> ProbeContext[Any]:
        """The probe's context, made here with the check installed here and this machine's
        credential; ValueError (pydantic's ValidationError is one) when the job's settings or
        rules do not fit that check."""
        check = registry.check(self.check)
        return ProbeContext[Any](
            timeout=self.timeout if max_timeout is None else min(self.timeout, max_timeout),
            settings=check.settings_model.model_validate(self.settings),
            concurrency=self.concurrency,
            rules=tuple(_rule(registry, r, p) for r, p in zip(self.rules, self.params, strict=True)),
            prior=self.prior,
            credential=credential,
        )


def _rule(registry: Registry, rule: Mapping[str, Any], params: Mapping[str, Any]) -> ResolvedRule:
    found = registry.control(str(rule.get("control")))
    if found is None:
        raise ValueError(f"control {rule.get('control')} is not installed")
    return ResolvedRule.model_validate({**rule, "params": found[1].params_model.model_validate(params)})


def bounded(
    call: Callable[[], list[Observation]],
    timeout: float,
    name: str,
    stop: threading.Event,
    beat: "_Heartbeat | None" = None,
) -> list[Observation] | str | None:
    """What `call` returned, or why it has nothing (it crashed, or went `timeout` plus grace
    without a `beat`, and is abandoned); None when `stop` was set while it ran."""
    beat = beat or _Heartbeat()
    outcome: dict[str, Any] = {}

    def guarded() -> None:
        try:
            outcome["observations"] = call()
        except Exception as exc:  # a crashing plugin costs its own observation, nothing else
            outcome["error"] = f"probe crashed: {type(exc).__name__}: {exc}"

    worker = threading.Thread(target=guarded, name=f"attt-probe-{name}", daemon=True)
    worker.start()
    while worker.is_alive() and not stop.is_set():
        left = beat.last + timeout + GRACE - time.monotonic()
        if left <= 0:
            break
        worker.join(min(left, LOOK_EVERY))
    if worker.is_alive():
        return None if stop.is_set() else f"timed out after {timeout:g} s"
    if "error" in outcome:
        return str(outcome["error"])
    observations: list[Observation] = outcome["observations"]
    return observations


class _Batches:
    """A batched check's probes of a whole run, `batch_size` targets at a time, in target order,
    started at once; each target's job waits for its own part only: its batch's end, or, from a
    check that `streams`, the moment the check yields it."""

    def __init__(
        self,
        runner: Runner,
        check: Batched,
        jobs: Chunk,
        concurrency: int,
        remote: Remote | None = None,
    ) -> None:
        self._runner = runner
        self._check = check
        self._name: str = getattr(check, "name", type(check).__name__)
        self._remote = remote
        self._streams = remote is None and streams(check)
        # A remote batch waits on a zone's workers, not on this machine: more may be under way.
        pool = _BATCH_WORKERS if remote is None else _REMOTE_BATCHES
        self._pool = ThreadPoolExecutor(max_workers=pool, thread_name_prefix="attt-batch")
        self._parts: dict[tuple[str, str], _Part] = {}
        # Sent to workers, smaller batches spread over every worker of a zone and its slots. A
        # batch that streams hands each host over as it ends, so its size delays no host. (Its
        # hosts split over two nmap runs at once, one per core, made a 1,000-host scan slower:
        # nmap was done sooner, but this process's share of the work, under one interpreter
        # lock, then had one core fewer.)
        most = _REMOTE_BATCH_HOSTS if remote is not None else concurrency * _GROUPS_PER_BATCH
        size = max(1, check.batch_size if self._streams else min(check.batch_size, most))
        # --concurrency is the hosts probed at once, batches included: each batch running at the
        # same time here probes its share of them at a time (ProbeContext.concurrency), so a
        # polite scan stays polite. A zone's workers keep to their own --concurrency.
        at_once = 1 if remote is not None else min(pool, -(-len(jobs) // size))
        for zone_jobs in _by_zone(jobs) if remote is not None else [jobs]:
            for first in range(0, len(zone_jobs), size):
                chunk = [(target, _share(ctx, at_once)) for target, ctx in zone_jobs[first : first + size]]
                self._parts.update((target.key, _Part()) for target, _ in chunk)
                self._pool.submit(self._run, chunk)

    def _run(self, chunk: Chunk) -> None:
        """Probe one batch and hand each target its part (None when the scan was stopped)."""
        try:
            if self._runner.stop.is_set():
                split = None
            elif self._remote is not None:
                split = self._remote.probe_batch(self._check, self._name, chunk)
            else:
                hand_over = self._hand_over if self._streams else None
                split = run_batch(self._check, self._name, chunk, self._runner.stop, hand_over)
        except BaseException as exc:  # a bug: each waiting target raises it, as its own probe would
            for target, _ in chunk:
                self._parts[target.key].fail(exc)
            raise
        for target, _ in chunk:
            self._parts[target.key].give(None if split is None else split.get(target.key))

    def _hand_over(self, key: tuple[str, str], observations: list[Observation]) -> None:
        self._parts[key].give(observations)

    def holds(self, target: Target) -> bool:
        return target.key in self._parts

    def wait(self, target: Target) -> list[Observation] | None:
        """This target's observations once its part is known; None when the scan was stopped."""
        part = self._parts[target.key]
        # A stopped batch gives its parts None at once; the stop is looked at here too, seldom
        # (`LOOK_EVERY`): the waking threads took the GIL from the thread reading nmap's output.
        while not self._runner.stop.is_set():
            if part.ready.wait(LOOK_EVERY):
                return part.result()
        return None

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _share(ctx: ProbeContext[Any], batches: int) -> ProbeContext[Any]:
    """The context of a target in one of `batches` batches probing at the same time."""
    return ctx if batches <= 1 else replace(ctx, concurrency=max(1, ctx.concurrency // batches))


class _Part:
    """One target's part of a batch: given once (a part handed over early is not replaced)."""

    def __init__(self) -> None:
        self.ready = threading.Event()
        self._observations: list[Observation] | None = None
        self._error: BaseException | None = None
        self._lock = threading.Lock()

    def give(self, observations: list[Observation] | None) -> None:
        with self._lock:
            if not self.ready.is_set():
                self._observations = observations
                self.ready.set()

    def fail(self, error: BaseException) -> None:
        with self._lock:
            if not self.ready.is_set():
                self._error = error
                self.ready.set()

    def result(self) -> list[Observation] | None:
        if self._error is not None:
            raise self._error
        return self._observations


HandOver = Callable[[tuple[str, str], list[Observation]], None]
"""Told a target's observations as soon as a streaming batch has them."""


def run_batch(
    check: Batched, name: str, chunk: Chunk, stop: threading.Event, hand_over: HandOver | None = None
) -> Split | None:
    """One batch, bounded like a probe: each target's observations; None when `stop` was set
    meanwhile. The same code wherever the batch runs (here, or on a zone's worker).

    With `hand_over`, the observation of each target of a check that `streams` is handed over as
    soon as the check yields it; the split returned then holds the targets not handed over
    (those the batch's failure, time limit or silence left)."""
    started = datetime.now(UTC)
    stream = _Stream(name, chunk, started, hand_over)
    outcome = bounded(lambda: stream.read(check.probe_batch(chunk)), batch_budget(chunk), name, stop)
    rest = stream.close()
    if outcome is None:
        return None
    finished = datetime.now(UTC)
    split = split_batch(name, rest, outcome)
    return {
        key: [obs.timed(obs.started or started, obs.finished or finished) for obs in observations]
        for key, observations in split.items()
    }


class _Stream:
    """A batch's observations as they come. With `hand_over` (a check that streams), each one is
    handed over at once, as its target's whole part; `close` stops that (the batch ended or was
    abandoned: a probe thread left running hands over nothing more) and says which targets are
    left."""

    def __init__(self, name: str, chunk: Chunk, started: datetime, hand_over: HandOver | None) -> None:
        self._name = name
        self._left = {target.key: target for target, _ in chunk}
        self._started = started
        self._hand_over = hand_over
        self._lock = threading.Lock()

    def read(self, observations: Iterable[Observation]) -> list[Observation]:
        """The observations not handed over: all of them from a check that does not stream."""
        if self._hand_over is None:
            return list(observations)
        for obs in observations:
            self._give(obs)
        return []

    def _give(self, obs: Observation) -> None:
        key = (obs.system, obs.host)
        with self._lock:
            if self._hand_over is None:
                return  # abandoned: its targets already have their errors
            if obs.check != self._name or self._left.pop(key, None) is None:
                # Another check's, not a target of this batch, or one already handed over: a check
                # breaking its word to stream one observation per target. Said, never given away.
                _LOG.warning(
                    "batched check %s: an observation of %s it cannot hand over was dropped", self._name, key
                )
                return
            self._hand_over(key, [obs.timed(obs.started or self._started, obs.finished or datetime.now(UTC))])

    def close(self) -> list[Target]:
        with self._lock:
            self._hand_over = None
            return list(self._left.values())


def split_batch(name: str, targets: Sequence[Target], outcome: Sequence[Observation] | str) -> Split:
    """What a batch said of each of its targets: its observations of check `name` about that
    target, or an `error` one when it failed (`outcome` is then why) or said nothing of it."""
    of = {target.key: target for target in targets}
    split: Split = {key: [] for key in of}
    for obs in [] if isinstance(outcome, str) else outcome:
        key = (obs.system, obs.host)
        if key in split and obs.check == name:
            split[key].append(obs)
    for key, target in of.items():
        if isinstance(outcome, str):
            split[key] = [Observation.failed(name, target, outcome)]
        elif not split[key]:
            # A batch that says nothing about a host has not shown that nothing is there.
            split[key] = [
                Observation.failed(name, target, "the batched probe returned nothing for this host")
            ]
    return split


def _by_zone(jobs: Chunk) -> list[Chunk]:
    """Jobs by the zone of their target, in order: a remote batch goes to one zone's workers."""
    zones: dict[str | None, list[tuple[Target, ProbeContext[Any]]]] = {}
    for target, ctx in jobs:
        zones.setdefault(target.zone, []).append((target, ctx))
    return list(zones.values())


def _by_host(targets: Sequence[Target]) -> list[list[Target]]:
    """Targets grouped by host: the same address and pinned IP, in any number of systems."""
    hosts: dict[tuple[str, str], list[Target]] = {}
    for target in targets:
        hosts.setdefault((target.address, target.ip), []).append(target)
    return list(hosts.values())


def _as_probed(target: Target) -> Target:
    """The target without whose system it is: what one probe may serve several systems with.
    A probe reads the host's registration (its name for SNI and certificates, its declared
    services) and the system's tags and allowed ports, and two systems may register one
    address differently; only the system's identity and paperwork are left out."""
    anonymous = target.system.model_copy(update={"id": "", "name": "", "owner": "", "level_decision": None})
    return target.model_copy(update={"system": anonymous})


def _comparable(ctx: ProbeContext[Any]) -> ProbeContext[Any]:
    """The context without whose-system-it-is: equal for two systems iff one probe serves both."""
    return replace(ctx, prior=tuple(o.model_copy(update={"system": ""}) for o in ctx.prior))


class _Heartbeat:
    """When a probe last said it is not stuck (`ProbeContext.keepalive`)."""

    def __init__(self) -> None:
        self.last = time.monotonic()

    def __call__(self) -> None:
        self.last = time.monotonic()


def own_observation(obs: Observation, check: str, target: Target) -> Observation:
    """A plugin reports on its own target only; anything else is turned into an error."""
    if (obs.check, obs.system, obs.host) != (check, target.system.id, target.address):
        return Observation.failed(check, target, "probe returned an observation for another target", obs.port)
    return obs


def settings_for(check: Check, policies: Sequence[ResolvedPolicy]) -> BaseModel:
    """The first policy that configures the check wins; else the check's defaults. Always an
    instance of the check's own `settings_model`, whatever a policy object carries."""
    model = check.settings_model
    for policy in policies:
        if check.name in policy.settings:
            settings = policy.settings[check.name]
            return settings if isinstance(settings, model) else model.model_validate(settings.model_dump())
    return model()
