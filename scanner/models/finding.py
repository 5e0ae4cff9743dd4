"""Findings: the judgement of one rule on one host (and port)."""

from datetime import date
from typing import Any, Literal

from scanner.models.base import Frozen, Severity, Text
from scanner.models.policy import Reference

FindingStatus = Literal["pass", "fail", "error", "waived", "not_applicable"]


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
    evidence: dict[str, Any]
    """`observed` and `expected` values, so a reader sees both side by side."""
    references: tuple[Reference, ...]
    remediation: Text
    waiver: WaiverNote | None = None
