"""The Observatory-style grade: the published scoring, kept as data, checked against the MDN
"Tests & Scoring" page (read 2026-12), and each test's classification on header sets."""

import pytest

from attt.checks.web.controls import HeadersParams
from attt.checks.web.controls import headers as security_headers
from attt.checks.web.models import Cors, Header, Page, Script
from attt.checks.web.observatory import classify, grade, scoring
from attt.checks.web.probe import CORS_ORIGIN as ORIGIN
from tests.checks.web.builders import NAME, cookie, web_data
from tests.factories import target

# Every row of the page's tables, transcribed: result -> modifier.
DOCUMENTED = {
    "csp-implemented-with-no-unsafe-default-src-none": 10,
    "csp-implemented-with-no-unsafe": 5,
    "csp-implemented-with-unsafe-inline-in-style-src-only": 0,
    "csp-implemented-with-insecure-scheme-in-passive-content-only": -10,
    "csp-implemented-with-unsafe-eval": -10,
    "csp-implemented-with-unsafe-inline": -20,
    "csp-implemented-with-insecure-scheme": -20,
    "csp-header-invalid": -25,
    "csp-not-implemented": -25,
    "cookies-secure-with-httponly-sessions-and-samesite": 5,
    "cookies-secure-with-httponly-sessions": 0,
    "cookies-not-found": 0,
    "cookies-without-secure-flag-but-protected-by-hsts": -5,
    "cookies-session-without-secure-flag-but-protected-by-hsts": -10,
    "cookies-without-secure-flag": -20,
    "cookies-samesite-flag-invalid": -20,
    "cookies-anticsrf-without-samesite-flag": -20,
    "cookies-session-without-httponly-flag": -30,
    "cookies-session-without-secure-flag": -40,
    "cross-origin-resource-sharing-not-implemented": 0,
    "cross-origin-resource-sharing-implemented-with-public-access": 0,
    "cross-origin-resource-sharing-implemented-with-restricted-access": 0,
    "cross-origin-resource-sharing-implemented-with-universal-access": -50,
    "redirection-all-redirects-preloaded": 0,
    "redirection-to-https": 0,
    "redirection-not-needed-no-http": 0,
    "redirection-off-host-from-http": -5,
    "redirection-not-to-https-on-initial-redirection": -10,
    "redirection-not-to-https": -20,
    "redirection-missing": -20,
    "redirection-invalid-cert": -20,
    "referrer-policy-private": 5,
    "referrer-policy-not-implemented": 0,
    "referrer-policy-unsafe": -5,
    "referrer-policy-header-invalid": -5,
    "hsts-preloaded": 5,
    "hsts-implemented-max-age-at-least-six-months": 0,
    "hsts-implemented-max-age-less-than-six-months": -10,
    "hsts-not-implemented": -20,
    "hsts-header-invalid": -20,
    "hsts-not-implemented-no-https": -20,
    "hsts-invalid-cert": -20,
    "sri-implemented-and-all-scripts-loaded-securely": 5,
    "sri-implemented-and-external-scripts-loaded-securely": 5,
    "sri-not-implemented-response-not-html": 0,
    "sri-not-implemented-but-no-scripts-loaded": 0,
    "sri-not-implemented-but-all-scripts-loaded-from-secure-origin": 0,
    "sri-not-implemented-but-external-scripts-loaded-securely": -5,
    "sri-implemented-but-external-scripts-not-loaded-securely": -20,
    "sri-not-implemented-and-external-scripts-not-loaded-securely": -50,
    "x-content-type-options-nosniff": 0,
    "x-content-type-options-not-implemented": -5,
    "x-content-type-options-header-invalid": -5,
    "x-frame-options-implemented-via-csp": 5,
    "x-frame-options-sameorigin-or-deny": 0,
    "x-frame-options-allow-from-origin": 0,
    "x-frame-options-not-implemented": -20,
    "x-frame-options-header-invalid": -20,
    "corp-not-implemented": 0,
    "corp-implemented-with-same-origin": 10,
    "corp-implemented-with-same-site": 10,
    "corp-implemented-with-cross-origin": 0,
    "corp-header-invalid": -5,
}
NEWER_THAN_THE_PAGE = {
    "csp-not-implemented-but-reporting-enabled",
    "csp-implemented-but-duplicate-directives",
}
"""Results the Observatory's source (src/grader/charts.js) has and the page does not list yet."""

