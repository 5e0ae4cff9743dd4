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

from dataclasses import dataclass
from urllib.parse import urlsplit

from attt.checks.web.models import Answer, WebData, is_address, url_origin
from attt.scanner.models.base import Text

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
    the endpoint `data`; None when the connection it came over is one a browser accepts."""
    parts = urlsplit(answer.url)
    host = parts.hostname or ""
    if is_address(host):
        return HstsIgnored(
            False,
            Text(
                en=f"reached by its address {host} (the inventory registers no host name): browsers keep"
                " no HSTS for an IP address (RFC 6797 8.1.1), and the certificate of the name visitors"
                " use was not checked; register that name as the host's hostname",
                vi=f"được truy cập bằng địa chỉ {host} (danh mục không khai báo tên máy chủ): trình duyệt"
                " không ghi nhận HSTS cho địa chỉ IP (RFC 6797 8.1.1), và chứng thư số của tên miền người"
                " dùng truy cập chưa được kiểm tra; hãy khai báo tên đó ở trường hostname",
            ),
        )
    if url_origin(answer.url) == url_origin(data.url):
        verified, refusal = data.certificate_verified, data.certificate_refusal
        unknown = data.certificate_unknown or "no browser's handshake was recorded"
    else:
        verified, refusal = answer.certificate_verified, answer.certificate_refusal
        scheme, name, port = url_origin(answer.url)
        tried = f"no browser's handshake with {scheme}://{name}:{port} was tried"
        unknown = data.certificate_unknown or tried
    if verified is True:
        return None
    if verified is False:
        why = refusal or "a browser's handshake failed"
        return HstsIgnored(
            True,
            Text(
                en=f"browsers ignore it, sent with a certificate or handshake they refuse (RFC 6797"
                f" 8.1): {why}; a CA that the province's browsers trust is declared in {SETTING}",
                vi=f"trình duyệt bỏ qua vì nó được gửi kèm chứng thư số hoặc bắt tay TLS mà trình duyệt"
                f" từ chối (RFC 6797 8.1): {why}; CA mà trình duyệt trong tỉnh tin cậy được khai báo ở"
                f" {SETTING}",
            ),
        )
    return HstsIgnored(
        False,
        Text(
            en=f"whether browsers accept the certificate it came with was not established: {unknown}",
            vi=f"chưa xác định được trình duyệt có chấp nhận chứng thư số đi kèm hay không: {unknown}",
        ),
    )
