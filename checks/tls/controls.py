"""The tls controls: pure judgements over `TlsData`, a rule's params and the target."""

import functools
import re
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import date, datetime
from typing import Literal, TypeVar

from pydantic import Field

from attt.checks.tls.models import (
    ALL_VULNERABILITIES,
    CERTIFICATE_STEP,
    GROUPS_STEP,
    HTTP_STEP,
    PROTOCOLS,
    SUITE_STEPS,
    VULNERABILITY_STEPS,
    Certificate,
    Protocol,
    StartTls,
    TlsData,
    VulnerabilityName,
    static_key_suites,
)
from attt.checks.tls.names import wildcard_over_suffix
from attt.checks.tls.profile import MozillaProfile, ProfileName, mozilla_guidelines
from attt.scanner.models.base import Text
from attt.scanner.models.target import Target
from attt.scanner.plugin import Controls, NoParams, Params, Verdict

CONTROLS = Controls("tls")
P = TypeVar("P")

SuiteFamily = Literal["NULL", "EXPORT", "anon", "RC4", "DES", "3DES", "MD5", "static_rsa", "CBC"]
_SINGLE_DES = re.compile(r"_DES(?:40)?_")
_FAMILY_TESTS: dict[SuiteFamily, Callable[[str], bool]] = {
    "NULL": lambda s: "WITH_NULL" in s or s.startswith("TLS_NULL_"),
    "EXPORT": lambda s: "EXPORT" in s,
    "anon": lambda s: "_anon_" in s,
    "RC4": lambda s: "RC4" in s,
    "3DES": lambda s: "3DES" in s or "EDE3" in s,
    "DES": lambda s: bool(_SINGLE_DES.search(s)) and "EDE3" not in s,
    "MD5": lambda s: s.endswith("_MD5"),
    # TLS_RSA_* suites, and every SSLv2 suite, carry the session key encrypted to the server's
    # RSA key: no forward secrecy, and the ROBOT family of oracles.
    "static_rsa": lambda s: s.startswith(("TLS_RSA_", "SSL_CK_")),
    "CBC": lambda s: "_CBC_" in s,
}


def suite_families(suite: str) -> tuple[SuiteFamily, ...]:
    """The weak families an IANA cipher suite name belongs to."""
    return tuple(family for family, test in _FAMILY_TESTS.items() if test(suite))


def _accepted(data: TlsData) -> list[tuple[Protocol, str]]:
    return [(protocol, suite) for protocol, suites in data.cipher_suites.items() for suite in suites]


def _plain_only(data: TlsData) -> Verdict | None:
    """A service that refused the TLS upgrade has no TLS to judge; `tls.starttls_offered` is
    the rule that fails it."""
    if not data.starttls_refused:
        return None
    return Verdict.not_applicable(
        "the service refused the upgrade to TLS, so it has no TLS configuration to judge",
        vi="dịch vụ từ chối nâng cấp lên TLS nên không có cấu hình TLS để đánh giá",
    )


def _no_protocols(data: TlsData) -> Verdict | None:
    if (plain := _plain_only(data)) is not None:
        return plain
    if data.protocols:
        return None
    return Verdict.cannot_judge(
        "the scan found no accepted protocol version",
        observed=[],
        expected="any",
        vi="lượt quét không thấy phiên bản giao thức nào được chấp nhận",
    )


OneCertificate = Callable[[TlsData, Certificate, P, Target], Verdict]
_WORST = {"fail": 0, "error": 1, "pass": 2, "not_applicable": 3}


def _every_certificate(judge: OneCertificate[P]) -> Callable[[TlsData, P, Target], Verdict]:
    """A control judging each certificate the server deploys (`certificate`, then
    `other_certificates`) with `judge`: the worst verdict stands, naming the certificate when it
    is not the first one."""

    @functools.wraps(judge)
    def control(data: TlsData, params: P, target: Target) -> Verdict:
        if isinstance(first := _certificate(data), Verdict):
            return first
        worst = judge(data, first, params, target)
        for other in data.other_certificates:
            verdict = judge(data, other, params, target)
            if _WORST[verdict.status] < _WORST[worst.status]:
                which = f"{other.key_type} ({other.subject})"
                worst = replace(
                    verdict,
                    message=f"the {which} certificate: {verdict.message}",
                    vi=f"chứng thư số {which}: {verdict.vi or verdict.message}",
                )
        return worst

    return control


def _certificate(data: TlsData) -> Certificate | Verdict:
    if (plain := _plain_only(data)) is not None:
        return plain
    if data.certificate is None:
        return Verdict.cannot_judge("no certificate seen", vi="không nhận được chứng thư số nào")
    return data.certificate


# --- tls.protocols_disabled ------------------------------------------------------------


class ProtocolsParams(Params):
    protocols: tuple[Protocol, ...] = Field(min_length=1)
    """Versions that must not be accepted."""


def _steps_of(protocols: Iterable[Protocol]) -> tuple[str, ...]:
    return tuple(SUITE_STEPS[p] for p in protocols)


ALL_SUITE_STEPS = _steps_of(PROTOCOLS)
"""Every protocol's suite step: a rule about all accepted suites needs them all."""


