"""The grade the public MDN HTTP Observatory scoring would give an HTTPS answer, from the
published modifiers kept as versioned data (data/observatory-scoring.json).

Each Observatory test is re-expressed here as a small pure function of what the web check
observed; the numbers all come from the data file. A test whose facts were not observed (the
cross-origin request failed) scores its neutral result and is named in the grade's
`not_evaluated`, never guessed. The HSTS preload list is not consulted (no preload bonus, no
preloaded-redirect pass). Multiple CSP policies are combined by intersecting the sources each
directive allows, a simplification of the Observatory's prefix matching.

X-Frame-Options and X-Content-Type-Options are read as a browser and the web.headers rule read
them (the lines of a repeated header joined, then split at commas), and a passing result needs
what the rule needs: the grade is never better than the rule's own conclusion on the same
headers, where the Observatory passes ALLOW-FROM and any frame-ancestors.
"""

import json
import re
from collections.abc import Iterable, Sequence
from functools import cache
from importlib.resources import files
from urllib.parse import urljoin, urlsplit

from attt.checks.web.models import FRAMEWORK_SESSION, Answer, Cookie, Cors, Header, WebData
from attt.checks.web.trust import hsts_ignored
from attt.scanner.models.base import Frozen

SCORING_FILE = "observatory-scoring.json"

_BROAD = frozenset({"ftp:", "http:", "https:", "*", "http://*", "http://*.*", "https://*", "https://*.*"})
_INLINE = frozenset({"'unsafe-inline'", "data:"})
_NONCE_OR_HASH = ("'sha256-", "'sha384-", "'sha512-", "'nonce-")
_PASSIVE = ("img-src", "media-src")
_NOT_IN_META = ("frame-ancestors", "report-uri", "sandbox")
_REPEATABLE = frozenset({"report-uri", "report-to"})
_MIN_POLICY_CHARS = 6
_ANY_SITE = re.compile(r"\*|[a-z][a-z0-9+.-]*:(//\*)?/?")
"""A frame-ancestors source any site matches: `*`, a bare scheme (`https:`), `https://*`."""
_DELTA_SECONDS = re.compile(r'"?([0-9]+)"?')
"""RFC 6797's max-age value: ASCII digits (`[0-9]`, not `\\d`, which takes any script's digits)."""
_SIX_MONTHS = 15_552_000
"""The Observatory's six months: 180 days, the value most sites use, not 182.5."""
_PRIVATE_REFERRER = ("no-referrer", "same-origin", "strict-origin", "strict-origin-when-cross-origin")
_UNSAFE_REFERRER = ("origin", "origin-when-cross-origin", "unsafe-url", "no-referrer-when-downgrade")
_COOKIE_RESULTS_BEST_FIRST = (
    "cookies-without-secure-flag-but-protected-by-hsts",
    "cookies-without-secure-flag",
    "cookies-session-without-secure-flag-but-protected-by-hsts",
    "cookies-samesite-flag-invalid",
    "cookies-anticsrf-without-samesite-flag",
    "cookies-session-without-httponly-flag",
    "cookies-session-without-secure-flag",
)


class Scoring(Frozen):
    name: str
    algorithm_version: int
    source: str
    baseline: int
    extra_credit_from: int
    grades: tuple[tuple[int, str], ...]
    """(lowest score, grade), best first."""
    when_not_observed: dict[str, str]
    """Test -> the neutral result scored when its facts are missing."""
    modifiers: dict[str, dict[str, int]]
    """test -> result -> points."""

    def letter(self, score: int) -> str:
        return next(grade for floor, grade in self.grades if score >= floor)

    def score(self, results: dict[str, str]) -> int:
        """Penalties first; bonuses only when what is left is still an A (the published two rounds)."""
        points = [self.modifiers[test][result] for test, result in results.items()]
        score = self.baseline + sum(p for p in points if p < 0)
        if score >= self.extra_credit_from:
            score += sum(p for p in points if p > 0)
        return max(score, 0)


