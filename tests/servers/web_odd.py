"""Web servers on 127.0.234.0/24 whose answers are sound (or unsound) only when read as a browser
reads them, beyond tests/servers/web_tricks.py.

Each host answers HTTPS on 443 from a scripted `Listener`, the answer depending on the path
alone; some answer on another port too. The cases: a version announced in a header of the
application's own (Liferay, Exchange, SharePoint, Drupal), X-Frame-Options and
X-Content-Type-Options repeated by two layers into one line, a page sent without a Content-Type
or in UTF-16, a chain of more redirects than the probe follows, a site whose every path is
redirected to where it really lives, a meta CSP in the body, and a catch-all page that starts
with a byte order mark.
"""

from collections.abc import Callable, Iterator

import pytest

from tests.servers.web_tricks import GOOD_HEADERS, PAGE, Responder, TrickyWeb, answer, serving

NET = "127.0.234"
ENV_FILE = b"APP_ENV=production\nDB_PASSWORD=not-a-real-secret\n"
CHAIN_HOPS = 7
"""Redirects before the page: more than the probe follows, fewer than a browser's 20."""
VERSION_HEADERS = {
    "liferay": ("Liferay-Portal", "Liferay Community Edition Portal 7.4.3.112 CE GA112"),
    "exchange": ("X-OWA-Version", "15.1.2375.7"),
    "sharepoint": ("MicrosoftSharePointTeamServices", "16.0.0.10337"),
    "drupal": ("X-Generator", "Drupal 10 (https://www.drupal.org)"),
}
"""Case → a header that names the software and its version, as that software sends it."""
NO_FRAME_ANCESTORS = ("Content-Security-Policy", "default-src 'self'")
"""A CSP that leaves framing to X-Frame-Options."""


def _with(*extra: tuple[str, str], drop: tuple[str, ...] = ()) -> tuple[tuple[str, str], ...]:
    return (*(h for h in GOOD_HEADERS if h[0] not in drop), *extra)


def _page(headers: tuple[tuple[str, str], ...], body: bytes = PAGE) -> Responder:
    return lambda path: answer(200 if path == "/" else 404, headers, body)


_GENERATOR = (
    '<!DOCTYPE html><html><head><meta name="generator" content="WordPress 5.2.1"></head><body></body></html>'
)


def _chain(path: str) -> bytes:
    hop = path.strip("/")
    if path == "/" or (hop.isdigit() and int(hop) < CHAIN_HOPS):
        return answer(302, _with(("Location", f"/{int(hop or 0) + 1}")))
    # The page the visitor lands on: no security header, a bare session cookie, a version.
    page = (
        ("Content-Type", "text/html"),
        ("Set-Cookie", "sessionid=a1b2; Path=/"),
        ("Server", "Apache/2.4.1"),
    )
    return answer(200 if hop == str(CHAIN_HOPS) else 404, page, PAGE)


def _cases(name_of: Callable[[str], str]) -> dict[str, Responder]:
    body_csp = (
        b"<!doctype html><html><head><title>t</title></head><body><p>news</p>"
        b'<meta http-equiv="Content-Security-Policy" content="default-src \'self\'"></body></html>'
    )
    # A portal's catch-all page, saved with a byte order mark by a Windows editor; its inline
    # script assigns globals the old way, one per line.
    soft_404 = (
        b"\xef\xbb\xbf<!DOCTYPE html>\n<html><head><script>\n"
        b'APP_URL="/";\nSITE_ID=3;\n</script></head></html>'
    )
    return {
        **{case: _page(_with(header)) for case, header in VERSION_HEADERS.items()},
        "repeated in one line": _page(
            _with(
                ("X-Frame-Options", "SAMEORIGIN, SAMEORIGIN"),
                ("X-Content-Type-Options", "nosniff, nosniff"),
                NO_FRAME_ANCESTORS,
                drop=("X-Frame-Options", "X-Content-Type-Options", "Content-Security-Policy"),
            )
        ),
        "conflicting frame options": _page(
            _with(
                ("X-Frame-Options", "ALLOWALL"),
                ("X-Frame-Options", "DENY"),
                NO_FRAME_ANCESTORS,
                drop=("X-Frame-Options", "Content-Security-Policy"),
            )
        ),
        "no content type": _page(_with(drop=("Content-Type", "X-Content-Type-Options")), _GENERATOR.encode()),
        "utf-16 page": _page(_with(), ("\ufeff" + _GENERATOR).encode("utf-16-le")),
        "long redirect chain": _chain,
        "files moved": lambda path: answer(
            301, (("Location", f"https://{name_of('files moved')}:8444{path}"),)
        ),
        "csp meta in the body": _page(_with(drop=("Content-Security-Policy",)), body_csp),
        "catch-all with a bom": lambda path: answer(200, GOOD_HEADERS, soft_404),
    }


def _other_ports(name_of: Callable[[str], str]) -> dict[tuple[str, int], Responder]:
    def lives_here(path: str) -> bytes:
        if path == "/.env":
            return answer(200, (("Content-Type", "text/plain"),), ENV_FILE)
        return answer(200 if path == "/" else 404, GOOD_HEADERS, PAGE)

    return {("files moved", 8444): lives_here}


@pytest.fixture(scope="session")
def odd_web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrickyWeb]:
    with serving(tmp_path_factory.mktemp("web-odd"), NET, _cases, _other_ports) as web:
        yield web
