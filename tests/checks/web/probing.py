"""Scripted web servers probed once per case, and the verdicts of their observations: shared by
the tests of tests/servers/web_tricks.py and tests/servers/web_odd.py."""

from typing import Any

from attt.checks.web import WebCheck, WebData, WebSettings
from attt.checks.web.controls import CookiesParams, ExposedParams, HeadersParams
from attt.scanner.models.observation import Observation
from attt.scanner.models.target import Host, Service, Target
from attt.scanner.plugin import NoParams, ProbeContext, Verdict
from tests.factories import system
from tests.servers.web_tricks import TrickyWeb

PARAMS: dict[str, Any] = {
    "web.headers": HeadersParams(),
    "web.cookies": CookiesParams(),
    "web.exposed_files": ExposedParams(),
}


class Probed(dict[str, tuple[Target, dict[int | None, Observation]]]):
    """Each case probed once, on first use: its target and its observations by port."""

    def __init__(self, web: TrickyWeb) -> None:
        super().__init__()
        self._web = web

    def __missing__(self, case: str) -> tuple[Target, dict[int | None, Observation]]:
        ip = self._web.hosts[case]
        services = [Service(port=443, kind="tls")]
        if case in self._web.http_cases:
            services.append(Service(port=80, kind="http"))
        host = Host(address=ip, hostname=self._web.names[case], services=tuple(services))
        target = Target(system=system(id="tricks", tags=("portal",)), host=host, ip=ip)
        # The test CA, trusted the way a user declares a province's own CA.
        settings = WebSettings(min_interval=0, trust_anchors=(str(self._web.ca_file),))
        context = ProbeContext(timeout=10, settings=settings)
        self[case] = (target, {o.port: o for o in WebCheck().probe(target, context)})
        return self[case]

    def data(self, case: str, port: int = 443) -> WebData:
        observation = self[case][1][port]
        assert observation.status == "ok", observation.error
        return WebData.model_validate(observation.data)

    def verdict(self, case: str, control: str, port: int = 443) -> Verdict:
        """The verdict the engine gives: `error` when the control needs a step that failed."""
        target = self[case][0]
        data = self.data(case, port)
        rule = WebCheck.controls[control]
        params = PARAMS.get(control, NoParams())
        if set(rule.steps_needed(params, target)) & set(data.incomplete):
            return Verdict.cannot_judge(f"steps failed: {data.step_errors}")
        return rule.judge(data, params, target)
