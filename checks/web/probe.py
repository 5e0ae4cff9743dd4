"""Which endpoints of a host serve the web, and the probe that visits them all.

Every request is a GET sent by `PinnedClient` to the target's pinned address; the list of what
one endpoint receives is fixed (`request_plan`), so `attt checks list --verbose` can print it.
"""

import datetime as dt
import secrets
import ssl
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from attt.checks.ports.models import PortsData, ports_seen
from attt.checks.web.client import Fetched, FetchError, PinnedClient, verifying_context
from attt.checks.web.exposed import decoded_proof, exposed_paths, listing_proof, proof
from attt.checks.web.models import (
    CORS_STEP,
    MAX_BODY_BYTES,
    MAX_FILE_BYTES,
    MAX_HEADERS_KEPT,
    MAX_REDIRECTS,
    MAX_VALUE_CHARS,
    REDIRECT_STATUSES,
    REDIRECTS_STEP,
    Answer,
    Cookie,
    Cors,
    Disclosure,
    Header,
    Page,
    PathResult,
    Request,
    Scheme,
    SiteFacts,
    WebData,
    WebSettings,
    resolve_location,
    url_origin,
)
from attt.checks.web.page import parse_cookie, read_page
from attt.scanner.models.observation import Observation, bound_text
from attt.scanner.models.target import Target
from attt.scanner.plugin import ProbeContext

CHECK = "web"
HTTP_PORTS = frozenset({80, 81, 591, 8000, 8008, 8080, 8081, 8088, 8888})
HTTPS_PORTS = frozenset({443, 4443, 8443, 9443})
WEB_TAGS = frozenset({"portal", "web", "website"})
"""Inventory tags that say a system serves the web even where no port says so."""
_HTTP_SERVICES = frozenset({"http", "http-alt", "http-proxy", "http-mgmt"})
# nmap names a service it found behind TLS ssl/NAME: every web service so wrapped is HTTPS.
_HTTPS_SERVICES = frozenset({"https", "https-alt", *(f"ssl/{name}" for name in (*_HTTP_SERVICES, "https"))})
_DISCLOSING_HEADERS = (
    "server",
    "x-powered-by",
    "x-aspnet-version",
    "x-aspnetmvc-version",
    "x-generator",
    # Products that announce themselves in a header of their own, by default: Liferay (many
    # provincial portals), Exchange's web mail, SharePoint, Jenkins, mod_pagespeed.
    "liferay-portal",
    "x-owa-version",
    "microsoftsharepointteamservices",
    "x-jenkins",
    "x-hudson",
    "x-mod-pagespeed",
    "x-page-speed",
)
_JUDGED_HEADERS = frozenset(
    {
        "content-security-policy",
        "content-security-policy-report-only",
        "x-content-type-options",
        "x-frame-options",
        "referrer-policy",
        "strict-transport-security",
        "cross-origin-resource-policy",
        "set-cookie",
        "location",
        "content-type",
        *_DISCLOSING_HEADERS,
    }
)
"""Headers a control or the grade reads: never among those cut when an answer has too many."""
CORS_ORIGIN = "https://cors-check.attt.invalid"
"""A foreign origin (`.invalid` can never exist) for the cross-origin request."""
_UNKNOWN = frozenset({"budget", "timeout", "unreachable"})
"""Failures that teach nothing about the endpoint: its facts stay unknown, never absent."""
_DEADLINE_MARGIN = 0.9
"""Part of the probe budget spent on requests; the rest builds the observations."""


def request_plan() -> list[str]:
    """What one endpoint receives, in order: the list `attt checks list --verbose` prints."""
    files = [f"GET {p.path}  ({p.what.en}; confirmed by content)" for p in exposed_paths().paths]
    defaults = WebSettings()
    return [
        f"GET only, to the pinned address: at most {defaults.max_requests} requests per host, "
        f"{defaults.min_interval} s apart (settings web.max_requests, web.min_interval)",
        "GET /  (the root: status, redirects, headers, cookies, up to "
        f"{MAX_BODY_BYTES // 1024} KiB of the page)",
        f"GET <Location>  (each redirect inside the scope, at most {MAX_REDIRECTS}; "
        "a Location outside it is recorded, never fetched)",
        f"GET / with Origin: {CORS_ORIGIN}  (HTTPS: may any site read the page with the visitor's cookies?)",
        "GET /attt-absent-<random>  (does the site answer 200 to any path?)",
        *files,
        "(the paths are requested on HTTPS endpoints, and on plain-HTTP endpoints that serve pages "
        "instead of redirecting)",
    ]