@CONTROLS.control(
    "tls.protocols_disabled", ProtocolsParams, needs=lambda params, _target: _steps_of(params.protocols)
)
def _protocols_disabled(data: TlsData, params: ProtocolsParams, target: Target) -> Verdict:
    """The listed protocol versions are not accepted.

    SSL 2.0 and 3.0 are broken (DROWN, POODLE) and TLS 1.0 and 1.1 are deprecated by RFC 8996:
    while a server still accepts one of them, a client that can be pushed down to it (an old
    client, or an attacker interfering with the handshake) talks over it.
    """
    if (missing := _no_protocols(data)) is not None:
        return missing
    enabled = [p for p in data.protocols if p in params.protocols]
    if enabled:
        accepted = ", ".join(enabled)
        return Verdict.failed(
            f"the endpoint accepts {accepted}",
            observed=enabled,
            expected=[],
            vi=f"máy chủ chấp nhận {accepted}",
        )
    forbidden = ", ".join(params.protocols)
    return Verdict.passed(
        f"none of {forbidden} is accepted",
        observed=list(data.protocols),
        vi=f"không phiên bản nào trong số {forbidden} được chấp nhận",
    )


# --- tls.min_version -------------------------------------------------------------------


class MinVersionParams(Params):
    version: Protocol = "TLSv1.2"
    """The oldest version that may be accepted."""


def _older_suite_steps(params: MinVersionParams, _target: Target) -> tuple[str, ...]:
    """The suite steps of the versions older than the floor: whether any of them is accepted."""
    return _steps_of(PROTOCOLS[: PROTOCOLS.index(params.version)])


@CONTROLS.control("tls.min_version", MinVersionParams, needs=_older_suite_steps)
def _min_version(data: TlsData, params: MinVersionParams, target: Target) -> Verdict:
    """No protocol older than the given version is accepted.

    A floor rather than a list, for the same reasons as `tls.protocols_disabled` (RFC 8996): the
    policy names one version and every older one, including any it forgot, is refused.
    """
    if (missing := _no_protocols(data)) is not None:
        return missing
    floor = PROTOCOLS.index(params.version)
    older = [p for p in data.protocols if PROTOCOLS.index(p) < floor]
    if older:
        listed = ", ".join(older)
        return Verdict.failed(
            f"the endpoint accepts {listed}, older than {params.version}",
            observed=list(data.protocols),
            expected=f">= {params.version}",
            vi=f"máy chủ chấp nhận {listed}, cũ hơn {params.version}",
        )
    return Verdict.passed(
        f"every accepted version is {params.version} or newer",
        observed=list(data.protocols),
        vi=f"mọi phiên bản được chấp nhận đều từ {params.version} trở lên",
    )


# --- tls.cipher_suites_forbidden -------------------------------------------------------


class SuiteFamiliesParams(Params):
    families: tuple[SuiteFamily, ...] = ("NULL", "EXPORT", "anon", "RC4", "DES", "3DES", "MD5")
    """Families no accepted suite may belong to."""


@CONTROLS.control("tls.cipher_suites_forbidden", SuiteFamiliesParams, needs=ALL_SUITE_STEPS)
def _cipher_suites_forbidden(data: TlsData, params: SuiteFamiliesParams, target: Target) -> Verdict:
    """No accepted cipher suite belongs to a forbidden family.

    NULL suites do not encrypt, anon suites do not authenticate the server (anyone in the path can
    pose as it), EXPORT suites were weakened on purpose (FREAK, Logjam), RC4 has keystream biases
    (forbidden by RFC 7465), DES is brute-forceable, 3DES has 64-bit blocks (Sweet32) and MD5 MACs
    rest on a broken hash. `static_rsa` (no forward secrecy, ROBOT) and `CBC` (padding oracles,
    Lucky13) are families a stricter policy can add.
    """
    if (missing := _no_protocols(data)) is not None:
        return missing
    bad = {
        f"{protocol} {suite}": [f for f in suite_families(suite) if f in params.families]
        for protocol, suite in _accepted(data)
    }
    offending = {name: families for name, families in bad.items() if families}
    forbidden = ", ".join(params.families)
    if offending:
        found = ", ".join(sorted({f for fs in offending.values() for f in fs}))
        return Verdict.failed(
            f"{len(offending)} accepted suite(s) in forbidden families {found}",
            observed=sorted(offending),
            expected=f"no suite of {forbidden}",
            vi=f"{len(offending)} bộ mã hóa được chấp nhận thuộc nhóm bị cấm {found}",
        )
    return Verdict.passed(
        f"no accepted suite is {forbidden}",
        vi=f"không bộ mã hóa nào được chấp nhận thuộc nhóm {forbidden}",
    )


# --- tls.forward_secrecy ---------------------------------------------------------------


@CONTROLS.control("tls.forward_secrecy", needs=ALL_SUITE_STEPS)
def _forward_secrecy(data: TlsData, params: NoParams, target: Target) -> Verdict:
    """Every accepted suite has an ephemeral key exchange.

    With a static RSA key exchange, whoever obtains the server's private key later (theft, seizure,
    a ROBOT oracle) decrypts every session recorded before; an ephemeral (EC)DHE exchange, which
    every TLS 1.3 suite has, keeps past sessions closed.
    """
    if (missing := _no_protocols(data)) is not None:
        return missing
    static = static_key_suites(data.cipher_suites)
    # Both come from `static_key_suites`; checking both fails closed on data from elsewhere.
    if static or not data.forward_secrecy:
        return Verdict.failed(
            f"{len(static)} accepted suite(s) without an ephemeral key exchange",
            observed=static,
            expected="only (EC)DHE suites and TLS 1.3",
            vi=f"{len(static)} bộ mã hóa được chấp nhận không dùng trao đổi khóa tạm thời",
        )
    return Verdict.passed(
        "every accepted suite has forward secrecy",
        vi="mọi bộ mã hóa được chấp nhận đều bảo đảm bảo mật chuyển tiếp",
    )


# --- tls.mozilla_profile ---------------------------------------------------------------


