"""The plugin contract: a check is one probe (the only I/O) plus the pure controls it provides.

It lives in the engine because the engine drives it; checks, built-in or third-party, import it
(through `attt.plugin`) and the engine never imports a check. A third-party check is a class
with the attributes of `Check`, registered under the `attt.checks` entry-point group; see
docs/writing-a-check.md.
"""

import inspect
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Literal, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel, ConfigDict, SecretStr

from attt.scanner.models.base import Frozen, Text
from attt.scanner.models.observation import Observation
from attt.scanner.models.policy import ResolvedRule
from attt.scanner.models.target import Target

API_VERSION = 1

DataT = TypeVar("DataT", bound=BaseModel)
ParamsT = TypeVar("ParamsT", bound=BaseModel)
SettingsT = TypeVar("SettingsT", bound=BaseModel)


class NoParams(Frozen):
    """Params model of a control that takes none."""


class Params(BaseModel):
    """Base for control params: closed, so a misspelt key in a policy is a load error.

    A field's docstring (the string right under it) is its description, shown by
    `attt checks list --verbose` (`catalog.field_docs`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Settings(Frozen):
    """Base for a check's settings model; field docstrings are descriptions, as for `Params`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    neutral: ClassVar[frozenset[str]] = frozenset()
    """The settings that leave what an observation means unchanged: how fast or how many
    connections, or what the observation records itself (the ports it scanned). A stored run
    judged again by a policy that differs from the run's in any other setting of the check is
    `error` for that check's rules: its facts were observed under other settings (other trust
    anchors, other ports visited)."""


def observing_settings(settings: BaseModel) -> dict[str, Any]:
    """The settings that shape what a probe observes (a settings model may be any pydantic
    model: a third-party check's plain one has no neutral setting)."""
    neutral: frozenset[str] = getattr(type(settings), "neutral", frozenset())
    return settings.model_dump(mode="json", exclude=set(neutral))


class NoSettings(Settings):
    """Settings model of a check that takes none."""


@dataclass(frozen=True)
class Verdict:
    """What a control concluded about one observation, with what it saw next to what it wanted.

    `message` is English; `vi` is the same sentence for Vietnamese reports. Without `vi`, a
    Vietnamese report shows the English text (a third-party check may not translate)."""

    status: Literal["pass", "fail", "error", "not_applicable"]
    message: str
    observed: Any = None
    expected: Any = None
    vi: str | None = None

    @property
    def text(self) -> Text:
        return Text(vi=self.vi or self.message, en=self.message)

    @classmethod
    def passed(
        cls, message: str, observed: Any = None, expected: Any = None, *, vi: str | None = None
    ) -> "Verdict":
        return cls("pass", message, observed, expected, vi)

    @classmethod
    def failed(
        cls, message: str, observed: Any = None, expected: Any = None, *, vi: str | None = None
    ) -> "Verdict":
        return cls("fail", message, observed, expected, vi)

    @classmethod
    def not_applicable(cls, message: str, *, vi: str | None = None) -> "Verdict":
        return cls("not_applicable", message, vi=vi)

    @classmethod
    def cannot_judge(
        cls, message: str, observed: Any = None, expected: Any = None, *, vi: str | None = None
    ) -> "Verdict":
        """The observation lacks what the rule needs (e.g. a port that was never scanned):
        an `error` finding, because a missing fact is never a pass."""
        return cls("error", message, observed, expected, vi)


Judge = Callable[[DataT, ParamsT, Target], Verdict]
Needs = Callable[[ParamsT, Target], Iterable[str]]
"""The probe steps whose facts a control reads, for given params and target."""


def _needs_nothing(_params: BaseModel, _target: Target) -> Iterable[str]:
    return ()


def incomplete_steps(data: BaseModel) -> tuple[str, ...]:
    """The probe steps that did not complete, as the check's data model lists them in its
    `incomplete` field (a data model without one claims every step completed)."""
    steps = getattr(data, "incomplete", ())
    return tuple(str(s) for s in steps) if isinstance(steps, tuple | list) else ()


def step_error(data: BaseModel, step: str) -> str | None:
    """Why a step did not complete, when the data model says so in a `step_errors` mapping."""
    errors = getattr(data, "step_errors", None)
    return errors.get(step) if isinstance(errors, Mapping) else None


