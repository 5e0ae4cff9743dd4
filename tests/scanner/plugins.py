"""In-process check plugins for testing the engine itself (runner, evaluation, store).

They touch no network: they exercise how the engine treats a probe that answers, hangs or
crashes, which no real server can be made to do on cue.
"""

import os
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, ClassVar

from pydantic import BaseModel

from attt.scanner.models.base import Frozen
from attt.scanner.models.observation import Observation
from attt.scanner.models.target import Host, SystemInfo, Target
from attt.scanner.plugin import API_VERSION, Control, Controls, NoSettings, Params, ProbeContext, Verdict
from attt.scanner.registry import RegisteredCheck, Registry


class CountData(Frozen):
    count: int


class AtMost(Params):
    limit: int


COUNT_CONTROLS = Controls("count")


@COUNT_CONTROLS.control("count.at_most", AtMost)
def _at_most(data: CountData, params: AtMost, target: Target) -> Verdict:
    """The observed count is at most the rule's limit."""
    if data.count <= params.limit:
        return Verdict.passed(f"{data.count} <= {params.limit}", data.count, params.limit)
    return Verdict.failed(f"{data.count} > {params.limit}", data.count, params.limit)


class CountCheck:
    """Observes a number derived from the host address (its last octet)."""

    name: ClassVar[str] = "count"
    api_version: ClassVar[int] = API_VERSION
    data_model: ClassVar[type[BaseModel]] = CountData
    settings_model: ClassVar[type[BaseModel]] = NoSettings
    after: ClassVar[tuple[str, ...]] = ()
    controls: ClassVar[Mapping[str, Control[Any, Any]]] = COUNT_CONTROLS
    behaviour: ClassVar[dict[str, str]] = {}
    """address -> "hang" | "crash" | "error" | "none" to make the probe misbehave for that host."""
    probed: ClassVar[list[tuple[str, str]]] = []
    """(system, address) of every probe run, in order."""

    def probe(self, target: Target, ctx: ProbeContext[Any]) -> Iterable[Observation]:
        self.probed.append(target.key)
        match self.behaviour.get(target.address):
            case "hang":
                time.sleep(ctx.timeout * 10)
            case "crash":
                raise RuntimeError("plugin bug")
            case "error":
                return [Observation.failed(self.name, target, "connection refused", 1)]
            case "none":
                return []
        return [Observation.ok(self.name, target, CountData(count=int(target.ip.rsplit(".", 1)[1])), 1)]


class EchoData(Frozen):
    saw: tuple[int, ...]


class EchoCheck:
    """Reads what `count` observed on the same host, as `tls` reads `ports`."""

    name: ClassVar[str] = "echo"
    api_version: ClassVar[int] = API_VERSION
    data_model: ClassVar[type[BaseModel]] = EchoData
    settings_model: ClassVar[type[BaseModel]] = NoSettings
    after: ClassVar[tuple[str, ...]] = ("count",)
    controls: ClassVar[Mapping[str, Control[Any, Any]]] = Controls("echo")

    def probe(self, target: Target, ctx: ProbeContext[Any]) -> Iterable[Observation]:
        seen = tuple(o.data.count for o in ctx.prior if isinstance(o.data, CountData))
        return [Observation.ok(self.name, target, EchoData(saw=seen))] if seen else []


class WorkerData(Frozen):
    pid: int
    saw: tuple[int, ...]


class WorkerCheck:
    """CPU-heavy (`cpu_heavy`): run in a worker process when the scan has them. Says which
    process probed and what `count` saw on the host. Its misbehaviour travels with the target,
    as a worker shares no memory with the scan: a host whose last octet is 66 hangs, 67 crashes."""

    name: ClassVar[str] = "worker"
    api_version: ClassVar[int] = API_VERSION
    data_model: ClassVar[type[BaseModel]] = WorkerData
    settings_model: ClassVar[type[BaseModel]] = NoSettings
    after: ClassVar[tuple[str, ...]] = ("count",)
    cpu_heavy: ClassVar[bool] = True
    controls: ClassVar[Mapping[str, Control[Any, Any]]] = Controls("worker")

    def probe(self, target: Target, ctx: ProbeContext[Any]) -> Iterable[Observation]:
        match target.ip.rsplit(".", 1)[1]:
            case "66":
                time.sleep(ctx.timeout * 10)
            case "67":
                raise RuntimeError("plugin bug")
        seen = tuple(o.data.count for o in ctx.prior if isinstance(o.data, CountData))
        return [Observation.ok(self.name, target, WorkerData(pid=os.getpid(), saw=seen))]


