"""Runs the checks' probes against the targets: concurrent, bounded, timed out, fail-closed.

Each target is one job; inside a job the checks run in dependency order (`Check.after`), so a
check can read what an earlier one saw on the same host. A probe that raises or overruns its
budget yields an `error` observation and never stops the others.

A check that probes many targets at once (`Batched`, e.g. one nmap run for many hosts) is run
ahead of the jobs, in target order, a batch at a time; a job waits only for its own batch, so a
host's later checks start as soon as its batch is done.
"""

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel

from attt.scanner.models.observation import Observation, ProbeKey
from attt.scanner.models.policy import ResolvedPolicy, ResolvedRule
from attt.scanner.models.target import Target
from attt.scanner.plugin import Batched, Check, Credential, ProbeContext, batch_budget
from attt.scanner.registry import Registry

DEFAULT_CONCURRENCY = 16
"""Hosts probed at once: a province registers a few hundred hosts; 16 keeps a night's scan
short without flooding one network segment."""
DEFAULT_TIMEOUT = 120.0
"""Seconds one check may spend on one host (a full TLS scan of several ports fits)."""
_GRACE = 5.0
"""Extra seconds before an overrunning probe is abandoned, so probes can report their own timeout."""
_BATCH_WORKERS = 2
"""Batches of one check run at once: each is a whole process over many hosts (an nmap run)."""
_GROUPS_PER_BATCH = 8
"""Host groups (of --concurrency hosts) one batch holds at most: one process for several groups
costs far less than a process each, and a stopped scan loses no more than that much work."""

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


class ProgressSink:
    """Told when a probe starts and ends; the CLI turns this into a progress display."""

    def started(self, target: Target, check: str) -> None:
        """A probe began."""

    def finished(self, target: Target, check: str, observations: Sequence[Observation]) -> None:
        """A probe ended with these observations."""