@dataclass(frozen=True)
class Control(Generic[DataT, ParamsT]):
    """A pure judgement: observation data + rule params + the target's registered facts."""

    id: str
    """Dotted id used by policies, `<check>.<name>`, e.g. `ports.forbidden`."""
    params_model: type[ParamsT]
    judge: Judge[DataT, ParamsT]
    needs: Needs[ParamsT] = _needs_nothing
    """The probe steps whose facts the judge reads: when one of them did not complete, the
    evaluator gives `error` naming it and never calls the judge (a missing fact is no verdict),
    unless the judge takes `partial` facts."""
    partial: bool = False
    """The judge is called even when a step it needs did not complete, and judges what was
    observed: a `fail` on facts seen elsewhere stands (a forbidden port open whatever another
    port runs), an `error` naming the step wherever the missing facts could change the verdict;
    never a `pass` or `not_applicable` resting on them."""

    def steps_needed(self, params: ParamsT, target: Target) -> tuple[str, ...]:
        return tuple(self.needs(params, target))

    @property
    def doc(self) -> str:
        """What the control checks and why: its judge's docstring."""
        return inspect.cleandoc(self.judge.__doc__ or "")

    @property
    def summary(self) -> str:
        """One line for listings: the docstring's first line."""
        return self.doc.split("\n", 1)[0]

    @property
    def source(self) -> str:
        """Where the judge is defined, `module:line`, so a rule id leads to its code."""
        code = getattr(self.judge, "__code__", None)
        line = f":{code.co_firstlineno}" if code is not None else ""
        return f"{self.judge.__module__}{line}"


class Controls(Mapping[str, Control[Any, Any]]):
    """The controls of one check, declared where their judge functions are defined:

        CONTROLS = Controls("tls")

        @CONTROLS.control("tls.min_version", MinVersionParams, needs=older_suite_steps)
        def min_version(data: TlsData, params: MinVersionParams, target: Target) -> Verdict:
            \"\"\"No protocol older than the given version is accepted. <why>\"\"\"

    `needs` names the probe steps whose facts the judge reads (a tuple, or a function of the
    params and target); the data model lists the steps that did not complete in `incomplete`.
    A check class then says `controls = CONTROLS`.
    """

    def __init__(self, check: str) -> None:
        self._check = check
        self._index: dict[str, Control[Any, Any]] = {}

    def control(
        self,
        control_id: str,
        params: type[ParamsT] = NoParams,  # type: ignore[assignment]
        *,
        needs: Iterable[str] | Needs[ParamsT] = (),
        partial: bool = False,
    ) -> Callable[[Judge[DataT, ParamsT]], Judge[DataT, ParamsT]]:
        """Register the decorated judge as control `control_id` with rule params `params`,
        reading the facts of the probe steps `needs` (see `Control.partial`)."""
        if not control_id.startswith(f"{self._check}."):
            raise ValueError(f"control {control_id} must be named {self._check}.<something>")
        if control_id in self._index:
            raise ValueError(f"duplicate control id {control_id}")

        def register(judge: Judge[DataT, ParamsT]) -> Judge[DataT, ParamsT]:
            if not (judge.__doc__ or "").strip():
                raise ValueError(f"control {control_id}: the judge needs a docstring saying what and why")
            self._index[control_id] = Control(control_id, params, judge, _as_needs(needs), partial)
            return judge

        return register

    def __getitem__(self, control_id: str) -> Control[Any, Any]:
        return self._index[control_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)


def _as_needs(needs: Iterable[str] | Needs[ParamsT]) -> Needs[ParamsT]:
    if callable(needs):
        return needs
    fixed = tuple(needs)
    return lambda _params, _target: fixed


@dataclass(frozen=True)
class Credential:
    """A login for authenticated probes. Never logged, stored or printed."""

    user: str
    key_file: str | None = None
    password: SecretStr | None = None
    sudo: bool = False

    def __repr__(self) -> str:
        return f"Credential(user={self.user!r}, secret=***)"


@dataclass(frozen=True)
class ProbeContext(Generic[SettingsT]):
    """Everything a probe may use besides its target; `SettingsT` is the check's `settings_model`."""

    timeout: float
    """Budget in seconds for the whole probe of one target; the runner abandons it after that."""
    settings: SettingsT
    """The check's settings from the target's policy: an instance of its `settings_model`."""
    rules: tuple[ResolvedRule, ...] = ()
    """The rules this target will be judged by that use this check's controls."""
    prior: tuple[Observation, ...] = ()
    """This target's observations from the checks named in `Check.after`."""
    credential: Credential | None = None
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("attt.checks"))
    concurrency: int = 1
    """Hosts the run probes at once (`--concurrency`): a batched probe (`Batched`) never
    probes more of its targets than this at the same time."""
    keepalive: Callable[[], None] = field(default=lambda: None)
    """Call while the probe waits on attt's own shared resources (a worker pool) or the target
    is still answering: the runner abandons a probe after `timeout` (plus a grace) without a
    call, so `timeout` bounds waiting on the network, and a probe queued behind others or a
    healthy server that needs many handshakes is not cut off because attt was busy."""

    @property
    def connect_timeout(self) -> float:
        """Timeout for a single connection or read: a fraction of the whole budget."""
        return max(1.0, min(10.0, self.timeout / 4))


