"""The `tls` check: how every TLS endpoint of a host is configured, scanned with sslyze."""

from collections.abc import Iterable
from typing import ClassVar

from attt.checks.tls.controls import CONTROLS
from attt.checks.tls.models import TlsData, TlsSettings
from attt.checks.tls.probe import probe_target, tls_endpoints
from attt.scanner.models.observation import Observation
from attt.scanner.models.target import Target
from attt.scanner.plugin import API_VERSION, ProbeContext

__all__ = ["TlsCheck", "TlsData", "TlsSettings", "tls_endpoints"]


class TlsCheck:
    """One observation per TLS endpoint (port): the declared `tls` and mail/directory services,
    and the open ports the ports check saw speaking TLS or sitting on a well-known TLS port."""

    name: ClassVar[str] = "tls"
    api_version: ClassVar[int] = API_VERSION
    data_model: ClassVar[type[TlsData]] = TlsData
    settings_model: ClassVar[type[TlsSettings]] = TlsSettings
    after: ClassVar[tuple[str, ...]] = ("ports",)
    cpu_heavy: ClassVar[bool] = True  # nassl holds the GIL through each handshake
    controls = CONTROLS

    def probe(self, target: Target, ctx: ProbeContext[TlsSettings]) -> Iterable[Observation]:
        settings = ctx.settings
        return probe_target(target, ctx, settings)
