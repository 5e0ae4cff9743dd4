"""The `web` observation data (one per HTTP(S) endpoint), the check's settings, and its limits."""

import ipaddress
import re
from typing import Annotated, ClassVar, Literal
from urllib.parse import urljoin, urlsplit

from pydantic import Field

from attt.scanner.models.base import Frozen
from attt.scanner.models.observation import bound_text
from attt.scanner.models.target import Port
from attt.scanner.plugin import Settings

Scheme = Literal["http", "https"]
WebStep = Literal["redirects", "cors"]
REDIRECTS_STEP: WebStep = "redirects"
"""Fetching the in-scope redirects of the root: the page whose headers, cookies and versions count."""
CORS_STEP: WebStep = "cors"
"""The cross-origin request, whose answer the Observatory-style grade needs."""

MAX_HEADER_BYTES = 64 * 1024
"""Bound on a response's status line and headers together; more is a failed request."""
MAX_BODY_BYTES = 256 * 1024
"""Bound on the body read from the site root (for the generator tag, meta tags and scripts)."""
MAX_FILE_BYTES = 8 * 1024
"""Bound on the body read from a sensitive path: enough to confirm what it is."""
MAX_HEADERS_KEPT = 100
MAX_VALUE_CHARS = 1024
"""Bound on each header value, URL and cookie kept in the observation: they come from the target."""
MAX_REDIRECTS = 5
MAX_SCRIPTS = 50


def resolve_location(base: str, location: str) -> str | None:
    """The URL a `Location` sends a visitor to from `base`; None when it is no URL at all (a
    bracket left open, a port past 65535), which a browser refuses to follow too."""
    location = location.strip()
    # A browser reads a backslash before the query as a slash: `https://evil\@site/` goes to
    # evil, and `/\evil` is `//evil`, another host; urllib would take both for the site.
    cut = min((i for i in (location.find("?"), location.find("#")) if i >= 0), default=len(location))
    location = location[:cut].replace("\\", "/") + location[cut:]
    try:
        parts = urlsplit(urljoin(base, location))
        _ = parts.port  # raises on a port that is not a number below 65536
    except ValueError:
        return None
    return parts.geturl()  # the scheme in lower case: `HTTPS://` is HTTPS too


def url_origin(url: str) -> tuple[str, str, int]:
    """The URL's origin: scheme, host name in lower case, port (the scheme's default if none)."""
    parts = urlsplit(url)
    default = 443 if parts.scheme == "https" else 80
    return parts.scheme, (parts.hostname or "").lower(), parts.port or default


def is_address(host: str) -> bool:
    """`host` is an IP address (brackets around an IPv6 one allowed), not a name."""
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
"""The Fetch standard's redirect statuses: the only ones a browser follows."""


class Header(Frozen):
    name: str
    """Lower-cased."""
    value: str


class Answer(Frozen):
    """One HTTP response, as far as it was read."""

    url: str
    status: int
    headers: tuple[Header, ...]
    headers_truncated: bool = False
    """The response had more than `MAX_HEADERS_KEPT` headers that no rule reads; the rest of
    those are not kept (every header a rule reads is)."""
    certificate_verified: bool | None = None
    """An HTTPS redirect's answer from another origin than the endpoint's (another name or
    port): a browser's handshake succeeded there; False when only a lax one did
    (`certificate_refusal` says why); None when that is not known. Unset on the endpoint's own
    answers, which `WebData.certificate_verified` covers."""
    certificate_refusal: str | None = None
    """Why a browser's handshake with that other origin failed; with `certificate_verified`
    None, why it is not known (the handshake broke off)."""

    def values(self, name: str) -> tuple[str, ...]:
        return tuple(h.value for h in self.headers if h.name == name)

    def first(self, name: str) -> str | None:
        found = self.values(name)
        return found[0] if found else None

    def split(self, name: str) -> tuple[str, ...]:
        """A header's values as a browser reads a list (Fetch's "get, decode, and split"):
        every line split at commas, trimmed, lower case; the lines of a repeated header count
        as one list, as if joined by a comma."""
        return tuple(v.strip().lower() for line in self.values(name) for v in line.split(","))

    @property
    def nosniff(self) -> bool:
        """Fetch's "determine nosniff": the first value of X-Content-Type-Options is nosniff."""
        return self.split("x-content-type-options")[:1] == ("nosniff",)

    @property
    def frame_options_deny(self) -> bool:
        """HTML's X-Frame-Options processing refuses framing by another site (a CSP
        frame-ancestors directive, which overrides it, aside). Several different values that
        include a known one make a browser refuse every frame; one line may carry the value
        twice when two layers add it."""
        frame = set(self.split("x-frame-options"))
        protecting = {"deny", "sameorigin"} if len(frame) == 1 else {"deny", "sameorigin", "allowall"}
        return bool(frame & protecting)

    @property
    def location(self) -> str | None:
        """Where a browser is sent next; None when it is not (it follows only 301, 302, 303, 307
        and 308: a 300 or 304 with a Location shows its body where it is)."""
        return self.first("location") if self.status in REDIRECT_STATUSES else None

    @property
    def refused_redirect(self) -> str | None:
        """Why a browser follows this redirect nowhere, or None. Different Location values make
        Fetch's "location URL" a failure, a network error; Chromium and Firefox refuse them
        too (both follow copies of one value)."""
        if self.location is None or len({v.strip() for v in self.values("location")}) < 2:
            return None
        shown = " and ".join(bound_text(v, 100) for v in self.values("location")[:2])
        return f"two different Location headers ({shown}): browsers refuse the redirect"


