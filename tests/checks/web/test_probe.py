"""The web probe against real nginx sites on loopback, one misconfiguration per host."""

import shlex
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from attt.checks.ports.models import OpenPort, PortsData
from attt.checks.web import WebCheck, WebData, WebSettings
from attt.checks.web.controls import CookiesParams, ExposedParams, HeadersParams
from attt.checks.web.observatory import grade
from attt.checks.web.probe import CORS_ORIGIN, plan_endpoints
from attt.scanner.models.observation import DATA_MODELS, Observation
from attt.scanner.models.target import Host, Service, Target
from attt.scanner.plugin import NoParams, ProbeContext, Verdict
from tests.factories import system
from tests.servers.web import TRAP, WebLab

PARAMS: dict[str, Any] = {
    "web.headers": HeadersParams(),
    "web.cookies": CookiesParams(),
    "web.exposed_files": ExposedParams(),
}
_connects: list[tuple[str, int]] | None = None


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event == "socket.connect" and _connects is not None and isinstance(args[1], tuple):
        _connects.append((str(args[1][0]), int(args[1][1])))


# An audit hook cannot be removed; it records only while `_recording` is active.
sys.addaudithook(_audit)


@contextmanager
def _recording() -> Iterator[list[tuple[str, int]]]:
    global _connects
    _connects = []
    try:
        yield _connects
    finally:
        _connects = None


def _target(
    lab: WebLab, name: str, *services: tuple[int, str], tags: tuple[str, ...] = ("portal",)
) -> Target:
    site = lab[name]
    host = Host(
        address=site.ip, hostname=site.hostname, services=tuple(Service(port=p, kind=k) for p, k in services)
    )
    return Target(system=system(id=name, tags=tags), host=host, ip=site.ip)


def _probe(lab: WebLab, target: Target, **settings: Any) -> dict[int | None, Observation]:
    context = ProbeContext(timeout=20, settings=WebSettings(trust_anchors=(str(lab.ca_file),), **settings))
    return {o.port: o for o in WebCheck().probe(target, context)}


def _verdicts(target: Target, observation: Observation) -> dict[str, Verdict]:
    assert observation.status == "ok", observation.error
    data = WebData.model_validate(observation.data)
    return {
        control_id: control.judge(data, PARAMS.get(control_id, NoParams()), target)
        for control_id, control in WebCheck.controls.items()
    }


class _Probed(dict[str, dict[int | None, Observation]]):
    """Each site probed once, on first use, for the tests that only read the result."""

    def __init__(self, lab: WebLab) -> None:
        super().__init__()
        self._lab = lab

    def __missing__(self, site: str) -> dict[int | None, Observation]:
        self[site] = _probe(self._lab, _target(self._lab, site))
        return self[site]


@pytest.fixture(scope="module")
def probed(web_servers: WebLab) -> _Probed:
    return _Probed(web_servers)


def _statuses(target: Target, observation: Observation) -> dict[str, str]:
    return {control: verdict.status for control, verdict in _verdicts(target, observation).items()}


def test_a_well_configured_portal_passes_everything(web_servers: WebLab) -> None:
    target = _target(web_servers, "good")
    with _recording() as connects:
        started = time.monotonic()
        found = _probe(web_servers, target)
        seconds = time.monotonic() - started
    assert set(found) == {80, 443}
    assert set(_statuses(target, found[80]).values()) <= {"pass", "not_applicable"}
    assert set(_statuses(target, found[443]).values()) == {"pass", "not_applicable"}
    assert _statuses(target, found[443])["web.headers"] == "pass"
    https = WebData.model_validate(found[443].data)
    assert https.certificate_verified is True
    assert "Observatory-style grade A+" in _verdicts(target, found[443])["web.headers"].message
    # Every connection went to the pinned address, on the two web ports; the whole host cost:
    requests = sum(len(WebData.model_validate(o.data).requests) for o in found.values())
    assert {ip for ip, _ in connects} == {web_servers["good"].ip} and {p for _, p in connects} == {80, 443}
    assert len(connects) == requests <= WebSettings().max_requests
    assert seconds < 10, seconds


def test_requests_carry_the_host_name_as_sni_and_host_and_are_all_get(web_servers: WebLab) -> None:
    site = web_servers["good"]
    _probe(web_servers, _target(web_servers, "good"))
    lines = [shlex.split(line) for line in web_servers.access_log.read_text().splitlines()]
    seen = [fields for fields in lines if fields[0] == site.ip]
    assert seen
    # nginx logs "-" for the SNI of a plain-HTTP request.
    assert {(port, sni) for _, port, sni, *_ in seen} == {("80", "-"), ("443", site.hostname)}
    assert {(host, method) for _, _, _, host, method, _ in seen} == {(site.hostname, "GET")}


@pytest.mark.parametrize(
    ("site", "port", "control", "status", "text"),
    [
        ("bare", 443, "web.headers", "fail", "content-security-policy"),
        ("bare", 443, "web.version_disclosure", "fail", "nginx/"),
        ("noredirect", 80, "web.https_redirect", "fail", "answers 200"),
        ("noredirect", 80, "web.https_required", "pass", "443"),
        ("offscope", 80, "web.https_redirect", "fail", TRAP),
        ("cookies", 443, "web.cookies", "fail", "PHPSESSID: no Secure, no HttpOnly, no SameSite"),
        ("gitleak", 443, "web.exposed_files", "fail", "/.git/HEAD"),
        ("catchall", 443, "web.exposed_files", "pass", "200 to any path"),
        ("listing", 443, "web.exposed_files", "fail", "/uploads/"),
        ("httponly", 80, "web.https_required", "fail", "443 refused"),
        ("httponly", 80, "web.https_redirect", "fail", "without redirecting"),
    ],
)
def test_each_misconfiguration_is_found(
    web_servers: WebLab,
    probed: _Probed,
    site: str,
    port: int,
    control: str,
    status: str,
    text: str,
) -> None:
    verdict = _verdicts(_target(web_servers, site), probed[site][port])[control]
    assert (verdict.status, text in verdict.message) == (status, True), verdict.message