class MozillaParams(Params):
    profile: ProfileName = "intermediate"
    """The Mozilla profile to conform to."""
    ocsp_stapling: bool = True
    """Require stapling when the certificate names an OCSP responder (CAs may omit it now)."""
    certificate_lifetime: bool = True
    """Whether the profile's maximum certificate lifetime counts."""


def mozilla_deviations(data: TlsData, params: MozillaParams) -> list[str]:
    """Every way the endpoint departs from the profile; empty when it conforms."""
    profile = mozilla_guidelines().profiles[params.profile]
    found: list[str] = []
    if extra := [p for p in data.protocols if p not in profile.protocols]:
        found.append(f"protocols not in the profile: {', '.join(extra)}")
    if suites := sorted({s for _, s in _accepted(data) if s not in profile.cipher_suites}):
        found.append(f"cipher suites not in the profile: {', '.join(suites)}")
    if data.groups and (groups := [g for g in data.groups if g not in profile.groups]):
        found.append(f"groups not in the profile: {', '.join(groups)}")
    kex = data.key_exchange
    if profile.dh_min_bits and kex.dh_min_bits is not None and kex.dh_min_bits < profile.dh_min_bits:
        found.append(f"DH key of {kex.dh_min_bits} bits (profile: >= {profile.dh_min_bits})")
    if profile.ecdh_min_bits and kex.ecdh_min_bits is not None and kex.ecdh_min_bits < profile.ecdh_min_bits:
        found.append(f"ECDH key of {kex.ecdh_min_bits} bits (profile: >= {profile.ecdh_min_bits})")
    if data.certificate is not None:
        found += _certificate_deviations(data.certificate, profile, params)
    for other in data.other_certificates:
        which = f"{other.key_type} certificate ({other.subject})"
        found += [f"{which}: {deviation}" for deviation in _certificate_deviations(other, profile, params)]
    if params.ocsp_stapling and profile.ocsp_stapling and data.ocsp_responder and not data.ocsp_stapling:
        if data.ocsp_stapled_status is not None:
            found.append(f"the stapled OCSP response is {data.ocsp_stapled_status}, not a successful one")
        else:
            found.append("no OCSP stapling although the certificate names an OCSP responder")
    return found


def _certificate_deviations(cert: Certificate, profile: MozillaProfile, params: MozillaParams) -> list[str]:
    """How one certificate departs from the profile."""
    found: list[str] = []
    if cert.key_type not in profile.certificate_key_types:
        found.append(
            f"certificate key type {cert.key_type} (profile: {', '.join(profile.certificate_key_types)})"
        )
    elif cert.key_type == "EC" and cert.curve not in profile.certificate_curves:
        found.append(f"certificate curve {cert.curve} (profile: {', '.join(profile.certificate_curves)})")
    if cert.key_type == "RSA" and profile.rsa_key_min_bits and cert.key_bits < profile.rsa_key_min_bits:
        found.append(f"RSA key of {cert.key_bits} bits (profile: >= {profile.rsa_key_min_bits})")
    if cert.signature_algorithm not in profile.certificate_signatures:
        found.append(f"certificate signature {cert.signature_algorithm}")
    if params.certificate_lifetime and cert.lifetime_days > profile.max_certificate_lifetime_days:
        most = profile.max_certificate_lifetime_days
        found.append(f"certificate lifetime {cert.lifetime_days} days (profile: <= {most})")
    if not cert.trusted:
        found.append("certificate chain not trusted")
    return found


@CONTROLS.control(
    "tls.mozilla_profile", MozillaParams, needs=(*ALL_SUITE_STEPS, CERTIFICATE_STEP, GROUPS_STEP)
)
def _mozilla_profile(data: TlsData, params: MozillaParams, target: Target) -> Verdict:
    """The endpoint conforms to a Mozilla Server Side TLS 6.0 profile.

    Mozilla's guidelines are a maintained, widely deployed baseline: one rule covers protocols,
    suites, groups, DH/ECDH and certificate key sizes, signatures, lifetime, trust and OCSP stapling
    the way the chosen profile (modern or intermediate) sets them. The profile data is
    checks/tls/data/mozilla-server-side-tls-6.0.json.
    """
    if (missing := _no_protocols(data)) is not None:
        return missing
    if isinstance(cert := _certificate(data), Verdict):
        return cert
    version = mozilla_guidelines().version
    name = f"Mozilla {params.profile} {version}"
    deviations = mozilla_deviations(data, params)
    if deviations:
        return Verdict.failed(
            f"{len(deviations)} deviation(s) from {name}",
            observed=deviations,
            expected=name,
            vi=f"{len(deviations)} điểm sai lệch so với {name}",
        )
    return Verdict.passed(f"the endpoint conforms to {name}", expected=name, vi=f"máy chủ tuân thủ {name}")


# --- tls.key_exchange_min_bits ---------------------------------------------------------


class KeyExchangeParams(Params):
    dh_min_bits: int = Field(default=2048, ge=512)
    """Smallest finite-field (DHE) key accepted, in bits."""
    ecdh_min_bits: int = Field(default=256, ge=160)
    """Smallest elliptic-curve (ECDHE) key accepted, in bits (X25519 counts as 256)."""