_SESSION_WORD = re.compile(r"sess|sid|login|auth|token|csrf|xsrf", re.IGNORECASE)
FRAMEWORK_SESSION = re.compile(
    # ASP.NET Core: the antiforgery token (a suffix per application), cookie authentication's
    # default name, Identity's `.AspNetCore.Identity.Application`; OWIN's for ASP.NET 4.
    r"\.AspNetCore\.(Antiforgery\.|Cookies$|Identity\.)|\.AspNet\.ApplicationCookie$"
    # WordPress: the login cookies, the site's hash as suffix (`wordpress_<hash>` over plain HTTP).
    r"|wordpress_(logged_in_|sec_|[0-9a-f]{32}$)",
    re.IGNORECASE,
)
"""Names frameworks give their session, login and anti-forgery cookies that hold none of the
words a session cookie's name is known by; matched from the start of the name."""


class Cookie(Frozen):
    name: str
    secure: bool
    http_only: bool
    same_site: str | None
    """The SameSite attribute as sent (`Lax`, `Strict`, `None`, or anything else); None if absent."""
    url: str
    """The answer that set it."""

    @property
    def session(self) -> bool:
        """Its name marks a session, login or anti-CSRF cookie: it holds sess, sid, login, auth,
        token, csrf or xsrf (PHPSESSID, JSESSIONID, ASP.NET_SessionId, laravel_session,
        connect.sid), or is a framework's own (`FRAMEWORK_SESSION`)."""
        return bool(_SESSION_WORD.search(self.name) or FRAMEWORK_SESSION.match(self.name))


class Script(Frozen):
    src: str
    integrity: bool


class Page(Frozen):
    """What the root page's HTML says about itself, from its first `MAX_BODY_BYTES`."""

    html: bool
    """The answer is an HTML page (by Content-Type)."""
    meta: tuple[Header, ...] = ()
    """`<meta http-equiv>` values by that name (content-security-policy, ...), and
    `<meta name="referrer">` values as `referrer`."""
    generator: tuple[str, ...] = ()
    """`<meta name="generator">` values."""
    scripts: tuple[Script, ...] = ()
    """`<script src>` elements, at most `MAX_SCRIPTS`."""


class Cors(Frozen):
    """The root's answer to a GET that carries a foreign `Origin`: may another site read it?"""

    origin: str
    allow_origin: str | None
    allow_credentials: str | None


class Disclosure(Frozen):
    """A place where the server names its software."""

    source: str
    """`header:server`, `header:x-powered-by`, `meta:generator`, ..."""
    value: str


class PathResult(Frozen):
    """One request for a path a public site must never serve, and what it proved."""

    id: str
    path: str
    status: int | None = None
    served: bool = False
    """The content confirmed the file or listing (not the status code alone)."""
    evidence: str | None = None
    """What confirmed it: the matching start of the body, bounded."""
    error: str | None = None
    """The request failed: this path proves nothing either way."""


class Request(Frozen):
    """One request the probe sent: the audit trail, shown in the report's data."""

    method: Literal["GET"] = "GET"
    url: str
    status: int | None = None
    error: str | None = None
    seconds: float


