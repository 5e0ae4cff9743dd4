"""The web controls on observations built by hand: each verdict, and `error` wherever a needed
fact was not observed."""

import pytest
from click.testing import CliRunner

from attt.checks.web.controls import (
    CONTROLS,
    CookiesParams,
    ExposedParams,
    HeadersParams,
    cookies,
    discloses_version,
    exposed_files,
    https_redirect,
    https_required,
    version_disclosure,
)
from attt.checks.web.controls import headers as security_headers
from attt.checks.web.exposed import exposed_paths
from attt.checks.web.models import Disclosure, PathResult
from attt.scanner.cli import main
from attt.scanner.plugin import NoParams
from tests.checks.web.builders import NAME, answer, cookie, site, web_data
from tests.checks.web.test_observatory import GOOD
from tests.factories import target

TARGET = target(hostname=NAME)
NONE = NoParams()


def test_plain_http_that_redirects_to_https_on_the_same_name_passes() -> None:
    data = web_data("http", {"Location": f"https://{NAME}/"}, 301, redirects=(answer(),))
    verdict = https_redirect(data, NONE, TARGET)
    assert verdict.status == "pass" and verdict.vi


def test_a_redirect_to_https_never_reached_is_unjudged() -> None:
    # A timeout at the target taught nothing: the redirect is not known to lead anywhere.
    failed = {"redirects": f"https://{NAME}/: timed out"}
    data = web_data(
        "http", {"Location": f"https://{NAME}/"}, 301, step_errors=failed, incomplete=("redirects",)
    )
    verdict = https_redirect(data, NONE, TARGET)
    assert (verdict.status, "timed out" in verdict.message) == ("error", True), verdict.message


def test_plain_http_that_serves_the_page_fails() -> None:
    verdict = https_redirect(web_data("http", {}, 200), NONE, TARGET)
    assert verdict.status == "fail" and "200" in verdict.message


def test_a_redirect_to_https_on_another_name_fails() -> None:
    data = web_data(
        "http", {"Location": "https://sso.example.test/"}, 302, off_scope_location="https://sso.example.test/"
    )
    verdict = https_redirect(data, NONE, TARGET)
    assert verdict.status == "fail" and "another name" in verdict.message


def test_a_first_redirect_to_plain_http_fails() -> None:
    data = web_data("http", {"Location": "/home"}, 302, redirects=(answer(f"https://{NAME}/", 200),))
    assert https_redirect(data, NONE, TARGET).status == "fail"


def test_the_redirect_rule_does_not_apply_to_https() -> None:
    assert https_redirect(web_data(), NONE, TARGET).status == "not_applicable"


def test_https_answering_anywhere_on_the_host_passes() -> None:
    data = web_data("http", {}, 200, site=site(https_ok=(8443,)))
    assert https_required(data, NONE, TARGET).status == "pass"


def test_an_http_only_portal_fails() -> None:
    data = web_data("http", {}, 200, site=site(https_ok=(), https_refused=(443,)))
    verdict = https_required(data, NONE, TARGET)
    assert verdict.status == "fail" and "443 refused" in verdict.message and "443" in (verdict.vi or "")


def test_a_broken_tls_endpoint_is_not_https() -> None:
    data = web_data("http", {}, 200, site=site(https_ok=(), https_failed={443: "TLS handshake failed"}))
    assert https_required(data, NONE, TARGET).status == "fail"


def test_https_that_could_not_be_tried_is_an_error_never_a_verdict() -> None:
    data = web_data("http", {}, 200, site=site(https_ok=(), https_refused=(8443,), https_unknown=(443,)))
    assert https_required(data, NONE, TARGET).status == "error"


def test_good_headers_pass_and_show_the_observatory_grade() -> None:
    verdict = security_headers(web_data(headers=GOOD), HeadersParams(), TARGET)
    assert verdict.status == "pass"
    assert "Observatory-style grade A+" in verdict.message and "A+" in (verdict.vi or "")
    assert verdict.observed["observatory"]["grade"] == "A+"


def test_missing_headers_are_named() -> None:
    data = web_data(headers={"X-Frame-Options": "DENY", "Referrer-Policy": "unsafe-url"})
    verdict = security_headers(data, HeadersParams(), TARGET)
    assert verdict.status == "fail"
    for name in ("content-security-policy", "x-content-type-options", "referrer-policy", "hsts"):
        assert name in verdict.message
    assert "frame-protection" not in verdict.message


def test_frame_ancestors_is_frame_protection_and_weak_hsts_fails_only_when_required() -> None:
    headers = {
        "Content-Security-Policy": "default-src 'self'; frame-ancestors 'self'",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Strict-Transport-Security": "max-age=600",
    }
    basic = HeadersParams(
        require=("content-security-policy", "x-content-type-options", "frame-protection", "referrer-policy")
    )
    assert security_headers(web_data(headers=headers), basic, TARGET).status == "pass"
    assert security_headers(web_data(headers=headers), HeadersParams(), TARGET).status == "fail"


