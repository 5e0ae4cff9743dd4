"""The web controls: pure judgements over one endpoint's `WebData`, a rule's params and the target."""

import re
from collections.abc import Iterable, Sequence
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field

from attt.checks.web.exposed import exposed_paths
from attt.checks.web.models import CORS_STEP, REDIRECTS_STEP, Answer, Cookie, WebData, resolve_location
from attt.checks.web.observatory import ObservatoryGrade, frame_protection, grade, hsts_max_age
from attt.checks.web.trust import hsts_ignored
from attt.scanner.models.base import Text
from attt.scanner.models.target import Target
from attt.scanner.plugin import Controls, NoParams, Params, Verdict

CONTROLS = Controls("web")

SecurityHeader = Literal[
    "content-security-policy", "x-content-type-options", "frame-protection", "referrer-policy", "hsts"
]
SECURITY_HEADERS: tuple[SecurityHeader, ...] = (
    "content-security-policy",
    "x-content-type-options",
    "frame-protection",
    "referrer-policy",
    "hsts",
)
_UNSAFE_REFERRER = frozenset(
    {"unsafe-url", "no-referrer-when-downgrade", "origin", "origin-when-cross-origin"}
)
_VALID_REFERRER = _UNSAFE_REFERRER | {
    "no-referrer",
    "same-origin",
    "strict-origin",
    "strict-origin-when-cross-origin",
}
_LEGACY_REFERRER = {
    "never": "no-referrer",
    "default": "strict-origin-when-cross-origin",
    "always": "unsafe-url",
    "origin-when-crossorigin": "origin-when-cross-origin",
}
"""Keywords `<meta name="referrer">` still takes (HTML's meta referrer algorithm); the header
takes none of them."""
_VERSION = re.compile(r"\d+\.\d+|/\s*v?\d|[a-z]\s+v?\d+(\s|$)", re.IGNORECASE)
"""A version outside comments: a dotted number (`2.4`, a bare `X-AspNet-Version`), a product
token's version (RFC 9110 `product = token ["/" product-version]`: `Apache/2`), or a name and its
major version (`Drupal 10`)."""
_RELEASE = re.compile(r"\d+\.\d+")
"""A version inside a comment: a dotted release number only (`Jetty(9.4.44.v20210927)`)."""


class HeadersParams(Params):
    require: tuple[SecurityHeader, ...] = SECURITY_HEADERS
    hsts_min_age: int = Field(default=15_552_000, ge=0)
    """Seconds; the Observatory's six months by default, Mozilla's TLS guideline asks two years."""


class CookiesParams(Params):
    all_cookies: bool = False
    """Judge every cookie, not only those whose name marks a session, login or CSRF token."""


class ExposedParams(Params):
    ignore: tuple[str, ...] = ()
    """Ids from data/exposed-paths.json this rule does not judge."""


@CONTROLS.control("web.https_redirect", NoParams)
def https_redirect(data: WebData, params: NoParams, target: Target) -> Verdict:
    """Plain HTTP answers only with a redirect to HTTPS on the same name.

    Anything else lets a visitor (and their password) stay on cleartext, and a redirect to
    another name first means the site's HSTS header is never seen on the way in."""
    if data.scheme == "https":
        return Verdict.not_applicable("an HTTPS endpoint", vi="đây là điểm cuối HTTPS")
    location = data.answer.location
    status = data.answer.status
    if location is None:
        return Verdict.failed(
            f"plain HTTP answers {status} without redirecting to HTTPS",
            observed={"status": status},
            expected="3xx to https://" + data.name,
            vi=f"HTTP không mã hóa trả lời {status} mà không chuyển hướng sang HTTPS",
        )
    expected = "3xx to https://" + data.name
    if (refused := data.answer.refused_redirect) is not None:
        return Verdict.failed(
            f"plain HTTP answers {status} with {refused}: no visitor reaches HTTPS",
            observed={"status": status, "location": list(data.answer.values("location"))},
            expected=expected,
            vi=f"HTTP không mã hóa trả lời {status} với hai trường tiêu đề Location khác nhau, "
            "trình duyệt từ chối chuyển hướng: không ai tới được HTTPS",
        )
    first = resolve_location(data.answer.url, location)
    if first is None:
        return Verdict.failed(
            f"plain HTTP redirects ({status}) to a Location that is not a valid URL: {location}",
            observed={"status": status, "location": location},
            expected=expected,
            vi=f"HTTP không mã hóa chuyển hướng ({status}) tới Location không phải URL hợp lệ: {location}",
        )
    parts = urlsplit(first)
    observed = {"status": status, "location": first, "chain": [a.url for a in data.redirects]}
    same_name = (parts.hostname or "").lower() == data.name.lower()
    if parts.scheme == "https" and same_name and all(a.url != first for a in data.redirects):
        return _https_not_reached(data, first, observed, expected)
    if parts.scheme == "https" and same_name:
        return Verdict.passed(
            f"plain HTTP redirects ({status}) to {first}",
            observed,
            expected,
            vi=f"HTTP không mã hóa chuyển hướng ({status}) sang {first}",
        )
    if parts.scheme == "https":
        return Verdict.failed(
            f"plain HTTP redirects to HTTPS on another name ({first}): the site's HSTS is never set",
            observed,
            expected,
            vi=f"HTTP chuyển hướng sang HTTPS ở tên miền khác ({first}): HSTS của trang không được thiết lập",
        )
    return Verdict.failed(
        f"plain HTTP redirects to {first}, not to HTTPS",
        observed,
        expected,
        vi=f"HTTP chuyển hướng sang {first}, không phải HTTPS",
    )


