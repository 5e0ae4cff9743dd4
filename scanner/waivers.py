"""Waiver files (`--waivers FILE`): waivers kept apart from policies, applied on top of the policy
that judges each system, so a province approves exceptions without copying or forking a policy.

```yaml
waivers:
  - rule: PORT-FORBIDDEN
    system: qlvb
    host: 10.213.2.5            # optional; also port
    reason: "Legacy FTP import job; replacement planned"
    approved_by: "Giám đốc Trung tâm CNTT tỉnh"
    decision: "QĐ 12/QĐ-TTCNTT"
    expires: 2027-03-31
```
"""

from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

from pydantic import Field

from attt.scanner._yaml import load_yaml, validate
from attt.scanner.models.base import Frozen
from attt.scanner.models.policy import ResolvedPolicy, Waiver

Policies = Mapping[str, tuple[ResolvedPolicy, ...]]


class WaiverFile(Frozen):
    waivers: tuple[Waiver, ...] = Field(min_length=1)


def with_waivers(
    policies: Policies, files: Sequence[Path], known_systems: Collection[str]
) -> dict[str, tuple[ResolvedPolicy, ...]]:
    """Each system's policies with the files' waivers for it added; a waiver naming a system the
    inventory does not have, or a rule no policy of that system has, is an error with file and line."""
    extra: dict[str, list[Waiver]] = {}
    for path in files:
        doc = load_yaml(path)
        for index, waiver in enumerate(validate(WaiverFile, doc).waivers):
            if waiver.system not in known_systems:
                raise doc.error(("waivers", index, "system"), f"no system {waiver.system!r} in the inventory")
            judging = policies.get(waiver.system)
            if judging is not None and not any(r.id == waiver.rule for p in judging for r in p.rules):
                names = ", ".join(p.id for p in judging)
                message = f"rule {waiver.rule} is not in the policy judging it ({names})"
                raise doc.error(("waivers", index, "rule"), message)
            extra.setdefault(waiver.system, []).append(waiver)
    # A system without waivers of its own keeps the policies it shares with the others.
    return {
        system: tuple(p.model_copy(update={"waivers": (*p.waivers, *extra[system])}) for p in judged)
        if system in extra
        else tuple(judged)
        for system, judged in policies.items()
    }
