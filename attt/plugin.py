"""The public plugin API: everything a third-party check needs, from one import path.

    from attt.plugin import API_VERSION, Controls, Observation, Params, ProbeContext, Target, Verdict

The definitions live in the engine (`attt.scanner.plugin` and `attt.scanner.models`); this
module only names the stable surface, so the engine may rearrange itself without breaking a
plugin.
"""

from attt.scanner.models.base import Frozen, Text
from attt.scanner.models.observation import Observation, bound_text
from attt.scanner.models.policy import ResolvedRule
from attt.scanner.models.target import Port, Target
from attt.scanner.plugin import (
    API_VERSION,
    Batched,
    Check,
    Control,
    Controls,
    Credential,
    Described,
    NoParams,
    NoSettings,
    Params,
    ProbeContext,
    Settings,
    Verdict,
    batch_budget,
)

__all__ = [
    "API_VERSION",
    "Batched",
    "Check",
    "Control",
    "Controls",
    "Credential",
    "Described",
    "Frozen",
    "NoParams",
    "NoSettings",
    "Observation",
    "Params",
    "Port",
    "ProbeContext",
    "ResolvedRule",
    "Settings",
    "Target",
    "Text",
    "Verdict",
    "batch_budget",
    "bound_text",
]