def test_every_leaked_file_is_named_and_confirmed_by_content(
    probed: _Probed,
) -> None:
    data = WebData.model_validate(probed["gitleak"][443].data)
    served = {p.id: p.evidence for p in data.paths if p.served}
    assert set(served) == {"git-head", "git-config", "env-file"}
    assert "ref: refs/heads/main" in (served["git-head"] or "")


def test_a_catch_all_site_is_seen_as_one_and_nothing_is_taken_for_a_file(
    probed: _Probed,
) -> None:
    data = WebData.model_validate(probed["catchall"][443].data)
    assert data.catch_all is True
    assert all(p.status == 200 and not p.served for p in data.paths)


def test_an_off_scope_redirect_is_recorded_and_never_fetched(web_servers: WebLab) -> None:
    before = web_servers.trap.accepted
    with _recording() as connects:
        found = _probe(web_servers, _target(web_servers, "offscope"))
    data = WebData.model_validate(found[80].data)
    assert data.off_scope_location == f"http://{TRAP}/login"
    assert data.redirects == ()
    assert web_servers.trap.accepted == before
    assert {ip for ip, _ in connects} == {web_servers["offscope"].ip}


def test_an_http_only_portal_has_one_observation_and_no_https_error(
    probed: _Probed,
) -> None:
    found = probed["httponly"]
    assert list(found) == [80]
    site = WebData.model_validate(found[80].data).site
    assert (site.https_ok, site.https_refused, site.http_chain) == (
        (),
        (443,),
        ("http://httponly.web.attt.test/",),
    )


def test_the_request_budget_leaves_unchecked_paths_an_error(web_servers: WebLab) -> None:
    target = _target(web_servers, "gitleak")
    found = _probe(web_servers, target, max_requests=6)
    data = WebData.model_validate(found[443].data)
    # HTTPS comes first and spends the budget: plain HTTP is then not observed, and says so.
    assert len(data.requests) == 6 and data.paths_skipped
    assert found[80].status == "error" and "budget" in (found[80].error or "")
    verdict = _verdicts(target, found[443])["web.exposed_files"]
    # What was checked still counts (.git/HEAD is early in the list); what was not is named.
    assert verdict.status == "fail" and "/.git/HEAD" in verdict.message


def test_requests_to_a_host_are_paced(web_servers: WebLab) -> None:
    started = time.monotonic()
    found = _probe(web_servers, _target(web_servers, "catchall"), min_interval=0.1)
    count = sum(len(WebData.model_validate(o.data).requests) for o in found.values())
    assert count > 10 and time.monotonic() - started >= (count - 1) * 0.1


def test_a_host_with_no_web_port_open_is_not_probed() -> None:
    target = Target(system=system(tags=()), host=Host(address="127.0.216.250"), ip="127.0.216.250")
    scan = PortsData(scanned=(22, 80, 443), open=(OpenPort(port=22, service="ssh"),), nmap_version="7.93")
    ports = Observation.ok("ports", target, scan)
    assert plan_endpoints(target, WebSettings(), [ports]).endpoints == {}


def test_every_web_service_nmap_finds_behind_tls_is_probed_over_https() -> None:
    # nmap names a TLS-wrapped service ssl/NAME: an HTTPS admin console on a port of its own
    # (ssl/http-proxy, ssl/http-mgmt) is a web endpoint like any other, never one left unprobed.
    target = Target(system=system(tags=()), host=Host(address="127.0.216.250"), ip="127.0.216.250")
    found = (OpenPort(port=18081, service="ssl/http-proxy"), OpenPort(port=19091, service="ssl/http-mgmt"))
    scan = PortsData(scanned=(18081, 19091), open=found, nmap_version="7.93")
    plan = plan_endpoints(target, WebSettings(), [Observation.ok("ports", target, scan)])
    assert {18081: "https", 19091: "https"}.items() <= plan.endpoints.items()


def test_without_a_port_scan_the_usual_web_ports_are_tried() -> None:
    target = Target(system=system(tags=()), host=Host(address="127.0.216.250"), ip="127.0.216.250")
    plan = plan_endpoints(target, WebSettings(), [])
    assert plan.endpoints == {80: "http", 443: "https"} and plan.assumed == {80, 443}


def test_a_registered_portal_where_nothing_answers_is_an_error_never_not_applicable() -> None:
    address = "127.0.216.251"  # in the lab's range, where nothing listens
    target = Target(system=system(tags=("portal",)), host=Host(address=address), ip=address)
    (observation,) = WebCheck().probe(target, ProbeContext(timeout=5, settings=WebSettings()))
    assert (observation.status, observation.port) == ("error", None)
    assert "no web port answered" in (observation.error or "")


def test_a_stored_observation_comes_back_the_same(probed: _Probed) -> None:
    """`attt report RUN` judges what the store gives back: the web data must survive JSON."""
    for observation in probed["gitleak"].values():
        stored = observation.model_dump_json()
        back = Observation.model_validate_json(stored, context={DATA_MODELS: {"web": WebData}})
        assert back == observation


def test_a_site_letting_any_origin_read_it_with_cookies_is_graded_down(probed: _Probed) -> None:
    data = WebData.model_validate(probed["cookies"][443].data)
    assert data.cors is not None and data.cors.allow_origin == CORS_ORIGIN
    rating = grade(data)
    assert rating.results["cross-origin-resource-sharing"].endswith("universal-access")
    assert rating.not_evaluated == ()