@dataclass(frozen=True)
class Plan:
    endpoints: dict[int, Scheme]
    reasons: tuple[str, ...]
    """Why the host serves the web (empty: only assumed, for want of a port scan)."""
    assumed: frozenset[int]
    """Ports tried on no evidence: a refusal there is a fact, not an error."""


def plan_endpoints(target: Target, settings: WebSettings, prior: Iterable[Observation]) -> Plan:
    """Port → scheme, from the declared services, the ports check, the tags and the settings."""
    endpoints: dict[int, Scheme] = {}
    reasons: list[str] = []
    for service in target.host.services:
        if service.kind == "http":
            endpoints[service.port] = "http"
            reasons.append(f"declared http service on port {service.port}")
        elif service.kind == "tls" and service.port in HTTPS_PORTS:
            endpoints[service.port] = "https"
            reasons.append(f"declared tls service on web port {service.port}")
    ports = ports_seen(prior)
    for port, nmap_name in _open_ports(ports):
        scheme = _scheme_of(port, nmap_name, settings)
        if scheme is not None and port not in endpoints:
            endpoints[port] = scheme
            reasons.append(f"port {port} open ({nmap_name or 'ports check'})")
    tags = sorted(WEB_TAGS & set(target.system.tags))
    reasons.extend(f"tag {tag}" for tag in tags)
    assumed: set[int] = set()
    scanned = ports is not None
    # HTTPS is always tried on a host that serves the web: a refusal on 443 is the observed
    # fact that makes an HTTP-only portal fail web.https_required. Without a port scan, plain
    # HTTP on 80 is tried too.
    candidates = [443] if (reasons or not scanned) else []
    if not scanned:
        candidates.append(80)
    for port in candidates:
        if port not in endpoints:
            endpoints[port] = "https" if port in HTTPS_PORTS else "http"
            assumed.add(port)
    return Plan(dict(sorted(endpoints.items())), tuple(reasons), frozenset(assumed))


def _open_ports(ports: PortsData | None) -> list[tuple[int, str]]:
    return [] if ports is None else [(p.port, p.service.lower()) for p in ports.open if p.protocol == "tcp"]


def _scheme_of(port: int, service: str, settings: WebSettings) -> Scheme | None:
    if port in settings.extra_https_ports or service in _HTTPS_SERVICES or port in HTTPS_PORTS:
        return "https"
    if port in settings.extra_http_ports or service in _HTTP_SERVICES or port in HTTP_PORTS:
        return "http"
    return None


@dataclass
class _Visit:
    """What one endpoint showed, before the host's facts are known."""

    scheme: Scheme
    url: str
    answer: Answer | None = None
    failure: FetchError | None = None
    redirects: list[Answer] = field(default_factory=list)
    off_scope: str | None = None
    redirect_stop: str | None = None
    redirect_refused: str | None = None
    step_errors: dict[str, str] = field(default_factory=dict)
    verified: bool | None = None
    refusal: str | None = None
    unknown: str | None = None
    cookies: list[Cookie] = field(default_factory=list)
    disclosures: list[Disclosure] = field(default_factory=list)
    page: Page | None = None
    cors: Cors | None = None
    catch_all: bool | None = None
    paths: list[PathResult] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)