GRADING_CHART = [
    ((100, 145), "A+"), ((90, 99), "A"), ((85, 89), "A-"), ((80, 84), "B+"), ((70, 79), "B"),
    ((65, 69), "B-"), ((60, 64), "C+"), ((50, 59), "C"), ((45, 49), "C-"), ((40, 44), "D+"),
    ((30, 39), "D"), ((25, 29), "D-"), ((0, 24), "F"),
]  # fmt: skip


def _flat() -> dict[str, int]:
    return {result: points for table in scoring().modifiers.values() for result, points in table.items()}


def test_every_documented_modifier_is_in_the_data() -> None:
    assert {r: _flat().get(r) for r in DOCUMENTED} == DOCUMENTED


def test_the_data_adds_only_results_newer_than_the_page() -> None:
    assert set(_flat()) - set(DOCUMENTED) == NEWER_THAN_THE_PAGE


def test_the_data_names_its_version() -> None:
    assert scoring().algorithm_version == 4
    assert "tests_and_scoring" in scoring().source


@pytest.mark.parametrize(("bounds", "letter"), GRADING_CHART)
def test_the_grading_chart(bounds: tuple[int, int], letter: str) -> None:
    low, high = bounds
    assert scoring().letter(low) == scoring().letter(high) == letter


def test_the_highest_possible_score_is_145() -> None:
    best = {test: max(table, key=table.__getitem__) for test, table in scoring().modifiers.items()}
    assert scoring().score(best) == 145


def test_the_minimum_score_is_0() -> None:
    worst = {test: min(table, key=table.__getitem__) for test, table in scoring().modifiers.items()}
    assert scoring().score(worst) == 0


def test_bonuses_count_only_when_the_penalised_score_is_still_an_a() -> None:
    # Round one: 100 - 25 = 75; round two would add 5, but 75 is not an A.
    assert (
        scoring().score(
            {"content-security-policy": "csp-not-implemented", "referrer-policy": "referrer-policy-private"}
        )
        == 75
    )
    # 100 - 5 = 95 is an A: the bonus of 10 applies.
    assert (
        scoring().score(
            {
                "x-content-type-options": "x-content-type-options-not-implemented",
                "cross-origin-resource-policy": "corp-implemented-with-same-site",
            }
        )
        == 105
    )


GOOD = {
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "strict-origin-when-cross-origin",
    "Strict-Transport-Security": "max-age=63072000; includeSubDomains",
}


def test_a_well_configured_site_gets_a_plus() -> None:
    data = web_data(headers=GOOD, cookies=(cookie("SESSIONID", "secure", "httponly", same_site="Lax"),))
    rating = grade(data)
    assert rating.results["content-security-policy"] == "csp-implemented-with-no-unsafe"
    assert rating.results["x-frame-options"] == "x-frame-options-implemented-via-csp"
    assert rating.results["cookies"] == "cookies-secure-with-httponly-sessions-and-samesite"
    assert (rating.score, rating.grade) == (120, "A+")
    assert rating.not_evaluated == ("cross-origin-resource-sharing",)
    answered = grade(
        web_data(headers=GOOD, cors=Cors(origin=ORIGIN, allow_origin=None, allow_credentials=None))
    )
    assert (answered.score, answered.not_evaluated) == (115, ())


def test_a_site_without_any_security_header_gets_d() -> None:
    rating = grade(web_data(headers={}))
    # CSP -25, X-Content-Type-Options -5, X-Frame-Options -20, HSTS -20.
    assert (rating.score, rating.grade) == (30, "D")