def _https_not_reached(data: WebData, first: str, observed: dict[str, object], expected: str) -> Verdict:
    """The redirect names HTTPS on the same name, but no answer came from there. A refusal is
    observed: the visitor the redirect sends there lands on a closed port and never on HTTPS,
    a `fail`. Anything else (a timeout, the request budget) taught nothing about the target:
    the redirect is not known to work, an `error`."""
    if data.redirect_refused == first:
        return Verdict.failed(
            f"plain HTTP redirects to {first}, which refused the connection: no visitor reaches HTTPS",
            observed,
            expected,
            vi=f"HTTP chuyển hướng sang {first} nhưng kết nối bị từ chối: không ai tới được HTTPS",
        )
    why = data.step_errors.get(REDIRECTS_STEP, "not requested")
    return Verdict.cannot_judge(
        f"plain HTTP redirects to {first}, which was not reached ({why})",
        observed,
        expected,
        vi=f"HTTP chuyển hướng sang {first} nhưng chưa tới được địa chỉ đó ({why})",
    )


@CONTROLS.control("web.https_required", NoParams)
def https_required(data: WebData, params: NoParams, target: Target) -> Verdict:
    """A host that serves the web has a working HTTPS endpoint.

    Working means a TLS handshake and an HTTP answer. An HTTP-only portal sends every form,
    cookie and password in cleartext. A host counts as serving the web by a declared http
    service, a declared TLS service on a web port, an open web port or a portal/web tag; an
    HTTPS port that could not be tried is an `error`, never a pass or a fail."""
    site = data.site
    working = list(site.https_ok)
    if working:
        listed = _list(working)
        return Verdict.passed(
            f"HTTPS answers on port {listed}",
            observed={"https": working},
            expected="HTTPS",
            vi=f"HTTPS trả lời trên cổng {listed}",
        )
    observed = {
        "serves_web": list(site.serves_web),
        "refused": list(site.https_refused),
        "failed": {str(k): v for k, v in site.https_failed.items()},
        "not_checked": list(site.https_unknown),
    }
    if site.https_unknown:
        listed = _list(site.https_unknown)
        return Verdict.cannot_judge(
            f"HTTPS on port {listed} could not be checked (time or request budget ran out)",
            observed,
            "HTTPS",
            vi=f"chưa kiểm tra được HTTPS trên cổng {listed} (hết thời gian hoặc hết số yêu cầu cho phép)",
        )
    why = "; ".join(
        [*(f"{p} refused" for p in site.https_refused), *(f"{p}: {r}" for p, r in site.https_failed.items())]
    )
    return Verdict.failed(
        f"serves the web without a working HTTPS endpoint ({why or 'no HTTPS port'})",
        observed,
        "HTTPS",
        vi=f"phục vụ web nhưng không có HTTPS hoạt động ({why or 'không có cổng HTTPS'})",
    )