@CONTROLS.control("tls.key_exchange_min_bits", KeyExchangeParams)
def _key_exchange_min_bits(data: TlsData, params: KeyExchangeParams, target: Target) -> Verdict:
    """Every ephemeral (EC)DH key the server chose is long enough.

    Finite-field DH under 2048 bits falls to precomputation (Logjam, CVE-2015-4000) and Mozilla's
    intermediate profile asks for 2048; ECDH keys under 256 bits are below every profile's curve.
    A DHE, ECDHE or TLS 1.3 suite accepted without its key size observed is an error, never a pass.
    """
    if (missing := _no_protocols(data)) is not None:
        return missing
    kex = data.key_exchange
    observed = {"dh_min_bits": kex.dh_min_bits, "ecdh_min_bits": kex.ecdh_min_bits}
    expected = {"dh_min_bits": params.dh_min_bits, "ecdh_min_bits": params.ecdh_min_bits}
    small = [
        text
        for text, bits, floor in (
            ("DH", kex.dh_min_bits, params.dh_min_bits),
            ("ECDH", kex.ecdh_min_bits, params.ecdh_min_bits),
        )
        if bits is not None and bits < floor
    ]
    if small:
        listed = ", ".join(f"{name} {observed[f'{name.lower()}_min_bits']}" for name in small)
        return Verdict.failed(
            f"ephemeral keys below the minimum: {listed} bits",
            observed,
            expected,
            vi=f"khóa trao đổi tạm thời ngắn hơn mức tối thiểu: {listed} bit",
        )
    accepted = [suite for _, suite in _accepted(data)]
    dhe = any(suite.startswith("TLS_DHE_") for suite in accepted)
    ecdhe = any(suite.startswith("TLS_ECDHE_") for suite in accepted)
    # A TLS 1.3 key share is ECDH or finite-field DH: either size seen will do.
    tls13 = "TLSv1.3" in data.cipher_suites and kex.dh_min_bits is None and kex.ecdh_min_bits is None
    if (dhe and kex.dh_min_bits is None) or (ecdhe and kex.ecdh_min_bits is None) or tls13:
        # A suite with an ephemeral key was accepted but the key's size never came back: not a
        # fact to pass on.
        return Verdict.cannot_judge(
            "a suite with an ephemeral key exchange is accepted but the size of its key was not observed",
            observed,
            expected,
            vi="máy chủ chấp nhận bộ mã hóa có trao đổi khóa tạm thời nhưng không quan sát được độ dài khóa",
        )
    return Verdict.passed(
        "every ephemeral key the server chose is long enough",
        observed,
        expected,
        vi="mọi khóa trao đổi tạm thời máy chủ chọn đều đủ dài",
    )


# --- tls.starttls_offered --------------------------------------------------------------


class StartTlsParams(Params):
    protocols: tuple[StartTls, ...] = Field(min_length=1)
    """The plain protocols this rule judges (`ftp`, `pop3`, `imap`, `smtp`, ...)."""


@CONTROLS.control("tls.starttls_offered", StartTlsParams)
def _starttls_offered(data: TlsData, params: StartTlsParams, target: Target) -> Verdict:
    """A plain-protocol service (FTP, POP3, IMAP, ...) accepts the upgrade to TLS.

    Explicit FTPS and STARTTLS mail share their port with the cleartext protocol, so the port
    number says nothing: what the service answered to AUTH TLS / STARTTLS does. The TLS it then
    speaks is judged by the other tls rules; endpoints of other protocols are out of scope.
    Whether cleartext logins are still allowed cannot be seen without logging in.
    """
    names = ", ".join(p.upper() for p in params.protocols)
    if data.starttls not in params.protocols:
        return Verdict.not_applicable(f"not a {names} endpoint", vi=f"không phải dịch vụ {names}")
    protocol = data.starttls.upper()
    if data.starttls_refused:
        # SMTP carries the mail itself (server to server on 25), not only logins.
        exposed = (
            Text(vi="thư và thông tin đăng nhập", en="mail and logins")
            if data.starttls == "smtp"
            else Text(vi="thông tin đăng nhập", en="logins")
        )
        return Verdict.failed(
            f"the {protocol} service refused the upgrade to TLS: {exposed.en} travel in cleartext",
            observed="refused",
            expected="accepted",
            vi=f"dịch vụ {protocol} từ chối nâng cấp lên TLS: {exposed.vi} truyền dạng rõ",
        )
    return Verdict.passed(
        f"the {protocol} service accepts the upgrade to TLS (whether it also allows cleartext"
        " logins cannot be seen without logging in)",
        observed="accepted",
        expected="accepted",
        vi=f"dịch vụ {protocol} chấp nhận nâng cấp lên TLS (việc còn cho phép đăng nhập dạng rõ hay"
        " không thì không thấy được nếu không đăng nhập)",
    )


# --- certificate controls --------------------------------------------------------------


@CONTROLS.control("tls.certificate_trusted", needs=(CERTIFICATE_STEP,))
@_every_certificate
def _certificate_trusted(data: TlsData, cert: Certificate, params: NoParams, target: Target) -> Verdict:
    """The certificate chain leads to a trusted anchor.

    A client cannot tell a self-signed or unanchored certificate from an impostor's: either it
    refuses the connection or its users learn to click through the warning that would have
    protected them. Provincial or government CAs count once configured as trust anchors. A
    certificate the server's own stapled OCSP response calls revoked is refused by every client
    that reads it, whatever its chain.
    """
    if cert.stapled_status == "revoked":
        return Verdict.failed(
            "the certificate is revoked: the OCSP response the server staples says so",
            observed="revoked",
            expected="trusted chain",
            vi="chứng thư số đã bị thu hồi: phản hồi OCSP máy chủ gửi kèm cho biết như vậy",
        )
    if cert.trusted:
        return Verdict.passed(
            "the chain leads to a trusted anchor",
            observed=cert.issuer,
            vi="chuỗi chứng thư số dẫn tới một chứng thư số gốc tin cậy",
        )
    if cert.self_signed:
        why, why_vi = "self-signed", "tự ký"
    elif cert.trust_error:
        # The validator's reason is library text: both languages quote it as it came.
        why = why_vi = cert.trust_error
    else:
        why, why_vi = "no path to a trusted anchor", "không có đường dẫn tới chứng thư số gốc tin cậy"
    return Verdict.failed(
        f"the certificate is not trusted: {why}",
        observed=cert.issuer,
        expected="trusted chain",
        vi=f"chứng thư số không được tin cậy: {why_vi}",
    )