class ObservatoryGrade(Frozen):
    algorithm_version: int
    score: int
    grade: str
    results: dict[str, str]
    """Test -> result, in the Observatory's own names."""
    not_evaluated: tuple[str, ...]


@cache
def scoring() -> Scoring:
    text = files("attt.checks.web").joinpath("data", SCORING_FILE).read_text(encoding="utf-8")
    return Scoring.model_validate(json.loads(text))


def grade(data: WebData, rules: Scoring | None = None) -> ObservatoryGrade:
    """Grade the HTTPS answer `data` as the Observatory would, as far as attt observed it."""
    rules = rules or scoring()
    results = classify(data)
    missing = sorted(set(rules.modifiers) - set(results))
    results.update({test: rules.when_not_observed[test] for test in missing})
    total = rules.score(results)
    return ObservatoryGrade(
        algorithm_version=rules.algorithm_version,
        score=total,
        grade=rules.letter(total),
        results=results,
        not_evaluated=tuple(missing),
    )


def classify(data: WebData) -> dict[str, str]:
    answer = data.redirects[-1] if data.redirects else data.answer
    https = data.scheme == "https"
    meta = data.page.meta if data.page is not None else ()
    csp_header = _policies(answer.values("content-security-policy"))
    csp_meta = _policies(h.value for h in _meta(meta, "content-security-policy"))
    csp_result, header_csp = _csp(csp_header, csp_meta, answer, https)
    hsts = _hsts(data, answer)
    results = {
        "content-security-policy": csp_result,
        "cookies": _cookies(data.cookies, answer, hsts in _HSTS_PASSES),
        "redirection": _redirection(data.site.http_chain, data.certificate_verified),
        "referrer-policy": _referrer(answer, meta),
        "strict-transport-security": hsts,
        "subresource-integrity": _sri(data, answer.url),
        "x-content-type-options": _nosniff(answer),
        "x-frame-options": _frame_options(answer, header_csp),
        "cross-origin-resource-policy": _corp(answer, meta),
    }
    if data.cors is not None:
        results["cross-origin-resource-sharing"] = _cors(data.cors)
    return results


# --- Content-Security-Policy ----------------------------------------------------------------

Csp = dict[str, frozenset[str]]


class _InvalidCsp(ValueError):
    pass


def _policies(values: Iterable[str]) -> list[str]:
    # A comma separates policies: the grammar of a directive value never contains one.
    return [p.strip() for v in values for p in v.replace("\r", "").replace("\n", "").split(",")]


def _parse(policies: Sequence[str]) -> tuple[Csp, bool]:
    """Directives of all policies combined (a source counts only if every policy that names the
    directive allows it) and whether a repeatable directive was repeated."""
    combined: dict[str, frozenset[str]] = {}
    repeated = False
    for policy in policies:
        if len(policy) < _MIN_POLICY_CHARS:
            raise _InvalidCsp(policy)
        seen: set[str] = set()
        for entry in policy.split(";"):
            tokens = entry.split()
            if not tokens:
                continue
            directive = tokens[0].lower()
            if directive in seen:
                if directive not in _REPEATABLE:
                    raise _InvalidCsp(f"directive {directive} repeated")
                repeated = True
                continue
            seen.add(directive)
            sources = frozenset(t.lower() for t in tokens[1:])
            if not sources and directive.endswith("-src"):
                sources = frozenset({"'none'"})
            combined[directive] = combined[directive] & sources if directive in combined else sources
    return {d: s or frozenset({"'none'"}) for d, s in combined.items()}, repeated


def _csp(header: list[str], meta: list[str], answer: Answer, https: bool) -> tuple[str, Csp]:
    """The CSP result, and the header-only policy (frame-ancestors is honoured only there)."""
    try:
        csp, repeated = _parse([*header, *meta])
    except _InvalidCsp:
        return "csp-header-invalid", {}
    header_csp, _ = _parse(header) if header else ({}, False)
    meta_csp = {d: s for d, s in _parse(meta)[0].items() if d not in _NOT_IN_META} if meta else {}
    if not header_csp and not meta_csp:
        if answer.first("content-security-policy-report-only"):
            return "csp-not-implemented-but-reporting-enabled", header_csp
        return "csp-not-implemented", header_csp
    return _judge_csp(csp, repeated, https), header_csp