class TallyCheck:
    """A batched check (like `ports`): counts each batch it is handed and tells each host the
    size of its batch."""

    name: ClassVar[str] = "tally"
    api_version: ClassVar[int] = API_VERSION
    data_model: ClassVar[type[BaseModel]] = CountData
    settings_model: ClassVar[type[BaseModel]] = NoSettings
    after: ClassVar[tuple[str, ...]] = ()
    controls: ClassVar[Mapping[str, Control[Any, Any]]] = Controls("tally")
    batch_size: ClassVar[int] = 2
    batches: ClassVar[list[tuple[str, ...]]] = []
    behaviour: ClassVar[dict[str, str]] = {}
    """address -> "crash" (the whole batch raises) | "skip" (the batch says nothing of it)."""
    at_once: ClassVar[set[int]] = set()
    """The `ProbeContext.concurrency` each batch was given."""

    def probe(self, target: Target, ctx: ProbeContext[Any]) -> Iterable[Observation]:
        if self.behaviour.get(target.address) == "alone":
            self.batches.append((f"alone {target.address}",))
        return self.probe_batch([(target, ctx)])

    def batchable(self, target: Target, ctx: ProbeContext[Any]) -> bool:
        return self.behaviour.get(target.address) != "alone"

    def probe_batch(self, jobs: Sequence[tuple[Target, ProbeContext[Any]]]) -> list[Observation]:
        self.batches.append(tuple(t.address for t, _ in jobs))
        self.at_once.update(ctx.concurrency for _, ctx in jobs)
        if any(self.behaviour.get(t.address) == "crash" for t, _ in jobs):
            raise RuntimeError("batch bug")
        return [
            Observation.ok(self.name, t, CountData(count=len(jobs)))
            for t, _ in jobs
            if self.behaviour.get(t.address) != "skip"
        ]


class StreamCheck:
    """A batched check that `streams` (like `ports`): yields one observation per target in turn.
    After the first target it waits (5 s at most) for `handed`, which a test sets once the
    runner has handed that target over, and says in `waited` whether it came."""

    name: ClassVar[str] = "stream"
    api_version: ClassVar[int] = API_VERSION
    data_model: ClassVar[type[BaseModel]] = CountData
    settings_model: ClassVar[type[BaseModel]] = NoSettings
    after: ClassVar[tuple[str, ...]] = ()
    controls: ClassVar[Mapping[str, Control[Any, Any]]] = Controls("stream")
    batch_size: ClassVar[int] = 10
    streams: ClassVar[bool] = True
    handed: ClassVar[threading.Event] = threading.Event()
    waited: ClassVar[list[bool]] = []
    behaviour: ClassVar[str] = ""
    """"crash": raise after the first target; "apart": the first target's observations again at the end."""

    def probe(self, target: Target, ctx: ProbeContext[Any]) -> Iterable[Observation]:
        return self.probe_batch([(target, ctx)])

    def batchable(self, target: Target, ctx: ProbeContext[Any]) -> bool:
        return True

    def probe_batch(self, jobs: Sequence[tuple[Target, ProbeContext[Any]]]) -> Iterator[Observation]:
        for i, (target, _) in enumerate(jobs):
            yield Observation.ok(self.name, target, CountData(count=i + 1))
            if i == 0:
                self.waited.append(self.handed.wait(5))
                if self.behaviour == "crash":
                    raise RuntimeError("batch bug")
        if self.behaviour == "apart":
            yield Observation.ok(self.name, jobs[0][0], CountData(count=99))


def registry() -> Registry:
    return Registry.of(
        {
            "count": RegisteredCheck(CountCheck(), "tests"),
            "echo": RegisteredCheck(EchoCheck(), "tests"),
            "tally": RegisteredCheck(TallyCheck(), "tests"),
            "stream": RegisteredCheck(StreamCheck(), "tests"),
        }
    )


def target(address: str, system: str = "sys-a", level: int = 3, tags: tuple[str, ...] = ()) -> Target:
    info = SystemInfo(id=system, name=system, owner="Sở Khoa học và Công nghệ", level=level, tags=tags)
    return Target(system=info, host=Host(address=address), ip=address)
