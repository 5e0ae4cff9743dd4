"""Observations: facts a probe saw, without judgement. They are stored, so a changed policy
can be evaluated again without touching the network."""

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from attt.scanner.models.base import Frozen
from attt.scanner.models.target import Target

MAX_ERROR_CHARS = 500

ProbeKey = tuple[str, str, str]
"""(check, system id, host address): one probe of one target."""


class Observation(Frozen):
    check: str
    system: str
    host: str
    ip: str | None = None
    port: int | None = None
    status: Literal["ok", "error"]
    error: str | None = None
    data: dict[str, Any] | None = None
    """The check's typed data model, dumped to JSON-compatible values."""
    started: datetime | None = None
    finished: datetime | None = None

    @classmethod
    def ok(cls, check: str, target: Target, data: BaseModel, port: int | None = None) -> "Observation":
        return cls(
            check=check,
            system=target.system.id,
            host=target.address,
            ip=target.ip,
            port=port,
            status="ok",
            data=data.model_dump(mode="json"),
        )

    @classmethod
    def failed(cls, check: str, target: Target, error: str, port: int | None = None) -> "Observation":
        """An observation that could not be made; it yields `error` findings, never `pass`."""
        return cls(
            check=check,
            system=target.system.id,
            host=target.address,
            ip=target.ip,
            port=port,
            status="error",
            error=bound_text(error, MAX_ERROR_CHARS),
        )

    def timed(self, started: datetime, finished: datetime) -> "Observation":
        return self.model_copy(update={"started": started, "finished": finished})


def bound_text(text: str, limit: int) -> str:
    """Cut text a target or library produced to a length that is safe to store and show."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


class ObservationRecord(Frozen):
    """An observation as the store returns it, with its place in the run."""

    seq: int = Field(ge=0)
    observation: Observation
