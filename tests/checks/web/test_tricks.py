"""The web check against servers that answer in ways a careless reading of HTTP gets wrong
(tests/servers/web_tricks.py): each must end in an observation and an earned verdict."""

from typing import Any

import pytest

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


class _Probed(dict[str, tuple[Target, Observation]]):
    """Each case probed once, on first use: its target and its HTTPS observation."""

    def __init__(self, web: TrickyWeb) -> None:
        super().__init__()
        self._web = web

    def __missing__(self, case: str) -> tuple[Target, Observation]:
        ip = self._web.hosts[case]
        host = Host(address=ip, services=(Service(port=443, kind="tls"),))
        target = Target(system=system(id="tricks", tags=("portal",)), host=host, ip=ip)
        context = ProbeContext(timeout=10, settings=WebSettings(min_interval=0))
        (observation,) = [o for o in WebCheck().probe(target, context) if o.port == 443]
        self[case] = (target, observation)
        return self[case]


@pytest.fixture(scope="module")
def probed(tricky_web: TrickyWeb) -> _Probed:
    return _Probed(tricky_web)


def _verdict(probed: _Probed, case: str, control: str) -> Verdict:
    target, observation = probed[case]
    assert observation.status == "ok", observation.error
    data = WebData.model_validate(observation.data)
    rule = WebCheck.controls[control]
    params = PARAMS.get(control, NoParams())
    assert not set(rule.steps_needed(params, target)) & set(data.incomplete), data.step_errors
    return rule.judge(data, params, target)


@pytest.mark.parametrize("case", ["unparsable location", "port out of range"])
def test_a_location_no_parser_accepts_stops_the_chain_and_costs_nothing_else(
    probed: _Probed, case: str
) -> None:
    data = WebData.model_validate(probed[case][1].data)
    assert data.redirects == () and "not a valid URL" in (data.redirect_stop or "")
    assert _verdict(probed, case, "web.headers").status == "pass"


@pytest.mark.parametrize(
    ("case", "control", "text"),
    [
        # A browser reads max-age as ASCII digits, once: otherwise the header is ignored.
        ("hsts in arabic digits", "web.headers", "hsts"),
        ("hsts superscript", "web.headers", "hsts"),
        ("hsts max-age twice", "web.headers", "hsts"),
        # HSTS sent over plain HTTP is ignored, and the HTTPS site sends its visitors there.
        ("downgrade", "web.headers", "hsts"),
        # A browser never renders the body of a redirect: its meta tags set no policy.
        ("meta csp on a redirect", "web.headers", "content-security-policy"),
        ("empty csp", "web.headers", "content-security-policy"),
        ("late cookie and version", "web.cookies", "sessionid: no Secure"),
        ("late cookie and version", "web.version_disclosure", "Apache/2.4.1"),
        ("version on other paths", "web.version_disclosure", "PHP/7.4.3"),
        ("gzip env", "web.exposed_files", "/.env"),
        ("gzip-encoded backup", "web.exposed_files", "/backup.tar.gz"),
    ],
)
def test_each_trick_fails_the_rule_it_defeats(probed: _Probed, case: str, control: str, text: str) -> None:
    verdict = _verdict(probed, case, control)
    assert (verdict.status, text in verdict.message) == ("fail", True), verdict.message


def test_a_file_in_a_coding_attt_cannot_undo_is_unknown_never_absent(probed: _Probed) -> None:
    verdict = _verdict(probed, "brotli env", "web.exposed_files")
    assert (verdict.status, "env-file" in verdict.message) == ("error", True), verdict.message
    data = WebData.model_validate(probed["brotli env"][1].data)
    # The 404s carry the same coding: they prove nothing either way and are not errors.
    assert [p.id for p in data.paths if p.error] == ["env-file"]


def test_a_site_that_gzip_encodes_every_answer_serves_no_archive(probed: _Probed) -> None:
    verdict = _verdict(probed, "everything gzip-encoded", "web.exposed_files")
    assert verdict.status == "pass", verdict.message