def _judge_csp(csp: Csp, repeated: bool, https: bool) -> str:
    star = frozenset({"*"})
    default = csp.get("default-src")
    script = set(csp.get("script-src", default or star))
    style = set(csp.get("style-src", default or star))
    objects = csp.get("object-src", default or star)
    for sources in (script, style):
        if any(s.startswith(_NONCE_OR_HASH) for s in sources):
            sources.discard("'unsafe-inline'")
    found: list[str] = []
    if "'strict-dynamic'" in script:
        if any(s.startswith(_NONCE_OR_HASH) for s in script):
            script = {
                s
                for s in script
                if s not in ("'self'", "'unsafe-inline'") and not s.startswith(tuple(_BROAD))
            }
        else:
            found.append("csp-header-invalid")
    active = [s for d, v in csp.items() if d not in (*_PASSIVE, "script-src") for s in v] + sorted(script)
    passive = [s for d in _PASSIVE for s in csp.get(d, default or frozenset())]
    checks: tuple[tuple[bool, str], ...] = (
        (bool(script & (_BROAD | _INLINE)) or bool(objects & _BROAD), "csp-implemented-with-unsafe-inline"),
        (https and _insecure(active), "csp-implemented-with-insecure-scheme"),
        ("'unsafe-eval'" in script | style, "csp-implemented-with-unsafe-eval"),
        (https and _insecure(passive), "csp-implemented-with-insecure-scheme-in-passive-content-only"),
        (bool(style & (_BROAD | _INLINE)), "csp-implemented-with-unsafe-inline-in-style-src-only"),
        (default == frozenset({"'none'"}), "csp-implemented-with-no-unsafe-default-src-none"),
        (True, "csp-implemented-with-no-unsafe"),
    )
    found.extend(result for hit, result in checks if hit)
    result = found[0]
    passing = {
        "csp-implemented-with-no-unsafe",
        "csp-implemented-with-no-unsafe-default-src-none",
        "csp-implemented-with-unsafe-inline-in-style-src-only",
        "csp-implemented-with-insecure-scheme-in-passive-content-only",
    }
    return "csp-implemented-but-duplicate-directives" if repeated and result in passing else result


def _insecure(sources: Iterable[str]) -> bool:
    return any(s.startswith(("http:", "ftp:")) for s in sources)


# --- the other tests -------------------------------------------------------------------------

_HSTS_PASSES = ("hsts-implemented-max-age-at-least-six-months", "hsts-preloaded")


def hsts_max_age(value: str) -> int | None:
    """The max-age a browser reads from a Strict-Transport-Security value (RFC 6797 section
    6.1) in one header's value; None when it ignores the header: no max-age, a value other than
    ASCII digits, a directive given twice, or a comma (two values in one line, which the grammar
    has no room for)."""
    if "," in value:
        return None
    directives = [part.partition("=") for part in value.split(";") if part.strip()]
    names = [name.strip().lower() for name, _, _ in directives]
    if len(set(names)) != len(names):
        return None
    ages = [number.strip() for name, _, number in directives if name.strip().lower() == "max-age"]
    found = _DELTA_SECONDS.fullmatch(ages[0]) if ages else None
    return int(found.group(1)) if found else None


def _hsts(data: WebData, answer: Answer) -> str:
    if urlsplit(answer.url).scheme != "https":
        return "hsts-not-implemented-no-https"  # a browser ignores HSTS sent over plain HTTP
    ignored = hsts_ignored(data, answer)
    if ignored is not None and ignored.observed:
        return "hsts-invalid-cert"
    values = answer.values("strict-transport-security")
    if not values:
        return "hsts-not-implemented"
    # The Observatory's HTTP client (Node's) joins a header sent twice with a comma, and so reads
    # it as invalid; a browser reads the first (RFC 6797 8.1): this grade follows the Observatory.
    max_age = hsts_max_age(", ".join(values))
    if max_age is None:
        return "hsts-header-invalid"
    return (
        "hsts-implemented-max-age-at-least-six-months"
        if max_age >= _SIX_MONTHS
        else ("hsts-implemented-max-age-less-than-six-months")
    )


