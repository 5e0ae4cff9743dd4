"""Findings: the judgement of one rule on one host (and port)."""

from datetime import date
from typing import Any, Literal

from pydantic import field_validator

from attt.scanner.models.base import Frozen, Severity, Text
from attt.scanner.models.policy import Reference

FindingStatus = Literal["pass", "fail", "error", "waived", "not_applicable"]
FindingKind = Literal["rule", "probe_error", "not_probed"]
"""`rule`: one rule judged on one endpoint. `probe_error`: the probe of an endpoint failed, and
the rules it would have judged are listed in `blocked` (one entry, counted once).
`not_probed`: the run ended before the probe ran (an interrupted or stopped scan)."""


class WaiverNote(Frozen):
    reason: str
    approved_by: str
    decision: str | None = None
    expires: date
    expired: bool
    """An expired waiver no longer applies; it is kept on the finding so the report says so."""


class Finding(Frozen):
    rule_id: str
    control: str
    check: str
    policy: str
    system: str
    host: str
    port: int | None = None
    status: FindingStatus
    severity: Severity
    title: Text
    message: Text
    """What the control saw, in both languages (a third-party check may give English only)."""

    @field_validator("message", mode="before")
    @classmethod
    def _one_text_for_both(cls, value: object) -> object:
        """Runs stored before messages were bilingual hold one string: it serves both languages."""
        return {"vi": value, "en": value} if isinstance(value, str) else value

    evidence: dict[str, Any]
    """`observed` and `expected` values, so a reader sees both side by side."""
    references: tuple[Reference, ...]
    remediation: Text
    waiver: WaiverNote | None = None
    kind: FindingKind = "rule"
    blocked: tuple[str, ...] = ()
    """For a `probe_error` or `not_probed` entry: the ids of the rules it kept from a verdict."""
    vantage: str | None = None
    """The zone the judged observations were made from; None: from where attt ran, without zones."""
    judged_from_inside: bool = False
    """The rule asks to be judged from outside (`vantage: internet`) but the run saw the host from
    no outside vantage, so it was judged on what was seen from inside, and says so."""