@pytest.mark.parametrize(
    ("policy", "result"),
    [
        ("default-src 'none'", "csp-implemented-with-no-unsafe-default-src-none"),
        ("default-src 'self'", "csp-implemented-with-no-unsafe"),
        ("default-src 'self'; script-src 'self' 'unsafe-inline'", "csp-implemented-with-unsafe-inline"),
        ("default-src 'self'; script-src 'nonce-r4nd' 'unsafe-inline'", "csp-implemented-with-no-unsafe"),
        ("default-src 'self'; script-src 'strict-dynamic'", "csp-header-invalid"),
        ("default-src 'self'; script-src 'self' 'unsafe-eval'", "csp-implemented-with-unsafe-eval"),
        ("default-src 'self'; img-src http:", "csp-implemented-with-insecure-scheme-in-passive-content-only"),
        ("default-src 'self'; connect-src http://api.example", "csp-implemented-with-insecure-scheme"),
        (
            "default-src 'self'; style-src 'unsafe-inline'",
            "csp-implemented-with-unsafe-inline-in-style-src-only",
        ),
        ("default-src 'self'; default-src 'none'", "csp-header-invalid"),
        ("default-src 'self'; report-uri /a; report-uri /b", "csp-implemented-but-duplicate-directives"),
        ("script-src 'self'", "csp-implemented-with-unsafe-inline"),  # object-src left open
    ],
)
def test_content_security_policy(policy: str, result: str) -> None:
    assert (
        classify(web_data(headers={"Content-Security-Policy": policy}))["content-security-policy"] == result
    )


def test_a_report_only_policy_is_not_a_policy() -> None:
    data = web_data(headers={"Content-Security-Policy-Report-Only": "default-src 'self'"})
    assert classify(data)["content-security-policy"] == "csp-not-implemented-but-reporting-enabled"


def test_a_meta_policy_counts_but_not_its_frame_ancestors() -> None:
    page = Page(
        html=True,
        meta=(Header(name="content-security-policy", value="default-src 'self'; frame-ancestors 'none'"),),
    )
    results = classify(web_data(page=page))
    assert results["content-security-policy"] == "csp-implemented-with-no-unsafe"
    assert results["x-frame-options"] == "x-frame-options-not-implemented"


@pytest.mark.parametrize(
    ("value", "verified", "result"),
    [
        ("max-age=15552000", True, "hsts-implemented-max-age-at-least-six-months"),
        ("max-age=300", True, "hsts-implemented-max-age-less-than-six-months"),
        ("max-age=31536000, max-age=1", True, "hsts-header-invalid"),
        ("includeSubDomains", True, "hsts-header-invalid"),
        ("max-age=63072000", False, "hsts-invalid-cert"),
    ],
)
def test_strict_transport_security(value: str, verified: bool, result: str) -> None:
    data = web_data(headers={"Strict-Transport-Security": value}, certificate_verified=verified)
    assert classify(data)["strict-transport-security"] == result


@pytest.mark.parametrize(
    ("chain", "result"),
    [
        (None, "redirection-not-needed-no-http"),
        ((f"http://{NAME}/",), "redirection-missing"),
        ((f"http://{NAME}/", f"https://{NAME}/"), "redirection-to-https"),
        (
            (f"http://{NAME}/", f"http://{NAME}/a", f"https://{NAME}/"),
            "redirection-not-to-https-on-initial-redirection",
        ),
        ((f"http://{NAME}/", "https://sso.example.test/"), "redirection-off-host-from-http"),
        ((f"http://{NAME}/", f"http://{NAME}/home"), "redirection-not-to-https"),
    ],
)
def test_redirection(chain: tuple[str, ...] | None, result: str) -> None:
    assert classify(web_data(chain=chain))["redirection"] == result