def _cookies(cookies: Sequence[Cookie], answer: Answer, hsts: bool) -> str:
    if not cookies:
        return "cookies-not-found"
    worst = -1

    def seen(result: str) -> None:
        nonlocal worst
        worst = max(worst, _COOKIE_RESULTS_BEST_FIRST.index(result))

    for cookie in cookies:
        name = cookie.name.lower()
        # The Observatory's words, and the names frameworks give theirs (`wordpress_logged_in_`),
        # which the web.cookies rule judges as session cookies too: the grade is no kinder.
        session = "login" in name or "sess" in name or bool(FRAMEWORK_SESSION.match(cookie.name))
        same_site = (cookie.same_site or "").lower()
        if cookie.same_site is not None and same_site not in ("lax", "strict", "none"):
            seen("cookies-samesite-flag-invalid")
        if same_site == "none" and not cookie.secure:
            seen("cookies-samesite-flag-invalid")
        if not cookie.secure:
            seen(
                "cookies-without-secure-flag-but-protected-by-hsts" if hsts else "cookies-without-secure-flag"
            )
            if session:
                seen(
                    "cookies-session-without-secure-flag-but-protected-by-hsts"
                    if hsts
                    else "cookies-session-without-secure-flag"
                )
        if "csrf" in name and cookie.same_site is None:
            seen("cookies-anticsrf-without-samesite-flag")
        if session and not cookie.http_only:
            seen("cookies-session-without-httponly-flag")
    if worst >= 0:
        return _COOKIE_RESULTS_BEST_FIRST[worst]
    if all(c.same_site is not None for c in cookies):
        return "cookies-secure-with-httponly-sessions-and-samesite"
    return "cookies-secure-with-httponly-sessions"


def _redirection(chain: tuple[str, ...] | None, verified: bool | None) -> str:
    if chain is None:
        return "redirection-not-needed-no-http"
    if len(chain) == 1:
        return "redirection-missing"
    first, second, last = urlsplit(chain[0]), urlsplit(chain[1]), urlsplit(chain[-1])
    if last.scheme != "https":
        return "redirection-not-to-https"
    if verified is False and last.hostname == first.hostname:
        # Only our own HTTPS answer was verified; an off-scope destination never is.
        return "redirection-invalid-cert"
    if second.scheme == "http":
        return "redirection-not-to-https-on-initial-redirection"
    if first.hostname != second.hostname:
        return "redirection-off-host-from-http"
    return "redirection-to-https"


def _referrer(answer: Answer, meta: Sequence[Header]) -> str:
    # The Observatory's reading, which counts a Referrer-Policy http-equiv (no browser does).
    tags = [h.value for h in meta if h.name in ("referrer-policy", "referrer")]
    values = [*answer.values("referrer-policy"), *tags]
    if not values:
        return "referrer-policy-not-implemented"
    tokens = [t.strip().lower() for v in values for t in v.split(",")]
    known = [t for t in tokens if t in _PRIVATE_REFERRER or t in _UNSAFE_REFERRER]
    if not known:
        return "referrer-policy-header-invalid"
    return "referrer-policy-private" if known[-1] in _PRIVATE_REFERRER else "referrer-policy-unsafe"


def _nosniff(answer: Answer) -> str:
    # Read as a browser and the rules read it (the first value of the lines joined and split),
    # not as the Observatory's Node client does: the grade is never better than what the
    # web.headers rule concludes, and `nosniff, nosniff` (two layers adding it) is nosniff.
    if not answer.values("x-content-type-options"):
        return "x-content-type-options-not-implemented"
    return "x-content-type-options-nosniff" if answer.nosniff else "x-content-type-options-header-invalid"


