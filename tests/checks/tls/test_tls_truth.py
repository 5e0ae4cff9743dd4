"""Verdicts that rested on a fact read wrong, each against real servers on 127.0.231.0/24
(tests/servers/tls_truth.py, and tests/servers/flaky_tls.py's servers that leave a handshake
unanswered): a self-signed certificate the operator trusts, a wildcard over a public suffix,
a handshake `--tls-exhaustive` got no answer to once, and an HTTP answer over 4 KB."""

from typing import Any

import pytest

from attt.checks.tls import _sslyze
from attt.checks.tls.controls import CONTROLS, HstsParams
from attt.checks.tls.models import TlsData
from attt.scanner.plugin import NoParams, Verdict
from tests import factories
from tests.robustness.conftest import scan_tls_hosts
from tests.servers.flaky_tls import PORT, FlakyTls, flaky_tls_servers
from tests.servers.tls import TlsServer
from tests.servers.tls_truth import BIG_HEADERS, HSTS_CASES, NET, PINNED, STRANGER, WILDCARD, truth_lab


@pytest.fixture(scope="module")
def scanned(tmp_path_factory: pytest.TempPathFactory) -> dict[TlsServer, TlsData]:
    """One scan of every server of the lab, given the test CA and the pinned certificate as
    anchors; the observations as stored."""
    with truth_lab(tmp_path_factory.mktemp("truth")) as lab:
        answering = [server for server, _ in (*BIG_HEADERS.values(), *HSTS_CASES.values())]
        endpoints = {
            s: _sslyze.Endpoint(ip=s.ip, port=s.port, sni=s.hostname, http=s in answering)
            for s in [PINNED, STRANGER, WILDCARD, *answering]
        }
        options = _sslyze.ScanOptions(
            connect_timeout=2, deadline=90, silence=10, trust_anchors=(lab.pinned, lab.ca_file)
        )
        outcomes = _sslyze.scan(list(endpoints.values()), options)
    found = {}
    for server, endpoint in endpoints.items():
        outcome = outcomes[endpoint]
        assert isinstance(outcome, TlsData), (server, outcome)
        found[server] = TlsData.model_validate(outcome.model_dump(mode="json"))
    return found


def _judge(data: TlsData, control: str, server: TlsServer, params: Any = None) -> Verdict:
    target = factories.target(address=server.ip, hostname=server.hostname)
    return CONTROLS[control].judge(data, params or NoParams(), target)


def test_a_self_signed_certificate_configured_as_an_anchor_is_trusted(scanned):
    """The validator wants an anchor to be a CA above the leaf; an operator who configured the
    server's own self-signed certificate trusts exactly that certificate."""
    cert = scanned[PINNED].certificate
    assert cert is not None and cert.self_signed and cert.trusted, cert
    assert _judge(scanned[PINNED], "tls.certificate_trusted", PINNED).status == "pass"
    assert cert.chain_missing is None


def test_a_self_signed_certificate_nobody_configured_is_not_trusted(scanned):
    verdict = _judge(scanned[STRANGER], "tls.certificate_trusted", STRANGER)
    assert verdict.status == "fail", verdict.message
    assert "self-signed" in verdict.message


def test_a_wildcard_over_a_public_suffix_matches_no_name(scanned):
    """`*.gov.vn` has the shape of hatinh.gov.vn, but gov.vn is a registry's: no CA may issue
    that wildcard and no browser accepts it."""
    cert = scanned[WILDCARD].certificate
    assert cert is not None and cert.trusted and cert.sans == ("*.gov.vn",)
    verdict = _judge(scanned[WILDCARD], "tls.hostname_matches", WILDCARD)
    assert verdict.status == "fail", verdict.message
    assert "*.gov.vn" in verdict.message and "public suffix" in verdict.message
    assert "hậu tố công cộng" in (verdict.vi or "")