class ExpiryParams(Params):
    min_days_left: int = Field(default=30, ge=0)
    """Days the certificate must still be valid after the scan."""


def _days_left(cert: Certificate, at: datetime) -> float:
    return (cert.not_after - at).total_seconds() / 86400


@CONTROLS.control("tls.certificate_expiry", ExpiryParams, needs=(CERTIFICATE_STEP,))
@_every_certificate
def _certificate_expiry(data: TlsData, cert: Certificate, params: ExpiryParams, target: Target) -> Verdict:
    """The certificate is valid for at least N more days at scan time.

    An expired certificate breaks clients and trains users to ignore warnings; the margin leaves
    time to renew. Judged at the scan time stored in the observation, so re-evaluating a stored run
    later gives the same verdict.
    """
    left = _days_left(cert, data.scanned_at)
    observed = cert.not_after.isoformat()
    expected = f">= {params.min_days_left} days"
    if left < 0:
        return Verdict.failed(
            f"the certificate expired {int(-left)} day(s) before the scan",
            observed,
            expected,
            vi=f"chứng thư số đã hết hạn {int(-left)} ngày trước thời điểm quét",
        )
    if cert.not_before > data.scanned_at:
        return Verdict.failed(
            "the certificate is not valid yet",
            cert.not_before.isoformat(),
            "valid at scan time",
            vi="chứng thư số chưa đến ngày có hiệu lực",
        )
    if left < params.min_days_left:
        return Verdict.failed(
            f"the certificate expires in {int(left)} day(s)",
            observed,
            expected,
            vi=f"chứng thư số hết hạn sau {int(left)} ngày",
        )
    return Verdict.passed(
        f"the certificate is valid for {int(left)} more day(s)",
        observed,
        vi=f"chứng thư số còn hiệu lực thêm {int(left)} ngày",
    )


class LifetimeStep(Params):
    issued_from: date
    """The day from which certificates issued (notBefore) are held to this cap."""
    max_days: int = Field(ge=1)
    """Longest allowed validity period, in days, of a certificate issued from that day on."""


class LifetimeParams(Params):
    max_days: int = Field(default=398, ge=1)
    """Longest allowed validity period, in days."""
    schedule: tuple[LifetimeStep, ...] = ()
    """Caps that hold for certificates issued from a date on: the CA/Browser Forum lowers its cap
    in steps, each for certificates issued after its date, so a certificate is held to the step in
    force on its notBefore (when lower than `max_days`), not to a later one."""


@CONTROLS.control("tls.certificate_lifetime", LifetimeParams, needs=(CERTIFICATE_STEP,))
@_every_certificate
def _certificate_lifetime(
    data: TlsData, cert: Certificate, params: LifetimeParams, target: Target
) -> Verdict:
    """The certificate's total validity is at most N days.

    Browsers have refused publicly trusted certificates valid for more than 398 days since 2020
    (now the CA/Browser Forum Baseline Requirements); a short lifetime bounds how long a stolen key
    or a mis-issued certificate stays usable. Ballot SC-081v3 lowers that cap in steps (200 days
    from 15 March 2026, then 100, then 47), each for certificates issued from its date on: judging
    an older certificate by a later step would fail it for a rule it was never under.
    """
    days = cert.lifetime_days
    issued = cert.not_before.date()
    step = max(
        (s for s in params.schedule if s.issued_from <= issued), key=lambda s: s.issued_from, default=None
    )
    if step is not None and step.max_days < params.max_days:
        limit, expected = step.max_days, f"<= {step.max_days} (issued on or after {step.issued_from})"
    else:
        limit, expected = params.max_days, f"<= {params.max_days}"
    if days > limit:
        return Verdict.failed(
            f"the certificate, issued {issued}, is valid for {days} days in all",
            days,
            expected,
            vi=f"chứng thư số cấp ngày {issued} có tổng thời hạn hiệu lực {days} ngày",
        )
    return Verdict.passed(
        f"lifetime of {days} days (issued {issued})",
        days,
        expected,
        vi=f"thời hạn hiệu lực {days} ngày (cấp ngày {issued})",
    )


class KeyParams(Params):
    rsa_min_bits: int = Field(default=2048, ge=512)
    """Smallest RSA key of the leaf, in bits."""
    ec_min_bits: int = Field(default=256, ge=160)
    """Smallest EC key of the leaf, in bits."""
    issuer_rsa_min_bits: int = Field(default=2048, ge=512)
    """Smallest RSA key of a certificate between the leaf and its root (CAs choose those)."""
    issuer_ec_min_bits: int = Field(default=256, ge=160)
    """Smallest EC key of a certificate between the leaf and its root."""
    allowed_types: tuple[Literal["RSA", "EC", "Ed25519", "Ed448", "DSA"], ...] = (
        "RSA",
        "EC",
        "Ed25519",
        "Ed448",
    )
    """Key types that may be used, at every level."""


_LEAF = ("the leaf", "chứng thư số máy chủ")