def test_what_a_control_reads_from_unfinished_steps_is_declared() -> None:
    """The evaluator turns these into `error` when the step did not complete (the property test
    in tests/scanner/test_needs_property.py proves it on every bundled rule)."""
    needs = {cid: set(c.steps_needed(c.params_model(), TARGET)) for cid, c in CONTROLS.items()}
    assert needs == {
        "web.https_redirect": set(),
        "web.https_required": set(),
        "web.headers": {"redirects", "cors"},
        "web.cookies": {"redirects"},
        "web.version_disclosure": {"redirects"},
        "web.exposed_files": set(),
    }


def test_headers_are_judged_on_https_only() -> None:
    assert security_headers(web_data("http", {}, 200), HeadersParams(), TARGET).status == "not_applicable"


def test_session_cookies_need_secure_httponly_and_samesite() -> None:
    data = web_data(cookies=(cookie("PHPSESSID"), cookie("lang")))
    verdict = cookies(data, CookiesParams(), TARGET)
    assert verdict.status == "fail"
    assert (
        "PHPSESSID: no Secure, no HttpOnly, no SameSite" in verdict.message and "lang" not in verdict.message
    )
    assert cookies(data, CookiesParams(all_cookies=True), TARGET).message.count("no Secure") == 2


def test_a_session_cookie_over_plain_http_fails_whatever_its_flags() -> None:
    data = web_data(
        "http", cookies=(cookie("sid", "secure", "httponly", same_site="Strict", url=f"http://{NAME}/"),)
    )
    assert "set over plain HTTP" in cookies(data, CookiesParams(), TARGET).message


def test_protected_session_cookies_pass() -> None:
    data = web_data(cookies=(cookie("SESSIONID", "secure", "httponly", same_site="Lax"),))
    assert cookies(data, CookiesParams(), TARGET).status == "pass"


def test_no_session_cookie_is_not_applicable() -> None:
    assert cookies(web_data(cookies=(cookie("lang"),)), CookiesParams(), TARGET).status == "not_applicable"


# Session cookie names by family, as the frameworks send them.
SESSION_COOKIES = {
    "ASP.NET Core antiforgery": (
        ".AspNetCore.Antiforgery.9fXoN5jHCXs",
        ".AspNetCore.Antiforgery.w5W7x28NAIs",
    ),
    "ASP.NET Core session": (".AspNetCore.Session",),
    "ASP.NET Core authentication": (".AspNetCore.Cookies", ".AspNetCore.Identity.Application"),
    "ASP.NET OWIN": (".AspNet.ApplicationCookie",),
    "ASP.NET": ("ASP.NET_SessionId", ".ASPXAUTH"),
    "WordPress": (
        "wordpress_logged_in_8d1a4c6e2b9f0d3a7c5e1b2f4a6d8c0e",
        "wordpress_sec_8d1a4c6e2b9f0d3a7c5e1b2f4a6d8c0e",
        "wordpress_8d1a4c6e2b9f0d3a7c5e1b2f4a6d8c0e",
    ),
    "Laravel": ("laravel_session",),
    "CodeIgniter": ("ci_session",),
    "Express": ("connect.sid",),
    "Java servlets": ("JSESSIONID",),
    "PHP": ("PHPSESSID",),
}
NOT_SESSION_COOKIES = ("lang", "_ga", "wordpress_test_cookie", "wp-settings-1", ".AspNetCore.Culture")


@pytest.mark.parametrize("family", list(SESSION_COOKIES))
def test_each_family_of_session_cookie_is_judged_on_its_flags(family: str) -> None:
    names = SESSION_COOKIES[family]
    bare = cookies(web_data(cookies=tuple(cookie(n) for n in names)), CookiesParams(), TARGET)
    assert bare.status == "fail"
    assert all(f"{n}: no Secure, no HttpOnly, no SameSite" in bare.message for n in names), bare.message
    protected = tuple(cookie(n, "secure", "httponly", same_site="Lax") for n in names)
    assert cookies(web_data(cookies=protected), CookiesParams(), TARGET).status == "pass"


@pytest.mark.parametrize("name", NOT_SESSION_COOKIES)
def test_a_cookie_named_like_no_session_is_not_judged(name: str) -> None:
    verdict = cookies(web_data(cookies=(cookie(name),)), CookiesParams(), TARGET)
    assert verdict.status == "not_applicable", verdict.message


def _disclosing(*pairs: tuple[str, str]) -> object:
    return web_data(disclosures=tuple(Disclosure(source=s, value=v) for s, v in pairs))