@CONTROLS.control("web.headers", HeadersParams, needs=(REDIRECTS_STEP, CORS_STEP))
def headers(data: WebData, params: HeadersParams, target: Target) -> Verdict:
    """The HTTPS answer sends the security headers the rule requires.

    Content-Security-Policy, X-Content-Type-Options: nosniff, frame protection (X-Frame-Options
    or CSP frame-ancestors), a Referrer-Policy that does not leak URLs, and HSTS of at least
    `hsts_min_age`: each closes a class of attack a browser would otherwise allow. The grade the
    MDN HTTP Observatory's published scoring gives the same answer is shown next to the verdict.

    HSTS counts only where browsers keep it (RFC 6797 8.1, `checks/web/trust.py`): sent with a
    certificate or handshake a browser refuses (an untrusted chain, expired, another name), it
    is ignored, a `fail` that says why; where whether browsers accept the certificate was not
    established (the trust anchors unreadable, the site reached by an IP address), `error`,
    unless another header fails. A province's own CA counts as trusted once declared in
    `settings.web.trust_anchors`."""
    if data.scheme == "http":
        return Verdict.not_applicable(
            "judged on the HTTPS answer (web.https_required covers a site without one)",
            vi="được đánh giá trên câu trả lời HTTPS (web.https_required xét trang không có HTTPS)",
        )
    answer = data.redirects[-1] if data.redirects else data.answer
    found = _security_headers(data, answer, params.hsts_min_age)
    # A sound HSTS header counts only if browsers keep it: not when the certificate it came
    # with is one they refuse (RFC 6797 8.1). No other header depends on the certificate.
    ignored = hsts_ignored(data, answer) if "hsts" in params.require and found["hsts"] is True else None
    if ignored is not None:
        found["hsts"] = ignored.why.en
    unknown = ignored is not None and not ignored.observed
    missing = [h for h in params.require if found[h] is not True and not (h == "hsts" and unknown)]
    rating = grade(data)
    note = _grade_note(rating)
    off_scope = data.off_scope_location
    where = Text(
        en=f" on {answer.url}" + (f" (redirect to {off_scope} not followed)" if off_scope else ""),
        vi=f" trên {answer.url}" + (f" (không theo chuyển hướng tới {off_scope})" if off_scope else ""),
    )
    observed = {
        "url": answer.url,
        "headers": {h: found[h] for h in params.require},
        "observatory": rating.model_dump(),
    }
    expected = {"present": list(params.require), "hsts_min_age": params.hsts_min_age}
    hsts = Text(en="", vi="")
    if ignored is not None:
        hsts = Text(en=f"; HSTS {ignored.why.en}", vi=f"; HSTS: {ignored.why.vi}")
    if missing:
        listed = ", ".join(missing)
        return Verdict.failed(
            f"missing or weak{where.en}: {listed}{hsts.en}; {note.en}",
            observed,
            expected,
            vi=f"thiếu hoặc cấu hình yếu{where.vi}: {listed}{hsts.vi}; {note.vi}",
        )
    if unknown:
        return Verdict.cannot_judge(
            f"the other required security headers are sent{where.en}{hsts.en}; {note.en}",
            observed,
            expected,
            vi=f"các trường tiêu đề bảo mật bắt buộc khác đã có{where.vi}{hsts.vi}; {note.vi}",
        )
    return Verdict.passed(
        f"all required security headers sent{where.en}; {note.en}",
        observed,
        expected,
        vi=f"đủ các trường tiêu đề bảo mật bắt buộc{where.vi}; {note.vi}",
    )


@CONTROLS.control("web.cookies", CookiesParams, needs=(REDIRECTS_STEP,))
def cookies(data: WebData, params: CookiesParams, target: Target) -> Verdict:
    """Session cookies carry Secure, HttpOnly and a valid SameSite.

    A session cookie is one whose name holds sess, sid, login, auth, token, csrf or xsrf, or
    one a framework names its own way (ASP.NET Core's `.AspNetCore.Antiforgery.<id>`,
    WordPress's `wordpress_logged_in_<hash>`). Without
    Secure it can be read off the wire, without HttpOnly stolen by a script, without SameSite
    ridden by another site."""
    judged = [c for c in data.cookies if params.all_cookies or c.session]
    if not judged:
        kind = "cookie" if params.all_cookies else "session cookie"
        kind_vi = "cookie" if params.all_cookies else "cookie phiên"
        return Verdict.not_applicable(
            f"no {kind} set by the answers seen", vi=f"các câu trả lời không đặt {kind_vi} nào"
        )
    problems = {c.name: flaws for c in judged if (flaws := _cookie_flaws(c))}
    observed = [c.model_dump() for c in judged]
    expected = "Secure; HttpOnly; SameSite=Lax|Strict"
    if problems:
        listed = "; ".join(f"{name}: {', '.join(flaws)}" for name, flaws in problems.items())
        return Verdict.failed(
            f"cookies without protection: {listed}",
            observed,
            expected,
            vi=f"cookie thiếu thuộc tính bảo vệ: {listed}",
        )
    names = ", ".join(c.name for c in judged)
    return Verdict.passed(
        f"Secure, HttpOnly and SameSite on: {names}",
        observed,
        expected,
        vi=f"có Secure, HttpOnly và SameSite: {names}",
    )


