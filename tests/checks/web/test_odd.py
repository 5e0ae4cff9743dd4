"""The web check against servers whose answers only a browser's reading judges right
(tests/servers/web_odd.py): each verdict rests on what a browser would see."""

import pytest

from attt.checks.web.exposed import exposed_paths, proof
from attt.checks.web.page import read_page
from tests.checks.web.probing import Probed
from tests.servers.web_odd import NO_FRAME_ANCESTORS, VERSION_HEADERS
from tests.servers.web_tricks import TrickyWeb


@pytest.fixture(scope="module")
def probed(odd_web: TrickyWeb) -> Probed:
    return Probed(odd_web)


@pytest.mark.parametrize("case", list(VERSION_HEADERS))
def test_a_version_in_a_header_of_the_application_is_announced(probed: Probed, case: str) -> None:
    verdict = probed.verdict(case, "web.version_disclosure")
    value = VERSION_HEADERS[case][1]
    assert (verdict.status, value in verdict.message) == ("fail", True), verdict.message


@pytest.mark.parametrize(
    "case",
    [
        # IIS and the application each add the header: one line, the value twice.
        "repeated in one line",
        # Conflicting values: a browser falls back to refusing every frame.
        "conflicting frame options",
    ],
)
def test_frame_options_and_nosniff_are_read_as_a_browser_splits_them(probed: Probed, case: str) -> None:
    assert probed.data(case).answer.first("content-security-policy") == NO_FRAME_ANCESTORS[1]
    verdict = probed.verdict(case, "web.headers")
    assert verdict.status == "pass", verdict.message
    # The grade shown with the verdict reads them the same way.
    results = verdict.observed["observatory"]["results"]
    assert results["x-frame-options"] == "x-frame-options-sameorigin-or-deny"
    assert results["x-content-type-options"] == "x-content-type-options-nosniff"


def test_a_page_sent_without_a_content_type_is_read_as_the_html_a_browser_sniffs(probed: Probed) -> None:
    verdict = probed.verdict("no content type", "web.version_disclosure")
    assert (verdict.status, "WordPress 5.2.1" in verdict.message) == ("fail", True), verdict.message


@pytest.mark.parametrize(
    ("content_type", "body", "nosniff", "html"),
    [
        (None, b"\n <HTML><body>", False, True),
        ("unknown/unknown", b"<!-- x -->", False, True),
        (None, b"<html>", True, False),  # nosniff: a browser renders no HTML it was not told of
        ("text/plain", b"<html>", False, False),  # only an untyped body is sniffed as HTML
        (None, b"<htmlx>", False, False),
    ],
)
def test_which_untyped_bodies_a_browser_renders_as_html(
    content_type: str | None, body: bytes, nosniff: bool, html: bool
) -> None:
    assert read_page(content_type, body, nosniff=nosniff).html is html


def test_a_page_in_utf_16_is_read_in_utf_16(probed: Probed) -> None:
    verdict = probed.verdict("utf-16 page", "web.version_disclosure")
    assert (verdict.status, "WordPress 5.2.1" in verdict.message) == ("fail", True), verdict.message


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("text/html", "\ufeff<meta name=generator content=X>".encode("utf-16-be")),
        ("text/html; charset=UTF-16", "<meta name=generator content=X>".encode("utf-16-le")),
        ("text/html; charset=utf-16be", "<meta name=generator content=X>".encode("utf-16-be")),
        ("text/html; charset=utf-8", "\ufeff<meta name=generator content=X>".encode()),
    ],
    ids=["bom-be", "charset-utf-16", "charset-utf-16be", "utf-8-bom"],
)
def test_the_encoding_of_a_page_is_its_byte_order_mark_then_its_charset(
    content_type: str, body: bytes
) -> None:
    assert read_page(content_type, body).generator == ("X",)


@pytest.mark.parametrize("control", ["web.headers", "web.cookies", "web.version_disclosure"])
def test_a_chain_longer_than_the_probe_follows_leaves_the_page_unjudged(probed: Probed, control: str) -> None:
    # Every hop sends good headers; the page a browser lands on, after CHAIN_HOPS, sends none,
    # a bare session cookie and a version. The probe never saw it.
    data = probed.data("long redirect chain")
    assert data.incomplete == ("redirects",) and "more than 5 redirects" in data.step_errors["redirects"]
    verdict = probed.verdict("long redirect chain", control)
    assert verdict.status == "error", verdict.message


def test_a_file_redirected_to_where_the_site_lives_is_unknown_never_absent(probed: Probed) -> None:
    # Every path of :443 is redirected to the same path on :8444, no endpoint of the host,
    # where /.env is served.
    verdict = probed.verdict("files moved", "web.exposed_files")
    assert (verdict.status, "env-file" in verdict.message) == ("error", True), verdict.message
    (env,) = [p for p in probed.data("files moved").paths if p.id == "env-file"]
    assert env.status == 301 and ":8444/.env" in (env.error or "")


def test_a_csp_meta_tag_outside_the_head_sets_no_policy(probed: Probed) -> None:
    verdict = probed.verdict("csp meta in the body", "web.headers")
    assert (verdict.status, "content-security-policy" in verdict.message) == ("fail", True), verdict.message


@pytest.mark.parametrize(
    ("html", "counted"),
    [
        ("<html><head><title>a, b</title><META HTTP-EQUIV=content-security-policy content=x></head>", True),
        ("<meta http-equiv=content-security-policy content=x>", True),  # the head is implied
        # After </head> and before the body a parser still puts the meta tag in the head.
        ("<html><head></head> <meta http-equiv=content-security-policy content=x>", True),
        ("<head></head><body><meta http-equiv=content-security-policy content=x>", False),
        ("<title>t</title><div></div><meta http-equiv=content-security-policy content=x>", False),
        ("<title>t</title>text<meta http-equiv=content-security-policy content=x>", False),
    ],
)
def test_a_csp_meta_tag_counts_in_the_head_only(html: str, counted: bool) -> None:
    meta = read_page("text/html", html.encode()).meta
    assert bool(meta) is counted


def test_a_catch_all_page_with_a_byte_order_mark_is_still_a_page(probed: Probed) -> None:
    # Its inline script has two lines that read like an environment file.
    verdict = probed.verdict("catch-all with a bom", "web.exposed_files")
    assert verdict.status == "pass", verdict.message


@pytest.mark.parametrize(
    "start",
    [b"\xef\xbb\xbf<html>", b'<?xml version="1.0"?>\n<!DOCTYPE html>', b"<!-- cms -->\n<html>", b" <BODY>"],
)
def test_what_starts_an_html_page_refutes_a_file(start: bytes) -> None:
    (env,) = [p for p in exposed_paths().paths if p.id == "env-file"]
    assert proof(env, 200, start + b"\nAPP_URL=1\nSITE_ID=2\n") is None