class Runner:
    def __init__(
        self,
        registry: Registry,
        sink: ProbeSink,
        progress: ProgressSink | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self._registry = registry
        self._sink = sink
        self._progress = progress or ProgressSink()
        self.stop = stop or threading.Event()
        """Set to stop starting new probes (a signal, a store that refuses writes); probes under
        way are abandoned, what was observed is kept."""

    def run(self, plan: ScanPlan) -> bool:
        """Probe every target; return True when every planned probe ran to its end."""
        batches: dict[str, _Batches] = {}
        complete = True
        try:
            batches.update(self._start_batches(plan))
            with ThreadPoolExecutor(
                max_workers=max(1, plan.concurrency), thread_name_prefix="attt-target"
            ) as pool:
                # Woken by an Event, not concurrent.futures.wait: a signal (Ctrl-C, SIGTERM)
                # raised inside wait() can leave futures' locks held and the workers hung.
                # Each future hands itself over as it ends, so a wake-up costs what ended, not
                # a look at every host still pending (quadratic over a province).
                ended = threading.Event()
                finished: deque[Future[bool]] = deque()
                pending: set[Future[bool]] = set()

                def hand_over(future: Future[bool]) -> None:
                    finished.append(future)
                    ended.set()

                try:
                    for targets in _by_host(plan.targets):
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
        return complete and not self.stop.is_set()

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
            batches[name] = _Batches(self, check, jobs, plan.concurrency)
        return batches

    def _run_host(self, plan: ScanPlan, targets: Sequence[Target], batches: Mapping[str, "_Batches"]) -> bool:
        """Every check on one host, for each system that registers it. A probe whose context is
        the same for several systems (same settings, rules, credential, earlier facts) runs
        once; each system gets its own copy of what it saw, and is judged on it."""
        seen: dict[tuple[str, str], list[Observation]] = {}  # (system, check) -> observations
        for name in plan.checks:
            check = self._registry.check(name)
            groups: list[tuple[ProbeContext[Any], list[Target]]] = []  # contexts are not hashable
            for target in targets:
                earlier = plan.done.get((name, *target.key))
                if earlier is not None:
                    seen[(target.system.id, name)] = list(earlier)
                    continue
                ctx = _comparable(self._context(plan, target, check, seen))
                same = next((group for other, group in groups if other == ctx), None)
                if same is None:
                    groups.append((ctx, [target]))
                else:
                    same.append(target)
            for _ctx, group in groups:
                if self.stop.is_set():
                    return False
                if not self._probe_group(check, plan, group, seen, batches.get(name)):
                    return False
        return True

    def _probe_group(
        self,
        check: Check,
        plan: ScanPlan,
        group: Sequence[Target],
        seen: dict[tuple[str, str], list[Observation]],
        batch: "_Batches | None" = None,
    ) -> bool:
        first = group[0]
        ctx = self._context(plan, first, check, seen)
        for target in group:
            self._progress.started(target, check.name)
        if batch is not None and batch.holds(first):
            observations = batch.wait(first)
        else:
            observations = self._probe(check, first, ctx)
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
            mine = [
                o.model_copy(update={"system": target.system.id, "zone": plan.vantage}) for o in observations
            ]
            self._sink(target, check.name, mine)
            seen[(target.system.id, check.name)] = mine
            self._progress.finished(target, check.name, mine)
        return True

    def _context(
        self, plan: ScanPlan, target: Target, check: Check, seen: Mapping[tuple[str, str], list[Observation]]
    ) -> ProbeContext[Any]:
        policies = plan.policies.get(target.system.id, ())
        rules: list[ResolvedRule] = [
            r for p in policies for r in p.rules if r.check == check.name and r.applies(target.system)
        ]
        return ProbeContext(
            timeout=plan.timeout,
            settings=_settings_for(check, policies),
            rules=tuple(rules),
            prior=tuple(o for dep in check.after for o in seen.get((target.system.id, dep), ())),
            credential=plan.credentials(target),
            concurrency=plan.concurrency,
        )

    def _probe(self, check: Check, target: Target, ctx: ProbeContext[Any]) -> list[Observation] | None:
        """Run one probe in its own thread so a hung probe can be abandoned after its budget.

        None when the scan was stopped mid-probe: nothing was observed, and the probe is left
        for a resumed run."""
        started = datetime.now(UTC)
        beat = _Heartbeat()
        ctx = replace(ctx, keepalive=beat)
        outcome = self.bounded(lambda: list(check.probe(target, ctx)), ctx.timeout, check.name, beat)
        if outcome is None:
            return None
        finished = datetime.now(UTC)
        if isinstance(outcome, str):
            result = [Observation.failed(check.name, target, outcome)]
        else:
            result = [_own(obs, check.name, target) for obs in outcome]
        return [obs.timed(obs.started or started, obs.finished or finished) for obs in result]

    def bounded(
        self,
        call: Callable[[], list[Observation]],
        timeout: float,
        name: str,
        beat: "_Heartbeat | None" = None,
    ) -> list[Observation] | str | None:
        """What `call` returned, or why it has nothing (it crashed, or went `timeout` plus grace
        without a `beat`, and is abandoned); None when the scan was stopped while it ran."""
        beat = beat or _Heartbeat()
        outcome: dict[str, Any] = {}

        def guarded() -> None:
            try:
                outcome["observations"] = call()
            except Exception as exc:  # a crashing plugin costs its own observation, nothing else
                outcome["error"] = f"probe crashed: {type(exc).__name__}: {exc}"

        worker = threading.Thread(target=guarded, name=f"attt-probe-{name}", daemon=True)
        worker.start()
        while (
            worker.is_alive() and time.monotonic() < beat.last + timeout + _GRACE and not self.stop.is_set()
        ):
            worker.join(0.2)
        if worker.is_alive():
            return None if self.stop.is_set() else f"timed out after {timeout:g} s"
        if "error" in outcome:
            return str(outcome["error"])
        observations: list[Observation] = outcome["observations"]
        return observations


class _Batches:
    """A batched check's probes of a whole run, `batch_size` targets at a time, in target order,
    started at once; each target's job waits for its own batch only."""

    def __init__(
        self,
        runner: Runner,
        check: Batched,
        jobs: Sequence[tuple[Target, ProbeContext[Any]]],
        concurrency: int,
    ) -> None:
        self._runner = runner
        self._check = check
        self._name: str = getattr(check, "name", type(check).__name__)
        self._pool = ThreadPoolExecutor(max_workers=_BATCH_WORKERS, thread_name_prefix="attt-batch")
        self._of: dict[tuple[str, str], Future[dict[tuple[str, str], list[Observation]] | None]] = {}
        # --concurrency is the hosts probed at once, a batch included: the batch probes its
        # hosts that many at a time (ProbeContext.concurrency), so a polite scan stays polite.
        size = max(1, min(check.batch_size, concurrency * _GROUPS_PER_BATCH))
        for first in range(0, len(jobs), size):
            chunk = jobs[first : first + size]
            future = self._pool.submit(self._run, chunk)
            self._of.update((target.key, future) for target, _ in chunk)

    def _run(
        self, chunk: Sequence[tuple[Target, ProbeContext[Any]]]
    ) -> dict[tuple[str, str], list[Observation]] | None:
        """Each target's observations of one batch; None when the scan was stopped meanwhile."""
        if self._runner.stop.is_set():
            return None
        started = datetime.now(UTC)
        outcome = self._runner.bounded(
            lambda: list(self._check.probe_batch(chunk)), batch_budget(chunk), self._name
        )
        if outcome is None:
            return None
        finished = datetime.now(UTC)
        targets = {target.key: target for target, _ in chunk}
        split: dict[tuple[str, str], list[Observation]] = {key: [] for key in targets}
        for obs in [] if isinstance(outcome, str) else outcome:
            key = (obs.system, obs.host)
            if key in split and obs.check == self._name:
                split[key].append(obs)
        for key, target in targets.items():
            if isinstance(outcome, str):
                split[key] = [Observation.failed(self._name, target, outcome)]
            elif not split[key]:
                # A batch that says nothing about a host has not shown that nothing is there.
                split[key] = [
                    Observation.failed(self._name, target, "the batched probe returned nothing for this host")
                ]
        return {
            key: [obs.timed(obs.started or started, obs.finished or finished) for obs in observations]
            for key, observations in split.items()
        }

    def holds(self, target: Target) -> bool:
        return target.key in self._of

    def wait(self, target: Target) -> list[Observation] | None:
        """This target's observations once its batch is done; None when the scan was stopped."""
        future = self._of[target.key]
        while not self._runner.stop.is_set():
            try:
                result = future.result(timeout=0.2)
            except TimeoutError:
                continue
            return None if result is None else result[target.key]
        return None

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _by_host(targets: Sequence[Target]) -> list[list[Target]]:
    """Targets grouped by host: the same address and pinned IP, in any number of systems."""
    hosts: dict[tuple[str, str], list[Target]] = {}
    for target in targets:
        hosts.setdefault((target.address, target.ip), []).append(target)
    return list(hosts.values())


def _comparable(ctx: ProbeContext[Any]) -> ProbeContext[Any]:
    """The context without whose-system-it-is: equal for two systems iff one probe serves both."""
    return replace(ctx, prior=tuple(o.model_copy(update={"system": ""}) for o in ctx.prior))


class _Heartbeat:
    """When a probe last said it is not stuck (`ProbeContext.keepalive`)."""

    def __init__(self) -> None:
        self.last = time.monotonic()

    def __call__(self) -> None:
        self.last = time.monotonic()


def _own(obs: Observation, check: str, target: Target) -> Observation:
    """A plugin reports on its own target only; anything else is turned into an error."""
    if (obs.check, obs.system, obs.host) != (check, target.system.id, target.address):
        return Observation.failed(check, target, "probe returned an observation for another target", obs.port)
    return obs


def _settings_for(check: Check, policies: Sequence[ResolvedPolicy]) -> BaseModel:
    """The first policy that configures the check wins; else the check's defaults. Always an
    instance of the check's own `settings_model`, whatever a policy object carries."""
    model = check.settings_model
    for policy in policies:
        if check.name in policy.settings:
            settings = policy.settings[check.name]
            return settings if isinstance(settings, model) else model.model_validate(settings.model_dump())
    return model()
