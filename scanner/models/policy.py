"""Policy files as written (`PolicyFile`) and as resolved for evaluation (`ResolvedPolicy`)."""

from collections.abc import Mapping
from datetime import date
from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from attt.scanner.models.base import Frozen, Severity, Text
from attt.scanner.models.target import Port, Role, SystemId, SystemInfo

RuleId = Annotated[str, Field(pattern=r"^[A-Z0-9][A-Z0-9-]{1,63}$")]
PolicyId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]
ControlId = Annotated[str, Field(pattern=r"^[a-z0-9_]+\.[a-z0-9_]+$")]
Vantage = Literal["internet"]
"""Where a rule must be judged from. `internet`: from an outside vantage (a zone with
`vantage: outside`) when the run has observations from one, else from inside, and the finding says so."""


class Reference(Frozen):
    model_config = ConfigDict(frozen=True, extra="forbid", coerce_numbers_to_str=True)

    standard: str = Field(min_length=1)
    clause: str | None = None
    confidence: Literal["verified", "secondary", "unverified"] = "unverified"
    """How sure we are of the clause: read in the primary text, in a secondary source, or not
    checked. Reports never present an unverified clause number as certain."""
    url: str | None = None
    levels: tuple[Annotated[int, Field(ge=1, le=5)], ...] | None = None
    """The security levels whose systems this clause speaks for (TCVN 11930 and TCVN 14423 number
    their sections per level); None: every level. A finding cites only its system's level."""

    def cited_for(self, level: int) -> bool:
        return self.levels is None or level in self.levels


class AppliesTo(Frozen):
    levels: tuple[Annotated[int, Field(ge=1, le=5)], ...] | None = None
    tags: tuple[str, ...] | None = None
    """The rule applies when the system carries at least one of these tags."""
    systems: tuple[SystemId, ...] | None = None
    except_roles: tuple[Role, ...] | None = None
    """The rule does not judge systems whose inventory `role` is one of these (a domain
    controller serves LDAP and SMB by design)."""


class RuleSpec(Frozen):
    id: RuleId
    control: ControlId
    params: dict[str, Any] = Field(default_factory=dict)
    severity: Severity
    applies_to: AppliesTo = AppliesTo()
    title: Text
    remediation: Text
    references: tuple[Reference, ...] = ()
    vantage: Vantage | None = None
    """None: judged on observations made from inside (or from where attt ran)."""


class Override(Frozen):
    rule: RuleId
    severity: Severity | None = None
    params: dict[str, Any] | None = None
    applies_to: AppliesTo | None = None
    vantage: Vantage | Literal["inside"] | None = None
    """`inside` takes a base rule's `vantage: internet` away (a province whose scans never run
    from outside); None keeps the rule's own."""
    enabled: bool = True


class Waiver(Frozen):
    rule: RuleId
    system: SystemId
    host: str | None = None
    port: Port | None = None
    reason: str = Field(min_length=1)
    approved_by: str = Field(min_length=1)
    decision: str | None = None
    expires: date


class PolicyFile(Frozen):
    model_config = ConfigDict(frozen=True, extra="forbid", coerce_numbers_to_str=True)

    id: PolicyId
    title: str = Field(min_length=1)
    version: str = "1"
    description: Text | None = None
    extends: tuple[PolicyId, ...] = ()
    settings: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Per-check probe settings, keyed by check name, validated by the check's settings model."""
    rules: tuple[RuleSpec, ...] = ()
    overrides: tuple[Override, ...] = ()
    waivers: tuple[Waiver, ...] = ()


class ResolvedRule(BaseModel):
    """A rule with `extends` and `overrides` applied and its params validated by its control."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    id: RuleId
    control: ControlId
    check: str
    params: BaseModel
    severity: Severity
    applies_to: AppliesTo
    title: Text
    remediation: Text
    references: tuple[Reference, ...]
    policy: PolicyId
    """The policy file that defined the rule."""
    vantage: Vantage | None = None

    def applies(self, system: SystemInfo) -> bool:
        """Whether the rule judges a system: each given criterion must hold (None means any)."""
        where = self.applies_to
        return (
            (where.levels is None or system.level in where.levels)
            and (where.tags is None or bool(set(where.tags) & set(system.tags)))
            and (where.systems is None or system.id in where.systems)
            and (where.except_roles is None or system.role not in where.except_roles)
        )


class PolicySource(Frozen):
    id: PolicyId
    version: str
    sha256: str
    path: str


class ResolvedPolicy(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    id: PolicyId
    title: str
    version: str
    description: Text | None = None
    sha256: str
    """Hash over every file that went into the policy, in resolution order."""
    sources: tuple[PolicySource, ...]
    rules: tuple[ResolvedRule, ...]
    waivers: tuple[Waiver, ...]
    settings: dict[str, BaseModel]

    @cached_property
    def rules_by_check(self) -> Mapping[str, tuple[ResolvedRule, ...]]:
        """Each check's rules, in the policy's order: the runner asks for them per system and
        check, a thousand systems' worth at the start of a province's scan."""
        by_check: dict[str, list[ResolvedRule]] = {}
        for rule in self.rules:
            by_check.setdefault(rule.check, []).append(rule)
        return {check: tuple(rules) for check, rules in by_check.items()}