class _Endpoint:
    """Visits one endpoint through the host's client, logging every request."""

    def __init__(
        self, client: PinnedClient, name: str, scheme: Scheme, port: int, others: frozenset[tuple[str, int]]
    ) -> None:
        self._client = client
        self._others = others
        self.visit = _Visit(scheme=scheme, url=_url(scheme, name, port))

    def _mine(self, url: str) -> bool:
        """What `url` sends belongs to this endpoint's observation, unless another endpoint of
        the host is observed there (a redirect to a port no inventory lists is still the site)."""
        return (urlsplit(url).scheme, _port(url)) not in self._others

    def run(self) -> _Visit:
        visit = self.visit
        try:
            root = self._root()
            visit.answer = self._answer(visit.url, root)
        except FetchError as exc:
            visit.failure = exc
            return visit
        last, fetched = self._follow_redirects(root)
        if last.location is None:  # a browser renders no body of a redirect, nor its meta tags
            visit.page = read_page(last.first("content-type"), fetched.body, nosniff=last.nosniff)
            if self._mine(last.url):
                visit.disclosures.extend(
                    Disclosure(source="meta:generator", value=g) for g in visit.page.generator
                )
        if visit.scheme == "https":
            self._cors()
        if visit.scheme == "https" or visit.answer.location is None:
            self._files(root)
        return visit

    def _root(self) -> Fetched:
        if self.visit.scheme == "http":
            return self._get(self.visit.url, MAX_BODY_BYTES)
        if self._client.verifying is None:
            self.visit.unknown = self._client.unverifiable
            return self._get(self.visit.url, MAX_BODY_BYTES)
        fetched, self.visit.verified, why = self._as_browser(self.visit.url)
        if self.visit.verified is None:
            self.visit.unknown = f"a browser's handshake broke off ({why}); a lax one then worked"
        else:
            self.visit.refusal = why
        return fetched

    def _as_browser(self, url: str) -> tuple[Fetched, bool | None, str | None]:
        """GET `url` as a browser would ask (chain, name, protocol version): what it answered,
        whether the browser's handshake worked (None: it broke off, which proves nothing), and
        why not. What a browser refuses (a bad certificate, TLS 1.0 only) is still a web site
        whose headers and files matter: it is read again without verification."""
        try:
            return self._get(url, MAX_BODY_BYTES, verify=True), True, None
        except FetchError as exc:
            if exc.kind not in ("certificate", "tls"):
                raise
            why = bound_text(str(exc), 300)
            return self._get(url, MAX_BODY_BYTES), None if exc.broken else False, why

    def _follow_redirects(self, root: Fetched) -> tuple[Answer, Fetched]:
        """Follow the root's redirects inside the scope; the chain's last answer, and what it sent."""
        visit = self.visit
        assert visit.answer is not None
        current, fetched, seen = visit.answer, root, {visit.url}
        while (location := current.location) is not None:
            if (refused := current.refused_redirect) is not None:
                visit.redirect_stop = refused
                break
            target = resolve_location(current.url, location)
            if target is None:
                visit.redirect_stop = f"the Location is not a valid URL: {bound_text(location, 200)}"
                break
            parts = urlsplit(target)
            if parts.scheme not in ("http", "https") or not self._client.in_scope(parts.hostname):
                visit.off_scope = bound_text(target, MAX_VALUE_CHARS)
                break
            if target in seen:
                visit.redirect_stop = f"redirect loop back to {bound_text(target, 200)}"
                break
            if len(visit.redirects) >= MAX_REDIRECTS:
                # A browser follows 20: the page it lands on, whose headers, cookies and
                # versions count, is further on and was never seen.
                visit.step_errors[REDIRECTS_STEP] = (
                    f"more than {MAX_REDIRECTS} redirects: the page they lead to was not reached"
                )
                break
            seen.add(target)
            try:
                # The body too: the page a redirect leads to is the one whose meta tags count.
                if self._own_handshake(target):
                    # Another origin's certificate: whether browsers keep its HSTS.
                    fetched, verified, refusal = self._as_browser(target)
                    current = self._answer(target, fetched, verified, refusal)
                else:
                    fetched = self._get(target, MAX_BODY_BYTES)
                    current = self._answer(target, fetched)
            except FetchError as exc:
                visit.step_errors[REDIRECTS_STEP] = bound_text(f"{target}: {exc}", 300)
                if exc.kind == "refused":
                    visit.redirect_refused = bound_text(target, MAX_VALUE_CHARS)
                break
            visit.redirects.append(current)
        return current, fetched

    def _own_handshake(self, url: str) -> bool:
        """A browser's handshake with `url` would teach something the endpoint's did not: it is
        HTTPS on another origin (another name or port), and such a handshake can be judged."""
        return (
            urlsplit(url).scheme == "https"
            and url_origin(url) != url_origin(self.visit.url)
            and self._client.verifying is not None
        )

    def _cors(self) -> None:
        try:
            fetched = self._get(self.visit.url, 0, origin=CORS_ORIGIN)
        except FetchError as exc:
            self.visit.step_errors[CORS_STEP] = bound_text(str(exc), 300)
            return
        headers = dict(reversed(fetched.headers))  # the first value of each header
        self.visit.cors = Cors(
            origin=CORS_ORIGIN,
            allow_origin=_bounded(headers.get("access-control-allow-origin")),
            allow_credentials=_bounded(headers.get("access-control-allow-credentials")),
        )

    def _files(self, root: Fetched) -> None:
        visit = self.visit
        assert visit.answer is not None
        base = visit.url.rstrip("/")
        if (found := listing_proof(root.status, root.body)) is not None:
            visit.paths.append(
                PathResult(id="dir-listing-root", path="/", status=root.status, served=True, evidence=found)
            )
        entries = list(exposed_paths().paths)
        try:
            absent = self._get(f"{base}/attt-absent-{secrets.token_hex(6)}", 0)
            visit.catch_all = absent.status == 200
        except FetchError as exc:
            if exc.kind in _UNKNOWN:
                visit.skipped = [e.id for e in entries]
                return
        for index, entry in enumerate(entries):
            try:
                fetched = self._get(base + entry.path, MAX_FILE_BYTES)
            except FetchError as exc:
                if exc.kind in _UNKNOWN:
                    visit.skipped = [e.id for e in entries[index:]]
                    return
                visit.paths.append(PathResult(id=entry.id, path=entry.path, error=str(exc)))
                continue
            if (elsewhere := self._moved(base + entry.path, fetched)) is not None:
                error = f"redirected to {bound_text(elsewhere, 300)}, where it was not requested"
                visit.paths.append(
                    PathResult(id=entry.id, path=entry.path, status=fetched.status, error=error)
                )
                continue
            evidence = proof(entry, fetched.status, fetched.body)
            if evidence is None and fetched.decoded is not None and "gzip" in fetched.decoded:
                evidence = decoded_proof(entry, fetched.status, fetched.body)
            if evidence is None and fetched.undecoded is not None and fetched.status in (200, 206):
                # Only a 200 could prove the file, and its content is what is unknown here.
                error = f"the body is encoded as {fetched.undecoded}, which attt cannot decode"
                visit.paths.append(
                    PathResult(id=entry.id, path=entry.path, status=fetched.status, error=error)
                )
                continue
            visit.paths.append(
                PathResult(
                    id=entry.id,
                    path=entry.path,
                    status=fetched.status,
                    served=evidence is not None,
                    evidence=evidence,
                )
            )

    def _moved(self, url: str, fetched: Fetched) -> str | None:
        """Where a redirect sends the request for the same path on another origin that no
        endpoint of the host observes (another port, host or scheme): the file may be served
        there, so this answer proves nothing about it."""
        location = next((v for k, v in fetched.headers if k == "location"), None)
        if fetched.status not in REDIRECT_STATUSES or location is None:
            return None
        target = resolve_location(url, location)
        if target is None:
            return None
        if urlsplit(target).path != urlsplit(url).path or url_origin(target) == url_origin(url):
            return None
        # Another endpoint of the host requests the path itself.
        return None if self._client.in_scope(urlsplit(target).hostname) and not self._mine(target) else target

    def _get(self, url: str, body_limit: int, *, verify: bool = False, origin: str | None = None) -> Fetched:
        shown = bound_text(url, MAX_VALUE_CHARS)
        try:
            fetched = self._client.get(url, body_limit=body_limit, verify=verify, origin=origin)
            _judged_within_bounds(fetched)
        except FetchError as exc:
            if exc.kind != "budget":  # a request the budget stopped was never sent
                error = bound_text(str(exc), 300)
                self.visit.requests.append(Request(url=shown, error=error, seconds=self._seconds()))
            raise
        self.visit.requests.append(Request(url=shown, status=fetched.status, seconds=self._seconds()))
        if self._mine(url):
            # Any answer of this endpoint may name the software or start a session (an error
            # page, a path the application answers rather than the static root).
            self._disclosures(fetched)
            self._cookies(fetched, shown)
        return fetched

    def _disclosures(self, fetched: Fetched) -> None:
        known = self.visit.disclosures
        for name, value in fetched.headers:
            if name in _DISCLOSING_HEADERS:
                found = Disclosure(source=f"header:{name}", value=bound_text(value, MAX_VALUE_CHARS))
                if found not in known:
                    known.append(found)

    def _cookies(self, fetched: Fetched, url: str) -> None:
        """Each cookie once per set of flags (every answer may set the same one)."""
        known = {(c.name, c.secure, c.http_only, c.same_site) for c in self.visit.cookies}
        now = dt.datetime.now(dt.UTC)
        parsed = (parse_cookie(v, url, now=now) for k, v in fetched.headers if k == "set-cookie")
        for cookie in (c for c in parsed if c is not None):
            key = (cookie.name, cookie.secure, cookie.http_only, cookie.same_site)
            if key not in known:
                known.add(key)
                self.visit.cookies.append(cookie)

    def _seconds(self) -> float:
        return round(time.monotonic() - self._client.last_sent, 3)

    def _answer(
        self, url: str, fetched: Fetched, verified: bool | None = None, refusal: str | None = None
    ) -> Answer:
        """The answer as kept: every header a rule reads (`_judged_within_bounds` held), and the
        first `MAX_HEADERS_KEPT` of the others."""
        kept: list[tuple[str, str]] = []
        others = 0
        for name, value in fetched.headers:
            if name in _JUDGED_HEADERS:
                kept.append((name, value))
            elif others < MAX_HEADERS_KEPT:
                others += 1
                kept.append((name, value))
        return Answer(
            url=bound_text(url, MAX_VALUE_CHARS),
            status=fetched.status,
            headers=tuple(
                Header(name=bound_text(k, 100), value=bound_text(v, MAX_VALUE_CHARS)) for k, v in kept
            ),
            headers_truncated=len(kept) < len(fetched.headers),
            certificate_verified=verified,
            certificate_refusal=refusal,
        )


