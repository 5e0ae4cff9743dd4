"""`WebData` for pure tests: an endpoint's observation, stating only what a test is about."""

from collections.abc import Mapping, Sequence
from typing import Any

from attt.checks.web.models import Answer, Cookie, Header, Page, PathResult, Scheme, SiteFacts, WebData

NAME = "portal.attt.test"


def answer(
    url: str = f"https://{NAME}/",
    status: int = 200,
    headers: Mapping[str, str] | Sequence[tuple[str, str]] = (),
) -> Answer:
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    return Answer(url=url, status=status, headers=tuple(Header(name=k.lower(), value=v) for k, v in pairs))


def cookie(name: str, *flags: str, same_site: str | None = None, url: str = f"https://{NAME}/") -> Cookie:
    return Cookie(
        name=name, secure="secure" in flags, http_only="httponly" in flags, same_site=same_site, url=url
    )


def site(**overrides: Any) -> SiteFacts:
    values: dict[str, Any] = {"serves_web": ("tag portal",), "https_ok": (443,)}
    return SiteFacts.model_validate(values | overrides)


def web_data(
    scheme: Scheme = "https",
    headers: Mapping[str, str] | Sequence[tuple[str, str]] = (),
    status: int = 200,
    *,
    chain: tuple[str, ...] | None = (f"http://{NAME}/", f"https://{NAME}/"),
    page: Page | None = None,
    paths: Sequence[PathResult] = (),
    **overrides: Any,
) -> WebData:
    url = f"{scheme}://{NAME}/"
    values: dict[str, Any] = {
        "scheme": scheme,
        "name": NAME,
        "url": url,
        "answer": answer(url, status, headers),
        "certificate_verified": True if scheme == "https" else None,
        "page": page,
        "paths": tuple(paths),
        "site": overrides.pop("site", None) or site(http_chain=chain),
    }
    return WebData.model_validate(values | overrides)