def _chain_unobserved(cert: Certificate, what: str, what_vi: str) -> Verdict | None:
    """An error when part of the path from the leaf to its root was not observed (for `what`,
    the fact a rule reads of each certificate on it), else None."""
    if cert.chain_missing is None:
        return None
    missing = cert.chain_missing
    return Verdict.cannot_judge(
        f"the certificate of {missing} (an issuer on the path to the root) was neither sent by the"
        f" server nor a trust anchor: its {what} was not observed",
        observed=missing,
        vi=f"chứng thư số của {missing} (một bên cấp trên đường tới chứng thư số gốc) không được máy"
        f" chủ gửi và cũng không phải chứng thư số gốc tin cậy: không quan sát được {what_vi} của nó",
    )


@CONTROLS.control("tls.certificate_key", KeyParams, needs=(CERTIFICATE_STEP,))
@_every_certificate
def _certificate_key(data: TlsData, cert: Certificate, params: KeyParams, target: Target) -> Verdict:
    """Every key from the leaf up to its root is of an allowed type and size.

    RSA keys under 2048 bits and EC keys under 256 bits are below the strength NIST SP 800-57 and
    SP 800-131A accept for current use, and DSA is deprecated: a leaf key that can be broken lets
    anyone impersonate the server and, without forward secrecy, read its traffic; an
    intermediate's lets anyone issue certificates for any name. The root's own key is the trust
    store's choice; the certificates between are judged against the `issuer_` sizes.
    """
    levels = [(_LEAF, cert.key_type, cert.key_bits, cert.curve, params.rsa_min_bits, params.ec_min_bits)]
    for key in cert.chain_keys or ():
        where = (f"the intermediate {key.subject}", f"chứng thư số trung gian {key.subject}")
        levels.append(
            (
                where,
                key.key_type,
                key.key_bits,
                key.curve,
                params.issuer_rsa_min_bits,
                params.issuer_ec_min_bits,
            )
        )
    observed = [f"{kind} {bits}" + (f" ({curve})" if curve else "") for _, kind, bits, curve, _, _ in levels]
    expected = (
        f"RSA >= {params.rsa_min_bits} or EC >= {params.ec_min_bits} (intermediates: RSA >="
        f" {params.issuer_rsa_min_bits} or EC >= {params.issuer_ec_min_bits}),"
        f" types {', '.join(params.allowed_types)}"
    )
    bad: list[tuple[str, str]] = []
    for (place, place_vi), kind, bits, _, rsa_min, ec_min in levels:
        if kind not in params.allowed_types:
            bad.append(
                (f"{place}: key type {kind} is not allowed", f"{place_vi}: loại khóa {kind} không được phép")
            )
        elif bits < {"RSA": rsa_min, "EC": ec_min}.get(kind, 0):
            bad.append(
                (f"{place}: key {kind} {bits} is too small", f"{place_vi}: khóa {kind} {bits} quá ngắn")
            )
    if bad:
        return Verdict.failed(
            "; ".join(en for en, _ in bad), observed, expected, vi="; ".join(vi for _, vi in bad)
        )
    if cert.chain_keys is None:
        return Verdict.cannot_judge(
            "the keys of the certificates above the leaf were not recorded (a run stored by an older attt)",
            observed,
            expected,
            vi="khóa của các chứng thư số phía trên chứng thư số máy chủ chưa được ghi nhận (lượt quét lưu"
            " bởi phiên bản attt cũ hơn)",
        )
    if (unobserved := _chain_unobserved(cert, "key", "khóa")) is not None:
        return unobserved
    listed = ", ".join(observed)
    return Verdict.passed(f"keys {listed}", observed, expected, vi=f"các khóa {listed}")


class SignatureParams(Params):
    forbidden_hashes: tuple[str, ...] = ("md5", "sha1")
    """Hashes no signature in the chain may use (lower case)."""


@CONTROLS.control("tls.certificate_signature", SignatureParams, needs=(CERTIFICATE_STEP,))
@_every_certificate
def _certificate_signature(
    data: TlsData, cert: Certificate, params: SignatureParams, target: Target
) -> Verdict:
    """No certificate in the chain is signed with a forbidden hash.

    MD5 and SHA-1 signatures can be forged with chosen-prefix collisions (a rogue CA in 2008,
    SHAttered and later attacks on SHA-1), so they prove nothing. Every certificate on the path
    from the leaf to its root counts (a certificate sent but off that path does not); the root's
    own signature does not, since the root is trusted by being in the store. An issuer on the
    path that the server did not send and no anchor holds leaves the rule `error`.
    """
    leaf = ("leaf", "chứng thư số máy chủ")
    intermediate = ("intermediate", "chứng thư số trung gian")
    hashes = [(leaf, cert.signature_hash)] + [(intermediate, h) for h in cert.chain_signature_hashes]
    bad = [(where, h) for where, h in hashes if h is not None and h.lower() in params.forbidden_hashes]
    if bad:
        return Verdict.failed(
            "; ".join(f"{en} signed with {h}" for (en, _), h in bad),
            observed=cert.signature_algorithm,
            expected=f"not signed with {', '.join(params.forbidden_hashes)}",
            vi="; ".join(f"{vi} được ký bằng {h}" for (_, vi), h in bad),
        )
    if (unobserved := _chain_unobserved(cert, "signature", "chữ ký")) is not None:
        return unobserved
    return Verdict.passed(
        f"signed with {cert.signature_algorithm}",
        observed=cert.signature_algorithm,
        vi=f"được ký bằng {cert.signature_algorithm}",
    )


