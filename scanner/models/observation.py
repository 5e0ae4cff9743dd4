"""Observations: facts a probe saw, without judgement. They are stored, so a changed policy
can be evaluated again without touching the network."""

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny, ValidationInfo, WrapValidator
from pydantic_core.core_schema import ValidatorFunctionWrapHandler

from attt.scanner.models.base import Frozen
from attt.scanner.models.target import Target

MAX_ERROR_CHARS = 500

ProbeKey = tuple[str, str, str]
"""(check, system id, host address): one probe of one target. A probe made from a vantage other
than the host's own zone (an outside vantage) names it: `tls@internet` (`probe_check`)."""


def probe_check(check: str, vantage: str | None) -> str:
    """The check component of a probe key: the bare check for a probe from the host's own zone
    or from where attt runs (callers pass None then), `check@vantage` for one made from another
    vantage, so both probes of one host are kept, resumed and counted apart."""
    return check if vantage is None else f"{check}@{vantage}"


class OpaqueData(BaseModel):
    """Observation data whose check is not loaded here (a stored run read without its plugin):
    kept whole, field for field, so nothing is lost and it can be typed again later."""

    model_config = ConfigDict(frozen=True, extra="allow")


DATA_MODELS = "data_models"
"""Validation-context key: check name -> data model, so stored data comes back typed."""


def _typed_data(value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo) -> BaseModel | None:
    """Data arriving as JSON becomes the model of the observation's check when the caller
    passes the check models in the validation context, else `OpaqueData`."""
    if value is None or isinstance(value, BaseModel):
        return value
    models: Mapping[str, type[BaseModel]] = (info.context or {}).get(DATA_MODELS, {})
    model = models.get(info.data.get("check", ""), OpaqueData)
    return model.model_validate(value)


class Observation(Frozen):
    check: str
    system: str
    host: str
    ip: str | None = None
    port: int | None = None
    status: Literal["ok", "error"]
    error: str | None = None
    data: Annotated[SerializeAsAny[BaseModel] | None, WrapValidator(_typed_data)] = None
    """The check's own data model (`Check.data_model`) for `ok` observations."""
    started: datetime | None = None
    finished: datetime | None = None
    zone: str | None = None
    """The zone the probe was made from (its vantage); None: from where attt ran, without zones."""

    @classmethod
    def ok(cls, check: str, target: Target, data: BaseModel, port: int | None = None) -> "Observation":
        return cls(
            check=check,
            system=target.system.id,
            host=target.address,
            ip=target.ip,
            port=port,
            status="ok",
            data=data,
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