def _judged_within_bounds(fetched: Fetched) -> None:
    """More than `MAX_HEADERS_KEPT` headers a rule reads in one answer is a failed request,
    never a cut that could drop the one cookie or version that fails (or keep thousands)."""
    if sum(1 for name, _ in fetched.headers if name in _JUDGED_HEADERS) > MAX_HEADERS_KEPT:
        raise FetchError(
            "too_large", f"more than {MAX_HEADERS_KEPT} cookies and security headers in one answer"
        )


def _bounded(value: str | None) -> str | None:
    return None if value is None else bound_text(value, MAX_VALUE_CHARS)


def _port(url: str) -> int:
    parts = urlsplit(url)
    return parts.port or (443 if parts.scheme == "https" else 80)


def _url(scheme: Scheme, name: str, port: int) -> str:
    host = f"[{name}]" if ":" in name else name
    default = 80 if scheme == "http" else 443
    return f"{scheme}://{host}/" if port == default else f"{scheme}://{host}:{port}/"


def probe_target(target: Target, ctx: ProbeContext[WebSettings], settings: WebSettings) -> list[Observation]:
    plan = plan_endpoints(target, settings, ctx.prior)
    name = target.host.hostname or target.address
    names = {name.lower(), target.address.lower(), target.ip.lower()}
    trust = verifying_context(settings.trust_anchors)
    client = PinnedClient(
        ip=target.ip,
        names=frozenset(names),
        deadline=time.monotonic() + ctx.timeout * _DEADLINE_MARGIN,
        max_requests=settings.max_requests,
        min_interval=settings.min_interval,
        io_timeout=ctx.connect_timeout,
        verifying=trust if isinstance(trust, ssl.SSLContext) else None,
        unverifiable=trust if isinstance(trust, str) else None,
    )
    # HTTPS first: whether it works is what the plain-HTTP endpoints are judged against.
    order = sorted(plan.endpoints.items(), key=lambda item: (item[1] != "https", item[0]))
    planned = frozenset((scheme, port) for port, scheme in plan.endpoints.items())
    visits = {
        port: _Endpoint(client, name, scheme, port, planned - {(scheme, port)}).run()
        for port, scheme in order
    }
    site = _site_facts(plan, visits)
    observations: list[Observation] = []
    for port, visit in sorted(visits.items()):
        if visit.answer is not None:
            observations.append(Observation.ok(CHECK, target, _data(name, visit, site), port=port))
        elif not (port in plan.assumed and visit.failure is not None and visit.failure.kind == "refused"):
            reason = visit.failure or "not visited"
            observations.append(Observation.failed(CHECK, target, f"{visit.url}: {reason}", port=port))
    if not observations and plan.reasons:
        tried = "; ".join(f"{v.url}: {v.failure}" for v in visits.values())
        observations.append(
            Observation.failed(
                CHECK,
                target,
                f"registered as serving the web ({', '.join(plan.reasons)}) but no web port answered "
                f"({tried}): is it still in service?",
            )
        )
    return observations