@CONTROLS.control(
    "tls.hostname_matches",
    # Without a registered name there is nothing to match: no fact of the scan is read.
    needs=lambda _params, target: (CERTIFICATE_STEP,) if target.server_name else (),
)
def _hostname_matches(data: TlsData, params: NoParams, target: Target) -> Verdict:
    """The certificate is valid for the registered host name.

    A certificate for another name is exactly what an impostor presents: clients that check names
    refuse the connection, clients that do not are open to interception. The name is the host's
    `hostname`, else its address when that is a DNS name; not applicable when the inventory
    registers the host by IP address and gives no host name to match. A wildcard over a public
    suffix (`*.gov.vn`, `*.co.uk`) matches no name: browsers refuse it, and the verdict says why.
    """
    name = target.server_name
    if name is None:
        return Verdict.not_applicable(
            "the inventory gives no host name to match the certificate against",
            vi="danh mục hệ thống không khai báo tên máy chủ để đối chiếu với chứng thư số",
        )
    return _every_certificate(_hostname_matches_one)(data, params, target)


def _hostname_matches_one(data: TlsData, cert: Certificate, params: NoParams, target: Target) -> Verdict:
    name = target.server_name
    if cert.hostname != name:
        # Matched against another name (a run stored before the host's name was used): the
        # match says nothing about this one.
        return Verdict.cannot_judge(
            f"the certificate was matched against {cert.hostname}, not against {name}",
            observed=list(cert.sans),
            expected=name,
            vi=f"chứng thư số được đối chiếu với {cert.hostname}, không phải với {name}",
        )
    if cert.hostname_matches:
        return Verdict.passed(
            f"the certificate is valid for {cert.hostname}",
            observed=list(cert.sans),
            vi=f"chứng thư số hợp lệ cho {cert.hostname}",
        )
    wildcard = wildcard_over_suffix(cert.hostname, cert.sans)
    why = why_vi = ""
    if wildcard is not None:
        suffix = wildcard.partition(".")[2]
        why = f": its wildcard {wildcard} stands over {suffix}, a public suffix, where no wildcard is valid"
        why_vi = (
            f": ký tự đại diện {wildcard} phủ lên {suffix}, một hậu tố công cộng, nơi không ký tự đại diện"
            " nào hợp lệ"
        )
    return Verdict.failed(
        f"the certificate is not valid for {cert.hostname}{why}",
        observed=list(cert.sans),
        expected=cert.hostname,
        vi=f"chứng thư số không hợp lệ cho {cert.hostname}{why_vi}",
    )


# --- tls.no_known_vulnerabilities ------------------------------------------------------


class VulnerabilitiesParams(Params):
    checks: tuple[VulnerabilityName, ...] = ALL_VULNERABILITIES
    """The weaknesses to test for; all of them by default."""


@CONTROLS.control(
    "tls.no_known_vulnerabilities",
    VulnerabilitiesParams,
    needs=lambda params, _target: tuple(dict.fromkeys(VULNERABILITY_STEPS[v] for v in params.checks)),
)
def _no_known_vulnerabilities(data: TlsData, params: VulnerabilitiesParams, target: Target) -> Verdict:
    """No known TLS implementation weakness is present.

    Heartbleed (CVE-2014-0160) leaks server memory, keys included; a ROBOT oracle decrypts RSA key
    exchanges; CCS injection (CVE-2014-0224) lets a man in the middle force weak keys; missing
    secure renegotiation (RFC 5746) allows prefix injection and client-initiated renegotiation a
    denial of service; TLS compression leaks secrets (CRIME); ignoring TLS_FALLBACK_SCSV allows
    downgrades; no extended master secret (RFC 7627) allows the triple handshake attack (tested on
    a TLS 1.2 handshake, where it matters). A test that could not be made is an error, never a
    pass; a service that refused the upgrade to TLS has none of these to judge.
    """
    if (plain := _plain_only(data)) is not None:
        return plain
    facts = {name: getattr(data.vulnerabilities, name) for name in params.checks}
    exposed = [name for name, value in facts.items() if value is True]
    unknown = [name for name, value in facts.items() if value is None]
    if exposed:
        listed = ", ".join(exposed)
        return Verdict.failed(
            f"exposed to {listed}", observed=exposed, expected=[], vi=f"bị ảnh hưởng bởi {listed}"
        )
    if unknown:
        listed = ", ".join(unknown)
        return Verdict.cannot_judge(
            f"could not test {listed}", observed=unknown, vi=f"không kiểm tra được {listed}"
        )
    return Verdict.passed(
        f"none of {len(facts)} known weaknesses found",
        observed=[],
        vi=f"không phát hiện điểm yếu nào trong {len(facts)} điểm yếu đã biết",
    )


# --- tls.hsts --------------------------------------------------------------------------


class HstsParams(Params):
    min_max_age: int = Field(default=31536000, ge=0)
    """Shortest allowed max-age, in seconds."""
    include_subdomains: bool = False
    """Whether includeSubDomains is required."""