class SiteFacts(Frozen):
    """What the probe learned about the host's web service as a whole; the same in every
    observation of the host, so a control can judge "has HTTPS" from any one of them."""

    serves_web: tuple[str, ...]
    """Why the host is taken to serve the web: declared services, tags, open ports."""
    https_ok: tuple[Port, ...] = ()
    """HTTPS ports that completed a TLS handshake and answered HTTP."""
    https_failed: dict[Port, str] = Field(default_factory=dict)
    """HTTPS ports tried without a working answer, with what happened."""
    https_refused: tuple[Port, ...] = ()
    """HTTPS ports that refused the connection: observed closed."""
    https_unknown: tuple[Port, ...] = ()
    """HTTPS ports whose attempt taught nothing (timeout, unreachable, budget)."""
    http_chain: tuple[str, ...] | None = None
    """URLs of the plain-HTTP redirect chain on the first HTTP port, the first URL included;
    None when no plain-HTTP endpoint answered."""


class WebData(Frozen):
    scheme: Scheme
    name: str
    """The name sent as `Host` (and SNI): the inventory's host name, else the address."""
    url: str
    answer: Answer
    """The endpoint's answer to `GET /`."""
    redirects: tuple[Answer, ...] = ()
    """Answers to the redirects followed from the root (in scope, at most `MAX_REDIRECTS`)."""
    off_scope_location: str | None = None
    """A `Location` outside the inventory's scope: recorded, never fetched."""
    redirect_stop: str | None = None
    """Why the chain stopped on a redirect the probe saw but did not follow (a loop, a Location
    that is no URL): an observed fact. A hop that could not be fetched, or more hops than the
    probe follows, is the step `redirects` instead."""
    redirect_refused: str | None = None
    """A redirect's target (in scope) whose port refused the connection: observed closed."""
    page: Page | None = None
    """The HTML facts of the answer the chain ends on (the one `web.headers` judges); None when
    no body was read or that answer is a redirect, whose body a browser never renders."""
    certificate_verified: bool | None = None
    """HTTPS only: a browser's handshake succeeded (chain and name verified against the trust
    store in use, a protocol version it accepts); False when only a lax handshake worked; None
    when that is not known (`certificate_unknown` says why)."""
    certificate_refusal: str | None = None
    """Why a browser's handshake failed, when `certificate_verified` is False: the chain, the
    name (a wildcard over a public suffix, or a name in the subject CN alone, among them), or no
    protocol version or suite a browser accepts."""
    certificate_unknown: str | None = None
    """HTTPS only, when `certificate_verified` is None: why whether a browser accepts the
    certificate is not known (the configured trust anchors could not be read, the trust store
    holds no certificate at all, or the browser's handshake broke off)."""
    cookies: tuple[Cookie, ...] = ()
    cors: Cors | None = None
    """HTTPS only; None when the request was not made or failed."""
    disclosures: tuple[Disclosure, ...] = ()
    catch_all: bool | None = None
    """A path that cannot exist was answered 200: status codes prove nothing on this site."""
    paths: tuple[PathResult, ...] = ()
    paths_skipped: tuple[str, ...] = ()
    """Ids of listed paths not requested (budget or deadline): not known to be absent."""
    requests: tuple[Request, ...] = ()
    site: SiteFacts
    incomplete: tuple[WebStep, ...] = ()
    """Probe steps that did not complete: the facts they give are missing, and every rule that
    reads them is `error` (controls declare them with `needs`)."""
    step_errors: dict[str, str] = Field(default_factory=dict)
    """Why each incomplete step failed, bounded text."""

    @property
    def serves_content(self) -> bool:
        """The root answers with a page rather than a redirect (a 3xx a browser does not follow,
        without a Location or a 300, shows its body)."""
        return self.answer.location is None


class WebSettings(Settings):
    """Per-policy settings of the `web` check (`settings: {web: {...}}`)."""

    neutral: ClassVar[frozenset[str]] = frozenset({"max_requests", "min_interval"})

    max_requests: Annotated[int, Field(ge=4, le=200)] = 40
    """Requests one host receives at most in one scan, all endpoints together."""
    min_interval: Annotated[float, Field(ge=0.0, le=10.0)] = 0.1
    """Seconds between two requests to the same host (10 per second at most by default)."""
    trust_anchors: tuple[str, ...] = ()
    """PEM files of extra trusted CAs, for `certificate_verified` (the tls check judges the
    certificate; the web check only needs to know whether a browser would accept it)."""
    extra_http_ports: tuple[Port, ...] = ()
    """Open ports to visit as plain HTTP besides the usual web ports."""
    extra_https_ports: tuple[Port, ...] = ()
    """Open ports to visit as HTTPS besides 443, 4443, 8443 and 9443."""