@pytest.mark.parametrize("case", list(BIG_HEADERS))
def test_an_http_answer_over_4_kb_is_read(scanned, case):
    """A 6 KB header put the answer's head past sslyze's first 4 KB read of one TLS record: the
    rest was never read, and the HSTS rule was `error` on a healthy server."""
    server, _ = BIG_HEADERS[case]
    data = scanned[server]
    assert "http_headers" not in data.incomplete, data.step_errors
    assert data.hsts is not None and data.hsts.max_age == 63072000 and data.hsts.include_subdomains
    assert _judge(data, "tls.hsts", server, HstsParams(include_subdomains=True)).status == "pass"


def test_an_hsts_max_age_quoted_as_the_grammar_allows_is_read(scanned):
    server, _ = HSTS_CASES["quoted"]
    data = scanned[server]
    assert data.hsts is not None and data.hsts.max_age == 63072000, data.step_errors
    assert _judge(data, "tls.hsts", server, HstsParams(include_subdomains=True)).status == "pass"


@pytest.mark.parametrize(
    ("case", "age", "status"), [("twice, sound first", 63072000, "pass"), ("twice, weak first", 0, "fail")]
)
def test_of_two_hsts_headers_the_first_is_judged(scanned, case, age, status):
    server, _ = HSTS_CASES[case]
    data = scanned[server]
    assert data.hsts is not None and data.hsts.max_age == age, data.step_errors
    assert _judge(data, "tls.hsts", server, HstsParams()).status == status


def test_an_hsts_header_no_browser_reads_is_named_in_the_error(scanned):
    server, _ = HSTS_CASES["malformed"]
    data = scanned[server]
    assert "http_headers" in data.incomplete
    assert "malformed Strict-Transport-Security header" in data.step_errors["http_headers"]
    assert "two-years" in data.step_errors["http_headers"]


EXHAUSTIVE = {
    "stall-once": FlakyTls(f"{NET}.11", "stall", once=True),
    "drop-once": FlakyTls(f"{NET}.12", "drop", once=True),
    "stall-always": FlakyTls(f"{NET}.13", "stall", once=False),
}
TIMEOUT = 8.0


@pytest.fixture(scope="module")
def exhaustive(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One `--tls-exhaustive` scan of servers that leave the handshake offering their TLS 1.0
    suite alone unanswered: once, or every time."""
    workdir = tmp_path_factory.mktemp("exhaustive")
    with flaky_tls_servers(workdir, list(EXHAUSTIVE.values()), accept_limit=1000):
        report, _ = scan_tls_hosts(
            workdir, NET, [s.ip for s in EXHAUSTIVE.values()], PORT, TIMEOUT, "--tls-exhaustive"
        )
    return report


def _finding(report: dict[str, Any], name: str, rule: str) -> Any:
    [finding] = [f for f in report["findings"] if f["rule_id"] == rule and f["host"] == EXHAUSTIVE[name].ip]
    return finding


@pytest.mark.slow
@pytest.mark.parametrize("name", ["stall-once", "drop-once"])
def test_exhaustive_asks_an_unanswered_suite_again(exhaustive, name):
    [obs] = [o for o in exhaustive["observations"] if o["host"] == EXHAUSTIVE[name].ip]
    assert EXHAUSTIVE[name].misbehaved == 1
    assert obs["data"]["cipher_suites"].get("TLSv1.0") == ["TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA"]
    assert _finding(exhaustive, name, "TLS-MIN-TLS12")["status"] == "fail"


@pytest.mark.slow
def test_exhaustive_reads_a_suite_never_answered_as_the_fast_path_does(exhaustive):
    """Asked twice and never answered, the suite stands refused, as an elimination's offer does:
    servers refuse what they do not speak that way (every SSL 2.0 handshake here ends so)."""
    [obs] = [o for o in exhaustive["observations"] if o["host"] == EXHAUSTIVE["stall-always"].ip]
    assert EXHAUSTIVE["stall-always"].misbehaved == 2
    assert obs["data"]["protocols"] == ["TLSv1.1", "TLSv1.2"] and not obs["data"]["incomplete"]
