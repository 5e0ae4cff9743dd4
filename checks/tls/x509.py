"""Pure X.509 analysis: the facts attt records about a certificate, read with `cryptography`.

No network and no sslyze here, so every rule about a certificate can be tested on
certificates made in the test itself.
"""

import ipaddress
import re
from collections.abc import Iterable
from typing import Any, cast

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtensionOID, SignatureAlgorithmOID

from attt.checks.tls.models import MAX_NAME_CHARS, MAX_SANS
from attt.checks.tls.names import name_matches
from attt.scanner.models.observation import bound_text

_SIGNATURE_NAMES = {
    SignatureAlgorithmOID.RSA_WITH_MD5: "md5WithRSAEncryption",
    SignatureAlgorithmOID.RSA_WITH_SHA1: "sha1WithRSAEncryption",
    SignatureAlgorithmOID.RSA_WITH_SHA224: "sha224WithRSAEncryption",
    SignatureAlgorithmOID.RSA_WITH_SHA256: "sha256WithRSAEncryption",
    SignatureAlgorithmOID.RSA_WITH_SHA384: "sha384WithRSAEncryption",
    SignatureAlgorithmOID.RSA_WITH_SHA512: "sha512WithRSAEncryption",
    SignatureAlgorithmOID.RSASSA_PSS: "rsassaPss",
    SignatureAlgorithmOID.ECDSA_WITH_SHA1: "ecdsa-with-SHA1",
    SignatureAlgorithmOID.ECDSA_WITH_SHA224: "ecdsa-with-SHA224",
    SignatureAlgorithmOID.ECDSA_WITH_SHA256: "ecdsa-with-SHA256",
    SignatureAlgorithmOID.ECDSA_WITH_SHA384: "ecdsa-with-SHA384",
    SignatureAlgorithmOID.ECDSA_WITH_SHA512: "ecdsa-with-SHA512",
    SignatureAlgorithmOID.DSA_WITH_SHA1: "dsa-with-sha1",
    SignatureAlgorithmOID.DSA_WITH_SHA256: "dsa-with-sha256",
    SignatureAlgorithmOID.ED25519: "ed25519",
    SignatureAlgorithmOID.ED448: "ed448",
}


_HOST_NAME = re.compile(
    r"^(?:\*\.)?(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.?$",
    re.IGNORECASE,
)
"""An RFC 1123 host name, optionally a wildcard as the whole left-most label."""


def inert(text: str) -> str:
    """Text a certificate carries, as written but with every control or format character shown
    as an escape (`\\x1b`), so it cannot act on a terminal or a page's layout. (A formula stays
    as written: the CSV report neutralises those, like every other cell a target wrote.)"""
    return "".join(c if c.isprintable() else _escape(c) for c in text)


def _escape(c: str) -> str:
    return f"\\x{ord(c):02x}" if ord(c) < 256 else f"\\u{ord(c):04x}"


MAX_PATH = 10
"""Certificates above the leaf followed at most: a longer path is reported as not observed."""


class Anchors:
    """Trust anchors by subject name. A certificate parses its names anew on every access, so
    comparing a leaf's names with each anchor of sslyze's stores (937 certificates with the lab's
    CA) took 65 ms a path step: a minute of CPU for a province's thousand TLS servers. With the
    anchors named alike one look-up away (`Name` hashes by what it compares), the whole path takes
    0.3 ms."""

    def __init__(self, certs: Iterable[x509.Certificate]) -> None:
        self._named: dict[x509.Name, list[x509.Certificate]] = {}
        for cert in certs:
            self._named.setdefault(cert.subject, []).append(cert)

    def named(self, name: x509.Name) -> list[x509.Certificate]:
        return self._named.get(name, [])


def issuer_path(
    leaf: x509.Certificate, sent: list[x509.Certificate], anchors: Anchors
) -> tuple[list[x509.Certificate], str | None]:
    """The certificates between `leaf` and its root, leaf's issuer first, as a client builds the
    path: an anchor ends it (whatever else was sent), then a certificate the server sent, in
    any order, that names and signs the one below. The second value is the issuer none of them
    is (the path stops under it, unobserved), or None when the path reached a root."""
    path: list[x509.Certificate] = []
    current = leaf
    for _ in range(MAX_PATH + 1):
        if (
            is_self_signed(current)
            or any(is_anchor(current, anchor) for anchor in anchors.named(current.subject))
            or any(_issued(current, anchor) for anchor in anchors.named(current.issuer))
        ):
            return path, None
        issuer = next((cert for cert in sent if cert is not current and _issued(current, cert)), None)
        if issuer is None or len(path) == MAX_PATH:
            return path, bounded_name(current.issuer)
        if is_self_signed(issuer):  # a root sent along: trusted or not, not judged for itself
            return path, None
        path.append(issuer)
        current = issuer
    return path, bounded_name(current.issuer)