@CONTROLS.control("web.version_disclosure", NoParams, needs=(REDIRECTS_STEP,))
def version_disclosure(data: WebData, params: NoParams, target: Target) -> Verdict:
    """No answer announces a software version.

    Looked for in Server, X-Powered-By, X-AspNet-Version, X-AspNetMvc-Version, X-Generator, the
    headers Liferay, Exchange, SharePoint, Jenkins and mod_pagespeed announce themselves in, and
    the generator meta tag: a version tells an attacker which published exploits to try first.
    A version is a product's (`nginx/1.25.3`) or a dotted release number; a CDN's node id in a
    comment (`ECS (dcb/7F84)`) is none."""
    disclosed = [d for d in data.disclosures if discloses_version(d.value)]
    observed = [d.model_dump() for d in data.disclosures]
    if disclosed:
        listed = "; ".join(f"{d.source.split(':', 1)[1]}: {d.value}" for d in disclosed)
        return Verdict.failed(
            f"software versions announced: {listed}",
            observed,
            "no version",
            vi=f"phiên bản phần mềm bị công bố: {listed}",
        )
    return Verdict.passed(
        "no software version announced", observed, "no version", vi="không công bố phiên bản phần mềm"
    )


@CONTROLS.control("web.exposed_files", ExposedParams)
def exposed_files(data: WebData, params: ExposedParams, target: Target) -> Verdict:
    """None of the listed paths a public site must never serve is served.

    The list is data/exposed-paths.json: .git and .svn directories, .env files, server-status,
    phpinfo, backup archives, directory listings. Each is confirmed by what the body holds, so a
    portal answering 200 to everything neither passes nor fails by it."""
    if data.scheme == "http" and not data.serves_content:
        return Verdict.not_applicable(
            "plain HTTP only redirects; the files are checked where the site is served",
            vi="HTTP chỉ chuyển hướng; các tệp được kiểm tra nơi trang thực sự phục vụ",
        )
    known = exposed_paths()
    served = [p for p in data.paths if p.served and p.id not in params.ignore]
    observed = [p.model_dump() for p in data.paths if p.served or p.error]
    if served:
        listed = "; ".join(f"{p.path} ({known.what(p.id).en})" for p in served)
        listed_vi = "; ".join(f"{p.path} ({known.what(p.id).vi})" for p in served)
        return Verdict.failed(
            f"served to anyone: {listed}",
            observed,
            "not served",
            vi=f"đang công khai cho bất kỳ ai: {listed_vi}",
        )
    unknown = [
        i for i in (*data.paths_skipped, *(p.id for p in data.paths if p.error)) if i not in params.ignore
    ]
    if unknown:
        listed = ", ".join(unknown)
        return Verdict.cannot_judge(
            f"not checked (requests failed or the budget ran out): {listed}",
            observed,
            "not served",
            vi=f"chưa kiểm tra được (yêu cầu lỗi hoặc hết số yêu cầu cho phép): {listed}",
        )
    checked = len([p for p in data.paths if p.id not in params.ignore])
    tail = " (the site answers 200 to any path: each was ruled out by its content)" if data.catch_all else ""
    tail_vi = (
        " (trang trả lời 200 cho mọi đường dẫn: từng tệp được loại trừ theo nội dung)"
        if data.catch_all
        else ""
    )
    return Verdict.passed(
        f"none of {checked} listed paths is served{tail}",
        observed,
        "not served",
        vi=f"không đường dẫn nào trong {checked} đường dẫn bị công khai{tail_vi}",
    )


# --- helpers --------------------------------------------------------------------------------


