"""The check contract: one probe (the only I/O) plus the pure controls it provides.

A third-party check is a class with the attributes of `Check`, registered under the
`attt.checks` entry-point group; see docs/writing-a-check.md.
"""

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Literal, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, SecretStr

from scanner.models.base import Frozen, Text
from scanner.models.observation import Observation
from scanner.models.policy import ResolvedRule
from scanner.models.target import Target

API_VERSION = 1

DataT = TypeVar("DataT", bound=BaseModel)
ParamsT = TypeVar("ParamsT", bound=BaseModel)


class NoParams(Frozen):
    """Params model of a control that takes none."""


class NoSettings(Frozen):
    """Settings model of a check that takes none."""


class Params(BaseModel):
    """Base for control params: closed, so a misspelt key in a policy is a load error."""

    model_config = ConfigDict(frozen=True, extra="forbid")


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


@dataclass(frozen=True)
class Control(Generic[DataT, ParamsT]):
    """A pure judgement: observation data + rule params + the target's registered facts."""

    id: str
    """Dotted id used by policies, `<check>.<name>`, e.g. `ports.forbidden`."""
    summary: str
    params_model: type[ParamsT]
    judge: Callable[[DataT, ParamsT, Target], Verdict]


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
class ProbeContext:
    """Everything a probe may use besides its target."""

    timeout: float
    """Budget in seconds for the whole probe of one target; the runner abandons it after that."""
    settings: BaseModel = field(default_factory=NoSettings)
    """The check's settings from the target's policy, validated by `settings_model`."""
    rules: tuple[ResolvedRule, ...] = ()
    """The rules this target will be judged by that use this check's controls."""
    prior: tuple[Observation, ...] = ()
    """This target's observations from the checks named in `Check.after`."""
    credential: Credential | None = None
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("attt.checks"))

    @property
    def connect_timeout(self) -> float:
        """Timeout for a single connection or read: a fraction of the whole budget."""
        return max(1.0, min(10.0, self.timeout / 4))


class Check(Protocol):
    """What the registry expects of a check class (instantiated with no arguments)."""

    name: ClassVar[str]
    """Equals the entry-point name and, for built-ins, the module name."""
    api_version: ClassVar[int]
    data_model: ClassVar[type[BaseModel]]
    """The model of `Observation.data` for this check's `ok` observations."""
    settings_model: ClassVar[type[BaseModel]]
    after: ClassVar[tuple[str, ...]]
    """Checks whose observations of the same target this probe reads (`ProbeContext.prior`)."""
    controls: ClassVar[Mapping[str, Control[Any, Any]]]

    def probe(self, target: Target, ctx: ProbeContext) -> Iterable[Observation]:
        """Probe one target; return `error` observations rather than raise for target faults."""
        ...


def controls_of(*controls: Control[Any, Any]) -> Mapping[str, Control[Any, Any]]:
    """Index controls by id, refusing duplicates."""
    index: dict[str, Control[Any, Any]] = {}
    for control in controls:
        if control.id in index:
            raise ValueError(f"duplicate control id {control.id}")
        index[control.id] = control
    return index
