"""The `web` check: plain HTTP's redirects, the HTTPS answer's security headers and cookies,
announced software versions, and files a public site must never serve; one observation per
HTTP(S) endpoint, every request a GET to the pinned address, bounded in count, rate, bytes and time."""

from collections.abc import Iterable
from typing import ClassVar

from attt.checks.web.controls import CONTROLS
from attt.checks.web.models import WebData, WebSettings
from attt.scanner.models.observation import Observation
from attt.scanner.models.target import Target
from attt.scanner.plugin import API_VERSION, ProbeContext

__all__ = ["WebCheck", "WebData", "WebSettings"]


class WebCheck:
    """One observation per web endpoint: declared http services, declared TLS on web ports,
    open web ports seen by the ports check, and 443 on any host that serves the web."""

    name: ClassVar[str] = "web"
    api_version: ClassVar[int] = API_VERSION
    data_model: ClassVar[type[WebData]] = WebData
    settings_model: ClassVar[type[WebSettings]] = WebSettings
    after: ClassVar[tuple[str, ...]] = ("ports",)
    controls = CONTROLS

    @classmethod
    def describe(cls) -> list[str]:
        """The requests one endpoint receives, for `attt checks list --verbose`."""
        # The probe module (and its HTTP client) loads when first used: every command loads the
        # checks, and most never send a request.
        from attt.checks.web.probe import request_plan

        return ["sends:", *(f"  {line}" for line in request_plan())]

    def probe(self, target: Target, ctx: ProbeContext[WebSettings]) -> Iterable[Observation]:
        from attt.checks.web.probe import probe_target

        return probe_target(target, ctx, ctx.settings)
