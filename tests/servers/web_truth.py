"""Web servers on 127.0.235.0/24 whose answers a browser reads by a rule easy to miss.

Each host answers HTTPS on 443 from a scripted `Listener` (tests/servers/web_tricks.py's
`serving`), the answer depending on the path alone; the HTTP cases answer on port 80 too. The
cases: HSTS sent twice with the weak value first, a plain-HTTP redirect to an HTTPS port that
refuses connections, redirects with two different Location headers, and Referrer-Policy given
by a legacy keyword or by a meta tag a browser does or does not read.
"""

from collections.abc import Callable, Iterator

import pytest

from tests.servers.web_tricks import GOOD_HEADERS, PAGE, Responder, TrickyWeb, answer, serving

NET = "127.0.235"
CLOSED_PORT = 8443
"""Where the redirect to a closed port sends its visitors: nothing listens there."""
NO_REFERRER_HEADER = tuple(h for h in GOOD_HEADERS if h[0] != "Referrer-Policy")


def _page(headers: tuple[tuple[str, str], ...], body: bytes = PAGE) -> Responder:
    return lambda path: answer(200 if path in ("/", "/a", "/b") else 404, headers, body)


def _meta(tag: str) -> Responder:
    body = f"<!doctype html><html><head>{tag}<title>t</title></head><body></body></html>".encode()
    return _page(NO_REFERRER_HEADER, body)


def _two_locations(first: str, second: str) -> Responder:
    def respond(path: str) -> bytes:
        if path == "/":
            return answer(302, (*GOOD_HEADERS, ("Location", first), ("Location", second)))
        return answer(200 if path in ("/a", "/b") else 404, GOOD_HEADERS, PAGE)

    return respond


def _cases(name_of: Callable[[str], str]) -> dict[str, Responder]:
    return {
        # RFC 6797 8.1: only the first header counts, and it says max-age=0.
        "hsts weak first": _page(
            (
                *(h for h in GOOD_HEADERS if h[0] != "Strict-Transport-Security"),
                ("Strict-Transport-Security", "max-age=0"),
                ("Strict-Transport-Security", "max-age=63072000"),
            )
        ),
        **dict.fromkeys(HTTP_CASES, _page(GOOD_HEADERS)),
        "two locations": _two_locations("/a", "/b"),
        "one location sent twice": _two_locations("/a", "/a"),
        # A browser reads legacy keywords in a meta tag only, never in the header.
        "referrer header never": _page((*NO_REFERRER_HEADER, ("Referrer-Policy", "never"))),
        "referrer meta never": _meta('<meta name="referrer" content="never">'),
        "referrer meta default": _meta('<meta name="referrer" content="Default">'),
        "referrer meta always": _meta('<meta name="referrer" content="always">'),
        "referrer meta crossorigin": _meta('<meta name="referrer" content="origin-when-crossorigin">'),
        "referrer meta overrides header": lambda path: answer(
            200, (*NO_REFERRER_HEADER, ("Referrer-Policy", "no-referrer")), _meta_body("unsafe-url")
        ),
        "referrer http-equiv": _meta('<meta http-equiv="Referrer-Policy" content="no-referrer">'),
    }


def _meta_body(policy: str) -> bytes:
    return f'<html><head><meta name="referrer" content="{policy}"></head></html>'.encode()


HTTP_CASES = ("redirect to a closed port", "two locations over http")
"""Cases that answer plain HTTP on port 80 too (their HTTPS is a good page)."""


def _other_ports(name_of: Callable[[str], str]) -> dict[tuple[str, int], Responder]:
    return {
        ("redirect to a closed port", 80): lambda path: answer(
            301, (("Location", f"https://{name_of('redirect to a closed port')}:{CLOSED_PORT}/"),)
        ),
        ("two locations over http", 80): lambda path: answer(
            301,
            (
                ("Location", f"https://{name_of('two locations over http')}/"),
                ("Location", f"https://{name_of('two locations over http')}/b"),
            ),
        ),
    }


@pytest.fixture(scope="session")
def truth_web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrickyWeb]:
    with serving(tmp_path_factory.mktemp("web-truth"), NET, _cases, _other_ports, HTTP_CASES) as web:
        yield web