def _frame_options(answer: Answer, header_csp: Csp) -> str:
    # Each passing result only where the web.headers rule (a browser's reading) finds framing
    # refused: `frame-ancestors *` is no CSP protection, and ALLOW-FROM, which browsers no
    # longer read, leaves the page open to any site (the Observatory passes both).
    protected = frame_protection(answer) is True
    if "frame-ancestors" in header_csp:
        return "x-frame-options-implemented-via-csp" if protected else "x-frame-options-header-invalid"
    if not answer.values("x-frame-options"):
        return "x-frame-options-not-implemented"
    if protected and answer.frame_options_deny:
        return "x-frame-options-sameorigin-or-deny"
    return "x-frame-options-header-invalid"


def frame_protection(answer: Answer) -> object:
    """True when no other site may frame the page, else what was seen (None: nothing). With a
    frame-ancestors directive in the CSP header a browser ignores X-Frame-Options, so
    `frame-ancestors *` with `DENY` is no protection; every policy is enforced, so one that
    names only some ancestors is enough."""
    ancestors: list[list[str]] = []
    for value in answer.values("content-security-policy"):
        for policy in value.split(","):
            directives = [d.split() for d in policy.split(";") if d.split()]
            # A directive repeated in one policy: the browser keeps the first.
            found = next((d[1:] for d in directives if d[0].lower() == "frame-ancestors"), None)
            if found is not None:
                ancestors.append(found)
    if ancestors:
        if any(not any(_ANY_SITE.fullmatch(s.lower()) for s in sources) for sources in ancestors):
            return True
        return "; ".join("frame-ancestors " + " ".join(sources) for sources in ancestors)
    if answer.frame_options_deny:
        return True
    return ", ".join(answer.values("x-frame-options")) or None


def _cors(cors: Cors) -> str:
    allowed = (cors.allow_origin or "")[:256].strip().lower()
    if not allowed:
        return "cross-origin-resource-sharing-not-implemented"
    if allowed == "*":
        return "cross-origin-resource-sharing-implemented-with-public-access"
    credentials = (cors.allow_credentials or "").strip().lower() == "true"
    if allowed == cors.origin.lower() and credentials:
        # It echoes whatever origin asks, and lets it send the visitor's cookies.
        return "cross-origin-resource-sharing-implemented-with-universal-access"
    return "cross-origin-resource-sharing-implemented-with-restricted-access"


def _corp(answer: Answer, meta: Sequence[Header]) -> str:
    value = answer.first("cross-origin-resource-policy")
    if value is None:
        equiv = _meta(meta, "cross-origin-resource-policy")
        value = equiv[-1].value if equiv else None
    if value is None:
        return "corp-not-implemented"
    results = {
        "same-site": "corp-implemented-with-same-site",
        "same-origin": "corp-implemented-with-same-origin",
        "cross-origin": "corp-implemented-with-cross-origin",
    }
    return results.get(value[:256].strip().lower(), "corp-header-invalid")


def _sri(data: WebData, base: str) -> str:
    page = data.page
    if page is None or not page.html:
        return "sri-not-implemented-response-not-html"
    if not page.scripts:
        return "sri-not-implemented-but-no-scripts-loaded"
    own = urlsplit(base).hostname
    external = [s for s in page.scripts if urlsplit(urljoin(base, s.src)).hostname != own]
    if not external:
        if any(s.integrity for s in page.scripts):
            return "sri-implemented-and-all-scripts-loaded-securely"
        return "sri-not-implemented-but-all-scripts-loaded-from-secure-origin"
    # A protocol-relative src ("//cdn/...") counts as insecure, as the Observatory says.
    secure = all(urlsplit(s.src).scheme == "https" for s in external)
    if all(s.integrity for s in external):
        if secure:
            return "sri-implemented-and-external-scripts-loaded-securely"
        return "sri-implemented-but-external-scripts-not-loaded-securely"
    if secure:
        return "sri-not-implemented-but-external-scripts-loaded-securely"
    return "sri-not-implemented-and-external-scripts-not-loaded-securely"


def _meta(meta: Sequence[Header], name: str) -> list[Header]:
    return [h for h in meta if h.name == name]
