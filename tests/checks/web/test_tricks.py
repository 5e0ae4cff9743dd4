"""The web check against servers that answer in ways a careless reading of HTTP gets wrong
(tests/servers/web_tricks.py): each must end in an observation and an earned verdict."""

import pytest

from attt.checks.web.models import resolve_location
from tests.checks.web.probing import Probed
from tests.servers.web_tricks import TrickyWeb


@pytest.fixture(scope="module")
def probed(tricky_web: TrickyWeb) -> Probed:
    return Probed(tricky_web)


@pytest.mark.parametrize("case", ["unparsable location", "port out of range"])
def test_a_location_no_parser_accepts_stops_the_chain_and_costs_nothing_else(
    probed: Probed, case: str
) -> None:
    data = probed.data(case)
    assert data.redirects == () and "not a valid URL" in (data.redirect_stop or "")
    assert probed.verdict(case, "web.headers").status == "pass"


@pytest.mark.parametrize(
    ("case", "port", "control", "status", "text"),
    [
        # A browser reads max-age as ASCII digits, once: otherwise the header is ignored.
        ("hsts in arabic digits", 443, "web.headers", "fail", "hsts"),
        ("hsts superscript", 443, "web.headers", "fail", "hsts"),
        ("hsts max-age twice", 443, "web.headers", "fail", "hsts"),
        # Two HSTS headers, the first sound: a browser processes the first only (RFC 6797
        # 8.1), so the max-age=0 after it changes nothing.
        ("hsts sent twice", 443, "web.headers", "pass", "all required"),
        # HSTS sent over plain HTTP is ignored, and the HTTPS site sends its visitors there.
        ("downgrade", 443, "web.headers", "fail", "hsts"),
        # A browser never renders the body of a redirect: its meta tags set no policy.
        ("meta csp on a redirect", 443, "web.headers", "fail", "content-security-policy"),
        ("empty csp", 443, "web.headers", "fail", "content-security-policy"),
        ("frame-ancestors overrides xfo", 443, "web.headers", "fail", "frame-protection"),
        ("late cookie and version", 443, "web.cookies", "fail", "sessionid: no Secure"),
        ("late cookie and version", 443, "web.version_disclosure", "fail", "Apache/2.4.1"),
        ("version on other paths", 443, "web.version_disclosure", "fail", "PHP/7.4.3"),
        ("version on other paths", 443, "web.cookies", "fail", "PHPSESSID: no Secure"),
        ("gzip env", 443, "web.exposed_files", "fail", "/.env"),
        ("gzip-encoded backup", 443, "web.exposed_files", "fail", "/backup.tar.gz"),
        ("everything gzip-encoded", 443, "web.exposed_files", "pass", "none of"),
        # A cookie sent only to delete it (expired, Max-Age=0) holds nothing to protect.
        ("cookies being deleted", 443, "web.cookies", "not_applicable", "no session cookie"),
        ("backslash location", 80, "web.https_redirect", "fail", "evil.example"),
        ("300 without location", 80, "web.exposed_files", "fail", "/.git/HEAD"),
        ("300 with location", 80, "web.https_redirect", "fail", "without redirecting"),
        # The root sends the visitor to a port that is no endpoint of its own: its cookie and
        # version are the site's, not nobody's.
        ("redirect to an unlisted port", 443, "web.cookies", "fail", "sessionid"),
        ("redirect to an unlisted port", 443, "web.version_disclosure", "fail", "Apache/2.4.1"),
    ],
)
def test_what_a_browser_does_is_what_is_judged(
    probed: Probed, case: str, port: int, control: str, status: str, text: str
) -> None:
    verdict = probed.verdict(case, control, port)
    assert (verdict.status, text in verdict.message) == (status, True), verdict.message


def test_a_file_in_a_coding_attt_cannot_undo_is_unknown_never_absent(probed: Probed) -> None:
    verdict = probed.verdict("brotli env", "web.exposed_files")
    assert (verdict.status, "env-file" in verdict.message) == ("error", True), verdict.message
    data = probed.data("brotli env")
    # The 404s carry the same coding: they prove nothing either way and are not errors.
    assert [p.id for p in data.paths if p.error] == ["env-file"]


@pytest.mark.parametrize(
    ("location", "url"),
    [
        ("HTTPS://portal.attt.test:8443/a", "https://portal.attt.test:8443/a"),
        ("/\\evil.attt.test/", "http://evil.attt.test/"),
        ("https://evil.attt.test\\@portal.attt.test/?q=\\", "https://evil.attt.test/@portal.attt.test/?q=\\"),
        ("https://[/home", None),
        ("https://portal.attt.test:99999/", None),
    ],
)
def test_a_location_leads_where_a_browser_goes(location: str, url: str | None) -> None:
    assert resolve_location("http://portal.attt.test/", location) == url
