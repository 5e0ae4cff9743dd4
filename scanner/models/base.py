"""Shared model configuration and small value types."""

from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any, Final
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict


class Frozen(BaseModel):
    """Immutable, closed model: unknown keys are errors, instances are hashable values."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Severity(StrEnum):
    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _SEVERITY_ORDER.index(self)


_SEVERITY_ORDER = list(Severity)


class Text(Frozen):
    """A text in both languages the reports speak."""

    vi: str
    en: str

    def get(self, lang: str) -> str:
        return self.vi if lang == "vi" else self.en


JsonDict = dict[str, Any]


VIETNAM: Final = ZoneInfo("Asia/Ho_Chi_Minh")
"""The provinces' time zone: their days are the days of waivers' expiry dates and of reports."""


def in_vietnam(moment: datetime) -> datetime:
    """The moment in Vietnam time (a naive time is taken as UTC, as the store records it)."""
    aware = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
    return aware.astimezone(VIETNAM)


def vietnam_day(moment: datetime) -> date:
    """The date in Vietnam at `moment`: a waiver approved until 31 March ends at midnight in
    Hà Tĩnh, 17:00 UTC, whatever zone the machine running attt is set to."""
    return in_vietnam(moment).date()