def _issued(child: x509.Certificate, parent: x509.Certificate) -> bool:
    """Whether `parent` names and signed `child`."""
    if child.issuer != parent.subject:
        return False
    try:
        child.verify_directly_issued_by(parent)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def is_anchor(cert: x509.Certificate, anchor: x509.Certificate) -> bool:
    """Whether `cert` is the trust anchor `anchor` itself: the same subject and public key, which
    is all an anchor is (RFC 5914), whatever the dates, serial or extensions of either copy."""
    if cert.subject != anchor.subject:
        return False
    try:
        return _key_info(cert) == _key_info(anchor)
    except (ValueError, UnsupportedAlgorithm):
        return False


def _key_info(cert: x509.Certificate) -> bytes:
    return cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def path_hashes(path: list[x509.Certificate]) -> tuple[str, ...]:
    hashes = (signature_hash(cert) for cert in path)
    return tuple(h for h in hashes if h)


def bounded_name(name: x509.Name) -> str:
    try:
        text = name.rfc4514_string()
    except ValueError:
        text = "<unparsable name>"
    return bound_text(text, MAX_NAME_CHARS)


def _san_extension(cert: x509.Certificate) -> x509.SubjectAlternativeName | None:
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (x509.ExtensionNotFound, ValueError):
        return None


def sans(cert: x509.Certificate) -> tuple[str, ...]:
    san = _san_extension(cert)
    if san is None:
        return ()
    names = [
        *san.get_values_for_type(x509.DNSName),
        *(str(ip) for ip in san.get_values_for_type(x509.IPAddress)),
    ]
    # Entries that are not host names (markup, escape bytes, formulas) are kept, made inert:
    # they are what the server sent, and an auditor should see them.
    return tuple(bound_text(inert(n), MAX_NAME_CHARS) for n in names[:MAX_SANS])


def hostname_matches(name: str, cert: x509.Certificate) -> bool:
    """RFC 9525 matching: subjectAltName only (no CN fallback), a wildcard only as the whole
    left-most label and never over a public suffix (`wildcard_over_suffix`); an IP address only
    against IP entries."""
    san = _san_extension(cert)
    if san is None:
        return False
    try:
        ip = ipaddress.ip_address(name)
    except ValueError:
        ip = None
    if ip is not None:
        return ip in san.get_values_for_type(x509.IPAddress)
    return name_matches(name, san.get_values_for_type(x509.DNSName))


def public_key_facts(cert: x509.Certificate) -> tuple[Any, int, str | None]:
    try:
        key = cert.public_key()
    except (ValueError, UnsupportedAlgorithm):
        return "unknown", 0, None
    if isinstance(key, rsa.RSAPublicKey):
        return "RSA", key.key_size, None
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "EC", key.curve.key_size, key.curve.name
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519", 256, None
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448", 456, None
    if isinstance(key, dsa.DSAPublicKey):
        return "DSA", key.key_size, None
    return "unknown", 0, None


def signature_name(cert: x509.Certificate) -> str:
    oid = cert.signature_algorithm_oid
    return _SIGNATURE_NAMES.get(oid, oid.dotted_string)


def signature_hash(cert: x509.Certificate) -> str | None:
    try:
        algorithm = cert.signature_hash_algorithm
    except UnsupportedAlgorithm:
        return "unknown"
    return None if algorithm is None else algorithm.name


def is_self_signed(cert: x509.Certificate) -> bool:
    return _issued(cert, cert)


def ocsp_url(cert: x509.Certificate) -> str | None:
    try:
        aia = cert.extensions.get_extension_for_oid(ExtensionOID.AUTHORITY_INFORMATION_ACCESS).value
    except (x509.ExtensionNotFound, ValueError):
        return None
    for description in cast(x509.AuthorityInformationAccess, aia):
        if description.access_method == AuthorityInformationAccessOID.OCSP and isinstance(
            description.access_location, x509.UniformResourceIdentifier
        ):
            return bound_text(description.access_location.value, MAX_NAME_CHARS)
    return None


def own_subject(leaf: x509.Certificate) -> x509.DNSName | x509.IPAddress | None:
    san = _san_extension(leaf)
    if san is None:
        return None
    for dns in san.get_values_for_type(x509.DNSName):
        if not _HOST_NAME.match(dns):
            continue  # a path validator refuses to even parse such a name
        try:
            # A wildcard entry is valid for any name of that shape: validate for one of them.
            return x509.DNSName(dns.replace("*", "attt-any", 1) if dns.startswith("*.") else dns)
        except ValueError:
            continue
    for ip in san.get_values_for_type(x509.IPAddress):
        return x509.IPAddress(ip)
    return None