class Check(Protocol):
    """What the registry expects of a check class (instantiated with no arguments). It may also
    have `describe` (see `Described`) for more text in `attt checks list --verbose`, and
    `cpu_heavy = True` to have its probes run in worker processes (see `cpu_heavy`)."""

    name: ClassVar[str]
    """Equals the entry-point name and, for built-ins, the module name."""
    api_version: ClassVar[int]
    data_model: ClassVar[type[BaseModel]]
    """The model of `Observation.data` for this check's `ok` observations; the report's JSON
    Schema describes it field by field. A check with free-form data may use a model with
    `extra="allow"`."""
    settings_model: ClassVar[type[BaseModel]]
    after: ClassVar[tuple[str, ...]]
    """Checks whose observations of the same target this probe reads (`ProbeContext.prior`)."""
    controls: ClassVar[Mapping[str, Control[Any, Any]]]

    def probe(self, target: Target, ctx: ProbeContext[Any]) -> Iterable[Observation]:
        """Probe one target; return `error` observations rather than raise for target faults."""
        ...


def streams(check: "Batched") -> bool:
    """Whether a batched check yields one observation per target as soon as it has it
    (`streams: ClassVar[bool] = True`); one without the attribute has its batch's observations
    handed over when the batch ends."""
    return getattr(check, "streams", False) is True


def cpu_heavy(check: Check) -> bool:
    """Whether a check says its probes are CPU work done under the GIL (TLS handshakes, key
    exchanges), with `cpu_heavy: ClassVar[bool] = True`. The local engine then runs them in
    worker processes, one per core, instead of threads that share one core; a check without
    the attribute runs in threads. Such a check's probe must need nothing but its target and
    `ProbeContext` (it runs in a fresh process of the same installation), and its class must be
    importable by its module and name. A `Batched` check's batches still run in this process."""
    return getattr(check, "cpu_heavy", False) is True


@runtime_checkable
class Described(Protocol):
    """Optional for a check: more to say in `attt checks list --verbose` than its controls and
    settings, for example the requests a web check sends. A check has it by defining

        @classmethod
        def describe(cls) -> Iterable[str]: ...

    Each string is printed as one line under the check's heading."""

    def describe(self) -> Iterable[str]: ...


@runtime_checkable
class Batched(Protocol):
    """Optional for a check with no `after`: probes many targets in one go, e.g. one nmap run
    for many hosts. The runner then hands it up to `batch_size` targets at a time, as early in
    the run as it can, and each target's later checks start as soon as its batch is done.

    `probe_batch` probes at most `ProbeContext.concurrency` of its targets at once (groups of
    them one after another: one process for many groups costs far less than a process each),
    and returns at least one observation per target it was given (an `error` one when that
    target's part failed); a target it says nothing about is recorded as `error`. Its budget is
    the smallest `ProbeContext.timeout` among the batch for each group (`batch_budget`), so a
    target whose probe is costly on its own (`batchable` says False) goes through `probe` alone
    instead.

    A check that says it `streams` (`streams: ClassVar[bool] = True`, see `streams`) yields
    exactly one observation per target, as soon as it has it: the runner hands the target over
    at once (its later checks start, it is judged and stored), so one process for a thousand
    hosts delays none of them. A second observation of a target is dropped, with a warning."""

    batch_size: ClassVar[int]

    def batchable(self, target: Target, ctx: ProbeContext[Any]) -> bool: ...

    def probe_batch(self, jobs: Sequence[tuple[Target, ProbeContext[Any]]]) -> Iterable[Observation]: ...


def batch_groups(jobs: Sequence[tuple[Target, ProbeContext[Any]]]) -> int:
    """How many groups of at most `--concurrency` targets a batch probes one after another."""
    at_once = max(1, min((ctx.concurrency for _, ctx in jobs), default=1))
    return max(1, -(-len(jobs) // at_once))


def batch_budget(jobs: Sequence[tuple[Target, ProbeContext[Any]]]) -> float:
    """Seconds a batch may take: each of its groups gets the smallest budget among its targets."""
    return min((ctx.timeout for _, ctx in jobs), default=0.0) * batch_groups(jobs)