@pytest.mark.parametrize(
    ("cookies", "hsts", "result"),
    [
        ((), False, "cookies-not-found"),
        ((cookie("lang", "secure"),), False, "cookies-secure-with-httponly-sessions"),
        ((cookie("lang"),), True, "cookies-without-secure-flag-but-protected-by-hsts"),
        ((cookie("lang"),), False, "cookies-without-secure-flag"),
        (
            (cookie("PHPSESSID", "httponly"),),
            True,
            "cookies-session-without-secure-flag-but-protected-by-hsts",
        ),
        ((cookie("PHPSESSID", "secure"),), False, "cookies-session-without-httponly-flag"),
        ((cookie("PHPSESSID"),), False, "cookies-session-without-secure-flag"),
        # Framework names the Observatory's words miss: no kinder a grade than the rule's verdict.
        (
            (cookie("wordpress_logged_in_8d1a4c6e2b9f0d3a7c5e1b2f4a6d8c0e", "secure"),),
            False,
            "cookies-session-without-httponly-flag",
        ),
        (
            (cookie(".AspNetCore.Antiforgery.9fXoN5jHCXs", "httponly"),),
            False,
            "cookies-session-without-secure-flag",
        ),
        ((cookie("csrftoken", "secure"),), False, "cookies-anticsrf-without-samesite-flag"),
        ((cookie("lang", "secure", same_site="Sometimes"),), False, "cookies-samesite-flag-invalid"),
        ((cookie("lang", same_site="None"), cookie("x", "secure")), True, "cookies-samesite-flag-invalid"),
    ],
)
def test_cookies(cookies: tuple[object, ...], hsts: bool, result: str) -> None:
    headers = {"Strict-Transport-Security": "max-age=31536000"} if hsts else {}
    assert classify(web_data(headers=headers, cookies=cookies))["cookies"] == result


@pytest.mark.parametrize(
    ("scripts", "result"),
    [
        ((), "sri-not-implemented-but-no-scripts-loaded"),
        (
            (Script(src="/app.js", integrity=False),),
            "sri-not-implemented-but-all-scripts-loaded-from-secure-origin",
        ),
        (
            (Script(src="https://cdn.example/a.js", integrity=True),),
            "sri-implemented-and-external-scripts-loaded-securely",
        ),
        (
            (Script(src="https://cdn.example/a.js", integrity=False),),
            "sri-not-implemented-but-external-scripts-loaded-securely",
        ),
        (
            (Script(src="//cdn.example/a.js", integrity=False),),
            "sri-not-implemented-and-external-scripts-not-loaded-securely",
        ),
    ],
)
def test_subresource_integrity(scripts: tuple[Script, ...], result: str) -> None:
    assert classify(web_data(page=Page(html=True, scripts=scripts)))["subresource-integrity"] == result


@pytest.mark.parametrize(
    ("headers", "test", "result"),
    [
        ({"Referrer-Policy": "no-referrer, unsafe-url"}, "referrer-policy", "referrer-policy-unsafe"),
        ({"Referrer-Policy": "unsafe-url, strict-origin"}, "referrer-policy", "referrer-policy-private"),
        ({"Referrer-Policy": "nonsense"}, "referrer-policy", "referrer-policy-header-invalid"),
        ({"X-Content-Type-Options": "nosniff "}, "x-content-type-options", "x-content-type-options-nosniff"),
        (
            {"X-Content-Type-Options": "sniff"},
            "x-content-type-options",
            "x-content-type-options-header-invalid",
        ),
        ({"X-Frame-Options": "SAMEORIGIN"}, "x-frame-options", "x-frame-options-sameorigin-or-deny"),
        # No browser reads ALLOW-FROM any more: the page is open to every site, as the rule says.
        ({"X-Frame-Options": "ALLOW-FROM https://a"}, "x-frame-options", "x-frame-options-header-invalid"),
        ({"X-Frame-Options": "GOAWAY"}, "x-frame-options", "x-frame-options-header-invalid"),
        (
            {"Cross-Origin-Resource-Policy": "same-site"},
            "cross-origin-resource-policy",
            "corp-implemented-with-same-site",
        ),
        ({"Cross-Origin-Resource-Policy": "nope"}, "cross-origin-resource-policy", "corp-header-invalid"),
    ],
)
def test_the_single_header_tests(headers: dict[str, str], test: str, result: str) -> None:
    assert classify(web_data(headers=headers))[test] == result