# The certificate too: browsers keep HSTS only over one they accept.
@CONTROLS.control("tls.hsts", HstsParams, needs=(HTTP_STEP, CERTIFICATE_STEP))
def _hsts(data: TlsData, params: HstsParams, target: Target) -> Verdict:
    """HTTPS endpoints send HSTS with a long enough max-age.

    Without Strict-Transport-Security a browser's first request may go over plain HTTP, where an
    attacker strips the redirect to HTTPS; a max-age of a year is what browsers' preload lists ask
    for. A sound header counts only where browsers keep it: sent with a certificate they
    refuse (untrusted chain, expired, another name, revoked), it is ignored (RFC 6797 8.1), a
    `fail` that says why; on a host registered by IP address alone (8.1.1), or when the
    certificate was not judged, an `error`.

    Only a STARTTLS endpoint or a port of a well-known non-HTTP TLS service (IMAPS, LDAPS, ...)
    is "not HTTP"; anywhere else the HTTP request is a step of the probe, and an answer that
    failed, came too late or was too large leaves the rule `error`, never not applicable.
    """
    if data.starttls is not None:
        return Verdict.not_applicable(
            f"the endpoint speaks {data.starttls} (STARTTLS), not HTTP",
            vi=f"điểm dịch vụ dùng {data.starttls} (STARTTLS), không phải HTTP",
        )
    if not data.http_requested:
        return Verdict.not_applicable(
            "the port belongs to a well-known TLS service that is not HTTP; no HTTP request was sent",
            vi="cổng thuộc một dịch vụ TLS phổ biến không phải HTTP; không gửi yêu cầu HTTP",
        )
    if not data.http:
        return Verdict.cannot_judge(
            "no HTTP answer was recorded for this endpoint",
            vi="không ghi nhận được phản hồi HTTP nào từ điểm dịch vụ này",
        )
    expected = f"max-age >= {params.min_max_age}" + (
        "; includeSubDomains" if params.include_subdomains else ""
    )
    if data.hsts is None:
        return Verdict.failed(
            "no Strict-Transport-Security header",
            observed=None,
            expected=expected,
            vi="không có trường tiêu đề Strict-Transport-Security",
        )
    age = data.hsts.max_age
    if age is None or age < params.min_max_age:
        return Verdict.failed(
            f"HSTS max-age is {age}", observed=age, expected=expected, vi=f"max-age của HSTS là {age}"
        )
    if params.include_subdomains and not data.hsts.include_subdomains:
        return Verdict.failed(
            "HSTS lacks includeSubDomains",
            observed=age,
            expected=expected,
            vi="HSTS thiếu includeSubDomains",
        )
    if (ignored := _hsts_ignored(data, target)) is not None:
        status, why = ignored
        return Verdict(
            status,
            f"HSTS max-age {age} is sent, {why.en}",
            age,
            expected,
            vi=f"HSTS có max-age {age} nhưng {why.vi}",
        )
    return Verdict.passed(f"HSTS max-age {age}", observed=age, expected=expected, vi=f"HSTS có max-age {age}")


def _hsts_ignored(data: TlsData, target: Target) -> tuple[Literal["fail", "error"], Text] | None:
    """Why browsers ignore the HSTS header (`fail`) or may (`error`); None when they keep it.

    RFC 6797 section 8.1: a browser processes Strict-Transport-Security only when it came over a
    secure transport with no certificate error (section 8.4), else it MUST ignore it; section
    8.1.1: a host reached by an IP address is never a Known HSTS Host. The certificate is the one
    sent with SNI to a default client, the one a browser and the HTTP request get; it is judged
    as tls.certificate_trusted, tls.certificate_expiry and tls.hostname_matches judge it, with
    the trust anchors of `settings.tls.trust_anchors`."""
    name = target.server_name
    if name is None:
        return "error", Text(
            en="but the inventory registers the host by its IP address only: browsers keep no HSTS"
            " for an address (RFC 6797 8.1.1), and the certificate of the name visitors use was not"
            " matched; register that name as the host's hostname",
            vi="danh mục chỉ khai báo địa chỉ IP của máy chủ: trình duyệt không ghi nhận HSTS cho địa chỉ"
            " IP (RFC 6797 8.1.1), và chứng thư số chưa được đối chiếu với tên miền người dùng truy cập;"
            " hãy khai báo tên đó ở trường hostname",
        )
    cert = data.certificate
    if cert is None or cert.hostname != name:
        return "error", Text(
            en=f"but the certificate it came with was not judged for {name}: whether browsers keep it"
            " (RFC 6797 8.1) is unknown",
            vi=f"chứng thư số đi kèm chưa được đánh giá cho {name}: chưa biết trình duyệt có ghi nhận"
            " HSTS hay không (RFC 6797 8.1)",
        )
    if cert.stapled_status == "revoked":
        refusal = Text(
            en="it is revoked (its stapled OCSP response says so)", vi="chứng thư số đã bị thu hồi"
        )
    elif _days_left(cert, data.scanned_at) < 0 or cert.not_before > data.scanned_at:
        refusal = Text(
            en=f"it is not valid at scan time ({cert.not_before:%Y-%m-%d} to {cert.not_after:%Y-%m-%d})",
            vi=f"chứng thư số không có hiệu lực tại thời điểm quét ({cert.not_before:%Y-%m-%d} đến"
            f" {cert.not_after:%Y-%m-%d})",
        )
    elif not cert.trusted:
        reason = "self-signed" if cert.self_signed else (cert.trust_error or "no path to a trusted anchor")
        refusal = Text(
            en=f"its chain leads to no trusted anchor ({reason}; a CA the province's browsers trust is"
            " declared in settings.tls.trust_anchors)",
            vi=f"chuỗi chứng thư số không dẫn tới chứng thư số gốc tin cậy ({reason}; CA mà trình duyệt"
            " trong tỉnh tin cậy được khai báo ở settings.tls.trust_anchors)",
        )
    elif not cert.hostname_matches:
        refusal = Text(en=f"it is not valid for {name}", vi=f"chứng thư số không hợp lệ cho {name}")
    else:
        return None
    return "fail", Text(
        en=f"but browsers ignore it: it comes with a certificate they refuse (RFC 6797 8.1): {refusal.en}",
        vi=f"trình duyệt bỏ qua vì nó đi kèm chứng thư số bị từ chối (RFC 6797 8.1): {refusal.vi}",
    )