def test_versions_in_headers_or_generator_tags_fail() -> None:
    for source, value in [
        ("header:server", "nginx/1.22.1"),
        ("header:server", "Microsoft-IIS/10.0"),
        ("header:x-aspnet-version", "4.0.30319"),
        ("meta:generator", "WordPress 6.4.2"),
    ]:
        verdict = version_disclosure(_disclosing((source, value)), NONE, TARGET)  # type: ignore[arg-type]
        assert verdict.status == "fail" and value in verdict.message, value


def test_product_names_without_versions_pass() -> None:
    data = _disclosing(
        ("header:server", "nginx"), ("header:x-powered-by", "ASP.NET"), ("meta:generator", "Joomla!")
    )
    assert version_disclosure(data, NONE, TARGET).status == "pass"  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "disclosed"),
    [
        ("Apache/2.4.57 (Ubuntu)", True),
        ("Apache/2.4.57 (Debian)", True),
        ("PHP/8.1.2", True),
        ("nginx/1.18.0", True),
        ("nginx/1.25.3", True),
        ("Microsoft-IIS/10.0", True),
        ("Apache/2.4.41 (Win64) OpenSSL/1.1.1c PHP/7.3.10", True),
        ("Apache/2", True),
        ("4.0.30319", True),  # X-AspNet-Version: the value is the version
        ("Drupal 10 (https://www.drupal.org)", True),
        ("WordPress 6.4.2", True),
        # A release number in a comment: the distribution pins the packaged version.
        ("Apache (Ubuntu/22.04)", True),
        ("Jetty(9.4.44.v20210927)", True),
        # A CDN's node id in a comment is no version; nor are names alone.
        ("ECS (dcb/7F84)", False),
        ("ECAcc (lac/55B6)", False),
        ("cloudflare", False),
        ("nginx", False),
        ("AmazonS3", False),
        ("Apache (Debian GNU/Linux)", False),
        ("Kestrel", False),
        ("ASP.NET", False),
        # Nested and escaped parentheses stay inside the comment.
        ("ECS (dcb (x) b/7F84)", False),
        (r"ECS (a\) b/7)", False),
        ("Apache (unclosed/7F84", False),
    ],
)
def test_a_version_is_a_product_version_or_a_release_number(value: str, disclosed: bool) -> None:
    assert discloses_version(value) is disclosed
    for header in ("header:server", "header:x-powered-by"):
        verdict = version_disclosure(_disclosing((header, value)), NONE, TARGET)  # type: ignore[arg-type]
        assert verdict.status == ("fail" if disclosed else "pass"), verdict.message


def test_a_served_file_fails_with_what_it_is() -> None:
    served = PathResult(
        id="git-head", path="/.git/HEAD", status=200, served=True, evidence="ref: refs/heads/main"
    )
    verdict = exposed_files(web_data(paths=(served,)), ExposedParams(), TARGET)
    assert verdict.status == "fail" and "/.git/HEAD" in verdict.message and "Git" in verdict.message
    assert "kho mã Git" in (verdict.vi or "")
    assert (
        exposed_files(web_data(paths=(served,)), ExposedParams(ignore=("git-head",)), TARGET).status == "pass"
    )


def test_paths_not_checked_are_an_error() -> None:
    checked = PathResult(id="git-head", path="/.git/HEAD", status=404)
    data = web_data(paths=(checked,), paths_skipped=("env-file", "phpinfo"))
    verdict = exposed_files(data, ExposedParams(), TARGET)
    assert verdict.status == "error" and "env-file" in verdict.message


def test_a_catch_all_site_passes_on_content_and_says_so() -> None:
    data = web_data(paths=(PathResult(id="git-head", path="/.git/HEAD", status=200),), catch_all=True)
    verdict = exposed_files(data, ExposedParams(), TARGET)
    assert verdict.status == "pass" and "200 to any path" in verdict.message


def test_files_are_not_judged_on_a_redirecting_http_endpoint() -> None:
    data = web_data("http", {"Location": f"https://{NAME}/"}, 301)
    assert exposed_files(data, ExposedParams(), TARGET).status == "not_applicable"


def test_checks_list_verbose_prints_the_docstrings_and_every_request() -> None:
    result = CliRunner().invoke(main, ["checks", "list", "--verbose"])
    assert result.exit_code == 0, result.output
    web = result.output[result.output.index("\nweb  ") :]
    assert "An HTTP-only portal sends every form" in web
    for path in (p.path for p in exposed_paths().paths):
        assert f"GET {path}  (" in web
    assert "at most 40 requests per host" in web
    assert "GET /.git/HEAD" not in CliRunner().invoke(main, ["checks", "list"]).output
