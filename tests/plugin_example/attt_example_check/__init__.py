"""An example third-party check: whether a host's declared services are registered at all."""

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from attt.plugin import (
    API_VERSION,
    Control,
    Controls,
    Frozen,
    NoSettings,
    Observation,
    ProbeContext,
    Target,
    Verdict,
)

CONTROLS = Controls("banner")


class BannerData(Frozen):
    declared: int


@CONTROLS.control("banner.declared")
def declared(data: BannerData, params: Any, target: Target) -> Verdict:
    """The inventory declares at least one service for the host, so scans know what to expect."""
    if data.declared:
        return Verdict.passed(f"{data.declared} declared", vi=f"đã khai báo {data.declared} dịch vụ")
    return Verdict.failed("no service declared", vi="chưa khai báo dịch vụ nào")


class BannerCheck:
    name: ClassVar[str] = "banner"
    api_version: ClassVar[int] = API_VERSION
    data_model: ClassVar[type[BannerData]] = BannerData
    settings_model: ClassVar[type[NoSettings]] = NoSettings
    after: ClassVar[tuple[str, ...]] = ()
    controls: ClassVar[Mapping[str, Control[Any, Any]]] = CONTROLS

    def probe(self, target: Target, ctx: ProbeContext[Any]) -> Iterable[Observation]:
        return [Observation.ok(self.name, target, BannerData(declared=len(target.declared_ports())))]
