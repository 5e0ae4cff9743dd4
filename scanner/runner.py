"""Runs the checks' probes against the targets: concurrent, bounded, timed out, fail-closed.

Each target is one job; inside a job the checks run in dependency order (`Check.after`), so a
check can read what an earlier one saw on the same host. A probe that raises or overruns its
budget yields an `error` observation and never stops the others.
"""

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel

from attt.scanner.models.observation import Observation, ProbeKey
from attt.scanner.models.policy import ResolvedPolicy, ResolvedRule
from attt.scanner.models.target import Target
from attt.scanner.plugin import Check, Credential, ProbeContext
from attt.scanner.registry import Registry

DEFAULT_CONCURRENCY = 16
"""Hosts probed at once: a province registers a few hundred hosts; 16 keeps a night's scan
short without flooding one network segment."""
DEFAULT_TIMEOUT = 120.0
"""Seconds one check may spend on one host (a full TLS scan of several ports fits)."""
_GRACE = 5.0
"""Extra seconds before an overrunning probe is abandoned, so probes can report their own timeout."""

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
        with ThreadPoolExecutor(
            max_workers=max(1, plan.concurrency), thread_name_prefix="attt-target"
        ) as pool:
            pending: set[Future[bool]] = {
                pool.submit(self._run_host, plan, ts) for ts in _by_host(plan.targets)
            }
            complete = True
            try:
                while pending:
                    done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                    complete &= all(f.result() for f in done)
            except BaseException:
                self.stop.set()
                for future in pending:
                    future.cancel()
                raise
        return complete and not self.stop.is_set()

    def _run_host(self, plan: ScanPlan, targets: Sequence[Target]) -> bool:
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
                if not self._probe_group(check, plan, group, seen):
                    return False
        return True

    def _probe_group(
        self,
        check: Check,
        plan: ScanPlan,
        group: Sequence[Target],
        seen: dict[tuple[str, str], list[Observation]],
    ) -> bool:
        first = group[0]
        ctx = self._context(plan, first, check, seen)
        for target in group:
            self._progress.started(target, check.name)
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
            mine = [o.model_copy(update={"system": target.system.id}) for o in observations]
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
        )

    def _probe(self, check: Check, target: Target, ctx: ProbeContext[Any]) -> list[Observation] | None:
        """Run one probe in its own thread so a hung probe can be abandoned after its budget.

        None when the scan was stopped mid-probe: nothing was observed, and the probe is left
        for a resumed run."""
        outcome: dict[str, Any] = {}
        started = datetime.now(UTC)

        def call() -> None:
            try:
                outcome["observations"] = list(check.probe(target, ctx))
            except Exception as exc:  # a crashing plugin costs its own observation, nothing else
                outcome["error"] = f"probe crashed: {type(exc).__name__}: {exc}"

        worker = threading.Thread(target=call, name=f"attt-probe-{check.name}", daemon=True)
        worker.start()
        deadline = time.monotonic() + ctx.timeout + _GRACE
        while worker.is_alive() and time.monotonic() < deadline and not self.stop.is_set():
            worker.join(0.2)
        finished = datetime.now(UTC)
        if self.stop.is_set() and worker.is_alive():
            return None
        if worker.is_alive():
            result = [Observation.failed(check.name, target, f"timed out after {ctx.timeout:g} s")]
        elif "error" in outcome:
            result = [Observation.failed(check.name, target, outcome["error"])]
        else:
            result = [_own(obs, check.name, target) for obs in outcome["observations"]]
        return [obs.timed(obs.started or started, obs.finished or finished) for obs in result]


def _by_host(targets: Sequence[Target]) -> list[list[Target]]:
    """Targets grouped by host: the same address and pinned IP, in any number of systems."""
    hosts: dict[tuple[str, str], list[Target]] = {}
    for target in targets:
        hosts.setdefault((target.address, target.ip), []).append(target)
    return list(hosts.values())


def _comparable(ctx: ProbeContext[Any]) -> ProbeContext[Any]:
    """The context without whose-system-it-is: equal for two systems iff one probe serves both."""
    return replace(ctx, prior=tuple(o.model_copy(update={"system": ""}) for o in ctx.prior))


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
