"""The web check against servers whose answers a browser reads by a rule easy to miss
(tests/servers/web_truth.py): each verdict is the one a browser's reading earns."""

import pytest

from tests.checks.web.probing import Probed
from tests.servers.web_tricks import TrickyWeb
from tests.servers.web_truth import CLOSED_PORT


@pytest.fixture(scope="module")
def probed(truth_web: TrickyWeb) -> Probed:
    return Probed(truth_web)


def test_of_two_hsts_headers_the_first_is_judged(probed: Probed) -> None:
    # max-age=0 then a sound max-age: a browser processes the first only (RFC 6797 8.1).
    verdict = probed.verdict("hsts weak first", "web.headers")
    assert (verdict.status, "hsts" in verdict.message) == ("fail", True), verdict.message


def test_a_redirect_to_an_https_port_that_refuses_is_no_pass(probed: Probed) -> None:
    verdict = probed.verdict("redirect to a closed port", "web.https_redirect", port=80)
    assert (verdict.status, "refused" in verdict.message) == ("fail", True), verdict.message
    assert f":{CLOSED_PORT}/" in verdict.message


def test_a_redirect_with_two_different_locations_is_followed_nowhere(probed: Probed) -> None:
    # Fetch makes it a network error, and Chromium and Firefox refuse it: neither /a nor /b is
    # where a visitor lands.
    data = probed.data("two locations")
    assert data.redirects == () and "two different Location" in (data.redirect_stop or "")


def test_one_location_sent_twice_is_followed(probed: Probed) -> None:
    # Chromium and Firefox follow copies of the same value.
    assert [a.url for a in probed.data("one location sent twice").redirects][-1].endswith("/a")


def test_a_plain_http_redirect_with_two_different_locations_leads_to_no_https(probed: Probed) -> None:
    verdict = probed.verdict("two locations over http", "web.https_redirect", port=80)
    assert (verdict.status, "two different Location" in verdict.message) == ("fail", True), verdict.message


@pytest.mark.parametrize(
    ("case", "status"),
    [
        # The header takes the policy tokens only: a legacy keyword there sets nothing.
        ("referrer header never", "fail"),
        # In <meta name="referrer"> HTML maps the legacy keywords, in any case of letters.
        ("referrer meta never", "pass"),
        ("referrer meta default", "pass"),  # the default policy, strict-origin-when-cross-origin
        ("referrer meta always", "fail"),  # unsafe-url
        ("referrer meta crossorigin", "fail"),  # origin-when-cross-origin
        # The meta tag, read after the header, sets the document's policy last.
        ("referrer meta overrides header", "fail"),
        # No browser reads a Referrer-Policy http-equiv: the page sets no policy.
        ("referrer http-equiv", "fail"),
    ],
)
def test_the_referrer_policy_is_the_one_a_browser_applies(probed: Probed, case: str, status: str) -> None:
    verdict = probed.verdict(case, "web.headers")
    failed = "referrer-policy" in verdict.message
    assert (verdict.status, failed) == (status, status == "fail"), verdict.message