def _site_facts(plan: Plan, visits: dict[int, _Visit]) -> SiteFacts:
    ok: list[int] = []
    failed: dict[int, str] = {}
    refused: list[int] = []
    unknown: list[int] = []
    for visit in visits.values():
        # An HTTPS answer reached through a redirect (say to :8443) is working HTTPS too.
        ok.extend(_port(a.url) for a in visit.redirects if a.url.startswith("https:"))
    for port, visit in visits.items():
        if visit.scheme != "https":
            continue
        if visit.answer is not None:
            ok.append(port)
        elif visit.failure is not None and visit.failure.kind == "refused":
            refused.append(port)
        elif visit.failure is None or visit.failure.kind in _UNKNOWN:
            unknown.append(port)
        else:
            failed[port] = bound_text(str(visit.failure), 300)
    chain: tuple[str, ...] | None = None
    http = [v for v in visits.values() if v.scheme == "http" and v.answer is not None]
    if http:
        first = http[0]
        chain = (first.url, *(a.url for a in first.redirects))
        if first.off_scope is not None:
            chain = (*chain, first.off_scope)
    return SiteFacts(
        serves_web=plan.reasons,
        https_ok=tuple(sorted(set(ok))),
        https_failed=failed,
        https_refused=tuple(refused),
        https_unknown=tuple(unknown),
        http_chain=chain,
    )


def _data(name: str, visit: _Visit, site: SiteFacts) -> WebData:
    assert visit.answer is not None
    return WebData(
        scheme=visit.scheme,
        name=name,
        url=visit.url,
        answer=visit.answer,
        redirects=tuple(visit.redirects),
        off_scope_location=visit.off_scope,
        redirect_stop=visit.redirect_stop,
        redirect_refused=visit.redirect_refused,
        page=visit.page,
        certificate_verified=visit.verified,
        certificate_refusal=visit.refusal,
        certificate_unknown=visit.unknown,
        cookies=tuple(visit.cookies),
        cors=visit.cors,
        disclosures=tuple(visit.disclosures),
        catch_all=visit.catch_all,
        paths=tuple(visit.paths),
        paths_skipped=tuple(visit.skipped),
        requests=tuple(visit.requests),
        site=site,
        incomplete=tuple(step for step in (REDIRECTS_STEP, CORS_STEP) if step in visit.step_errors),
        step_errors=visit.step_errors,
    )