@pytest.mark.parametrize(
    ("allow_origin", "credentials", "result"),
    [
        (None, None, "cross-origin-resource-sharing-not-implemented"),
        ("*", None, "cross-origin-resource-sharing-implemented-with-public-access"),
        (
            "https://portal.attt.test",
            "true",
            "cross-origin-resource-sharing-implemented-with-restricted-access",
        ),
        (ORIGIN, None, "cross-origin-resource-sharing-implemented-with-restricted-access"),
        (ORIGIN, "true", "cross-origin-resource-sharing-implemented-with-universal-access"),
    ],
)
def test_cross_origin_resource_sharing(
    allow_origin: str | None, credentials: str | None, result: str
) -> None:
    cors = Cors(origin=ORIGIN, allow_origin=allow_origin, allow_credentials=credentials)
    assert classify(web_data(cors=cors))["cross-origin-resource-sharing"] == result


# Header lines as sent (a name may come several times), the grade's result for the test, and
# whether the web.headers rule finds the header sound.
REPEATED_HEADERS = [
    ([("X-Content-Type-Options", "nosniff"), ("X-Content-Type-Options", "bogus")], True),
    ([("X-Content-Type-Options", "bogus"), ("X-Content-Type-Options", "nosniff")], False),
    ([("X-Content-Type-Options", "nosniff, nosniff")], True),
    ([("X-Content-Type-Options", ""), ("X-Content-Type-Options", "nosniff")], False),
    ([("X-Frame-Options", "DENY"), ("X-Frame-Options", "DENY")], True),
    ([("X-Frame-Options", "SAMEORIGIN, SAMEORIGIN")], True),
    # Different values that include a known one: a browser refuses every frame.
    ([("X-Frame-Options", "ALLOWALL"), ("X-Frame-Options", "DENY")], True),
    ([("X-Frame-Options", "GOAWAY"), ("X-Frame-Options", "SAMEORIGIN")], True),
    ([("X-Frame-Options", "GOAWAY"), ("X-Frame-Options", "NOPE")], False),
    ([("X-Frame-Options", "ALLOWALL")], False),
    ([("X-Frame-Options", "ALLOW-FROM https://a")], False),
    # frame-ancestors overrides X-Frame-Options in a browser, whatever it allows.
    (
        [("X-Frame-Options", "DENY"), ("Content-Security-Policy", "default-src 'self'; frame-ancestors *")],
        False,
    ),
    ([("Content-Security-Policy", "default-src 'self'; frame-ancestors 'self'")], True),
]
_PASSING = {
    "x-content-type-options-nosniff",
    "x-frame-options-sameorigin-or-deny",
    "x-frame-options-allow-from-origin",
    "x-frame-options-implemented-via-csp",
}


@pytest.mark.parametrize(("lines", "sound"), REPEATED_HEADERS)
def test_the_grade_reads_repeated_frame_options_and_nosniff_as_the_rule_does(
    lines: list[tuple[str, str]], sound: bool
) -> None:
    # Given the same header lines, the grade passes a test exactly when the rule finds it sound:
    # a grade never better than the rule's own conclusion, nor worse for what a browser honours.
    data = web_data(headers=lines)
    found = security_headers(data, HeadersParams(), target(hostname=NAME)).observed["headers"]
    names = {name for name, _ in lines}
    test, rule = (
        ("x-content-type-options", "x-content-type-options")
        if "X-Content-Type-Options" in names
        else ("x-frame-options", "frame-protection")
    )
    assert (found[rule] is True, classify(data)[test] in _PASSING) == (sound, sound)
