"""Whether a browser keeps the HSTS header of an HTTPS answer, from how its connection went.

RFC 6797 section 8.1: a user agent processes Strict-Transport-Security only when it arrived
over a secure transport with no certificate error ("no underlying secure transport errors or
warnings", section 8.4: an untrusted chain, an expired certificate, a name it does not carry);
otherwise it MUST ignore the header, and the site is not a Known HSTS Host. Section 8.1.1: a
host reached by an IP address is never noted as one. So a sound header proves nothing until
the certificate it came with is one browsers accept: this module says which of the three a
judge faces, pure, from the facts the probe recorded.

Only HSTS depends on it. CSP, X-Content-Type-Options, X-Frame-Options and Referrer-Policy are
applied to whatever page a browser renders, a visitor who clicked through a warning included.
"""

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from attt.checks.web.models import Answer, WebData, is_address, url_origin
from attt.scanner.models.base import Text

_CHAIN = re.compile(r"issuer|self[- ]signed|first certificate|chain", re.IGNORECASE)
"""OpenSSL's words for a chain that ends at no trusted CA (unable to get local issuer
certificate, self-signed certificate (in certificate chain), unable to verify the first
certificate): what declaring a trust anchor can change, unlike an expiry or another name."""
SETTING = "settings.web.trust_anchors"
"""Where a policy declares the CAs a browser of the province trusts beyond the system store."""


@dataclass(frozen=True)
class HstsIgnored:
    """A browser ignores the HSTS header (`observed`), or may (whether it does is unknown)."""

    observed: bool
    """True: the refusal was observed (a `fail`); False: it could not be established (`error`)."""
    why: Text


def hsts_ignored(data: WebData, answer: Answer) -> HstsIgnored | None:
    """Why a browser ignores (or may ignore) the HSTS header of `answer`, an HTTPS answer of
    the endpoint `data`; None when the connection it came over is one a browser accepts.

    The endpoint's own answers (same scheme, name and port) came over its connection, which
    `data.certificate_verified` describes; a redirect's answer from another origin carries its
    own (`Answer.certificate_verified`)."""
    host = urlsplit(answer.url).hostname or ""
    if is_address(host):
        return HstsIgnored(
            False,
            Text(
                en=f"not known to be in force: the site was reached by its address {host} (the inventory"
                " registers no host name), for which browsers keep no HSTS (RFC 6797 8.1.1), and the"
                " certificate of the name visitors use was not checked; register that name as the"
                " host's hostname",
                vi=f"chưa xác định được có hiệu lực: trang được truy cập bằng địa chỉ {host} (danh mục"
                " không khai báo tên máy chủ), mà trình duyệt không ghi nhận HSTS cho địa chỉ IP (RFC"
                " 6797 8.1.1), và chứng thư số của tên miền người dùng truy cập chưa được kiểm tra; hãy"
                " khai báo tên đó ở trường hostname",
            ),
        )
    if url_origin(answer.url) == url_origin(data.url):
        verified, refusal = data.certificate_verified, data.certificate_refusal
        unknown = data.certificate_unknown or "no browser's handshake was recorded"
    else:
        verified, refusal = answer.certificate_verified, answer.certificate_refusal
        scheme, name, port = url_origin(answer.url)
        tried = f"no browser's handshake with {scheme}://{name}:{port} was tried"
        unknown = answer.certificate_refusal or data.certificate_unknown or tried
    if verified is True:
        return None
    if verified is False:
        why = refusal or "a browser's handshake failed"
        hint = Text(en="", vi="")
        if _CHAIN.search(why):
            hint = Text(
                en=f"; if the province's browsers trust its CA, declare that CA in {SETTING}",
                vi=f"; nếu trình duyệt trong tỉnh tin cậy CA này, hãy khai báo CA đó ở {SETTING}",
            )
        return HstsIgnored(
            True,
            Text(
                en="not in force: browsers ignore it when it comes with a certificate or handshake they"
                f" refuse (RFC 6797 8.1), and they refuse this one: {why}{hint.en}",
                vi="không có hiệu lực: trình duyệt bỏ qua HSTS đi kèm chứng thư số hoặc bắt tay TLS mà"
                f" chúng từ chối (RFC 6797 8.1), và chúng từ chối trường hợp này: {why}{hint.vi}",
            ),
        )
    return HstsIgnored(
        False,
        Text(
            en="not known to be in force: whether browsers accept the certificate it came with was not"
            f" established: {unknown}",
            vi="chưa xác định được có hiệu lực: chưa xác định được trình duyệt có chấp nhận chứng thư"
            f" số đi kèm hay không: {unknown}",
        ),
    )