def _security_headers(data: WebData, answer: Answer, hsts_min_age: int) -> dict[SecurityHeader, object]:
    """Each required header: True when present and sound, else what was seen (None: absent)."""
    meta = data.page.meta if data.page is not None else ()
    # An empty value (or one of separators only) is no policy at all.
    csp = [
        v
        for v in (
            *answer.values("content-security-policy"),
            *(m.value for m in meta if m.name == "content-security-policy"),
        )
        if v.strip(" \t;,")
    ]
    referrer = [*answer.values("referrer-policy"), *(m.value for m in meta if m.name == "referrer")]
    policy = _referrer_policy(
        answer.values("referrer-policy"), [m.value for m in meta if m.name == "referrer"]
    )
    # Sent twice, only the first header counts (RFC 6797 8.1; Chromium and Firefox do so).
    hsts = answer.first("strict-transport-security")
    if urlsplit(answer.url).scheme != "https":
        hsts = "not over HTTPS (a browser ignores it there)"
    return {
        "content-security-policy": bool(csp) or None,
        "x-content-type-options": answer.nosniff or answer.first("x-content-type-options"),
        "frame-protection": frame_protection(answer),
        "referrer-policy": True
        if policy is not None and policy not in _UNSAFE_REFERRER
        else (referrer[-1] if referrer else None),
        "hsts": True if hsts is not None and (hsts_max_age(hsts) or -1) >= hsts_min_age else hsts,
    }


def discloses_version(value: str) -> bool:
    """The value names a software version: a product token with a version (`nginx/1.25.3`,
    `Apache/2.4.57 (Debian)`, `PHP/8.1.2`) or a dotted release number anywhere.

    A comment in parentheses (RFC 9110 section 5.6.5) is free text: a CDN's node id there
    (`ECS (dcb/7F84)`) is no version, so a slash or digit inside one does not count; a dotted
    release number does (`Apache (Ubuntu/22.04)`, `Jetty(9.4.44.v20210927)`), because a
    distribution's release pins the versions of the packages it ships (Ubuntu 22.04's Apache is
    2.4.52), which tells an attacker as much as the product's own version."""
    parts: tuple[list[str], list[str]] = ([], [])  # outside comments, inside them
    depth = 0
    pair = False
    for char in value:
        if pair:
            pair = False
        elif char == "\\" and depth:
            pair = True
            continue
        elif char == "(":
            depth += 1
            char = " "
        elif char == ")" and depth:
            depth -= 1
            char = " "
        parts[depth > 0].append(char)
    outside, inside = ("".join(p) for p in parts)
    return bool(_VERSION.search(outside) or _RELEASE.search(inside))


def _referrer_policy(header: Sequence[str], meta: Sequence[str]) -> str | None:
    """The policy a browser applies: the header's last policy token (Referrer Policy, "parse a
    referrer policy from a Referrer-Policy header"), then each `<meta name="referrer">` whose
    value, legacy keywords mapped, is a policy (HTML's meta referrer algorithm); None: no
    policy set. A `<meta http-equiv="Referrer-Policy">` is read by no browser."""
    tokens = [t.strip().lower() for v in header for t in v.split(",")]
    policy = next((t for t in reversed(tokens) if t in _VALID_REFERRER), None)
    for value in meta:
        value = value.lower()  # HTML neither strips it nor splits it at commas
        value = _LEGACY_REFERRER.get(value, value)
        policy = value if value in _VALID_REFERRER else policy
    return policy


def _cookie_flaws(cookie: Cookie) -> list[str]:
    flaws = []
    if cookie.url.startswith("http:"):
        flaws.append("set over plain HTTP")
    elif not cookie.secure:
        flaws.append("no Secure")
    if not cookie.http_only:
        flaws.append("no HttpOnly")
    same_site = (cookie.same_site or "").lower()
    if cookie.same_site is None:
        flaws.append("no SameSite")
    elif same_site not in ("lax", "strict") and not (same_site == "none" and cookie.secure):
        flaws.append(f"SameSite={cookie.same_site}")
    return flaws


def _grade_note(rating: ObservatoryGrade) -> Text:
    caveat = f", {', '.join(rating.not_evaluated)} not evaluated" if rating.not_evaluated else ""
    caveat_vi = f", chưa đánh giá {', '.join(rating.not_evaluated)}" if rating.not_evaluated else ""
    return Text(
        en=f"Observatory-style grade {rating.grade} ({rating.score}/100, "
        f"scoring v{rating.algorithm_version}{caveat})",
        vi=f"xếp hạng theo cách chấm của Observatory: {rating.grade} ({rating.score}/100, "
        f"phiên bản {rating.algorithm_version}{caveat_vi})",
    )


def _list(items: Iterable[int]) -> str:
    return ", ".join(str(i) for i in items)
