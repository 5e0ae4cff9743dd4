"""The `tls` observation data, the check's settings, and the names they use."""

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, ClassVar, Literal, get_args

from pydantic import Field

from attt.scanner.models.base import Frozen
from attt.scanner.plugin import Settings

Protocol = Literal["SSLv2", "SSLv3", "TLSv1.0", "TLSv1.1", "TLSv1.2", "TLSv1.3"]
PROTOCOLS: tuple[Protocol, ...] = ("SSLv2", "SSLv3", "TLSv1.0", "TLSv1.1", "TLSv1.2", "TLSv1.3")
"""Oldest first: the order `tls.min_version` compares in."""

SUITE_STEPS: dict[Protocol, str] = {
    "SSLv2": "ssl_2_0_cipher_suites",
    "SSLv3": "ssl_3_0_cipher_suites",
    "TLSv1.0": "tls_1_0_cipher_suites",
    "TLSv1.1": "tls_1_1_cipher_suites",
    "TLSv1.2": "tls_1_2_cipher_suites",
    "TLSv1.3": "tls_1_3_cipher_suites",
}
"""Probe step (sslyze scan command) that tells whether each protocol version is accepted, and
with which suites: the names `TlsData.incomplete` uses."""
CERTIFICATE_STEP = "certificate_info"
GROUPS_STEP = "elliptic_curves"
HTTP_STEP = "http_headers"
VULNERABILITY_STEPS: dict[str, str] = {
    "heartbleed": "heartbleed",
    "robot": "robot",
    "ccs_injection": "openssl_ccs_injection",
    "insecure_renegotiation": "session_renegotiation",
    "client_renegotiation": "session_renegotiation",
    "compression": "tls_compression",
    "fallback_scsv": "tls_fallback_scsv",
    "extended_master_secret": "tls_extended_master_secret",
}
"""`Vulnerabilities` field -> the probe step that tests it."""


def static_key_suites(cipher_suites: Mapping[Protocol, tuple[str, ...]]) -> list[str]:
    """The accepted suites (`protocol suite`) without forward secrecy: the one definition behind
    both `TlsData.forward_secrecy` and the `tls.forward_secrecy` control. Every TLS 1.3 suite has
    an ephemeral key exchange; before 1.3 only the (EC)DHE suites do."""
    return [
        f"{protocol} {suite}"
        for protocol, suites in cipher_suites.items()
        for suite in suites
        if protocol != "TLSv1.3" and "_DHE_" not in suite and "_ECDHE_" not in suite
    ]


StartTls = Literal["smtp", "imap", "pop3", "ldap", "ftp", "xmpp", "postgres", "rdp"]

MAX_NAME_CHARS = 300
"""Bound on every certificate string (subject, issuer, SAN, URL): they come from the target."""
MAX_SANS = 100


KeyType = Literal["RSA", "EC", "Ed25519", "Ed448", "DSA", "unknown"]
CertificateStatus = Literal["good", "revoked", "unknown"]
"""A certificate's status in an OCSP response (RFC 6960)."""


class IssuerKey(Frozen):
    """The key of one certificate between the leaf and its root."""

    subject: str
    key_type: KeyType
    key_bits: int
    curve: str | None = None


class Certificate(Frozen):
    """Facts about the leaf certificate the endpoint sent (with SNI), and its chain."""

    subject: str
    issuer: str
    sans: tuple[str, ...]
    """DNS names and IP addresses of the subjectAltName extension, at most `MAX_SANS`."""
    serial: str
    not_before: datetime
    not_after: datetime
    key_type: KeyType
    key_bits: int
    curve: str | None = None
    """Named curve of an EC key (`secp256r1`, ...)."""
    signature_algorithm: str
    """E.g. `sha256WithRSAEncryption`, `ecdsa-with-SHA384`."""
    signature_hash: str | None
    """Hash of the leaf's signature (`sha1`, `sha256`, ...); None for Ed25519/Ed448."""
    chain_signature_hashes: tuple[str, ...] = ()
    """Signature hashes of the certificates between the leaf and its root, as far as observed
    (`chain_missing`); the root's own is irrelevant, it is trusted by being in the store. (Runs
    stored before attt followed the path hold those of every intermediate the server sent.)"""
    chain_keys: tuple[IssuerKey, ...] | None = None
    """Keys of the same certificates, leaf's issuer first; None in runs stored before attt
    recorded them."""
    chain_missing: str | None = None
    """The issuer whose certificate was neither sent by the server nor a trust anchor: the path
    stops under it, and nothing above it (its signature, its key) was observed."""
    self_signed: bool
    trusted: bool
    """The chain leads to an anchor of the trust store in use (system store plus configured
    anchors), checked without regard to the name: `hostname_matches` says that."""
    trust_error: str | None = None
    stapled_status: CertificateStatus | None = None
    """The certificate's status in the successful OCSP response the server stapled with it (the
    one for its serial number); None when there was none."""
    hostname: str
    """The name (or, without one, the IP address) the certificate was matched against."""
    hostname_matches: bool
    expired: bool
    """As seen at `TlsData.scanned_at`; controls use `not_after` against that time."""
    lifetime_days: int


VulnerabilityName = Literal[
    "heartbleed",
    "robot",
    "ccs_injection",
    "insecure_renegotiation",
    "client_renegotiation",
    "compression",
    "fallback_scsv",
    "extended_master_secret",
]
"""The weaknesses `tls.no_known_vulnerabilities` can be asked about: exactly the fields of
`Vulnerabilities`, in their order (a test holds the two together)."""
ALL_VULNERABILITIES: tuple[VulnerabilityName, ...] = get_args(VulnerabilityName)


class Vulnerabilities(Frozen):
    """Each field is True when the endpoint is exposed to the weakness, False when it is not,
    None when the test could not be made (a fact that is missing, never a pass)."""

    heartbleed: bool | None
    robot: bool | None
    """A ROBOT oracle, weak or strong."""
    ccs_injection: bool | None
    insecure_renegotiation: bool | None
    """The RFC 5746 renegotiation_info extension is missing."""
    client_renegotiation: bool | None
    """The server honours client-initiated renegotiation (a denial-of-service lever)."""
    compression: bool | None
    fallback_scsv: bool | None
    """The server ignores TLS_FALLBACK_SCSV, so a downgrade cannot be detected."""
    extended_master_secret: bool | None
    """The server does not support the extended master secret (RFC 7627) on TLS 1.2, tested
    on a TLS 1.2 handshake (TLS 1.3 has it built in: a TLS 1.3-only server is not exposed)."""


class Hsts(Frozen):
    max_age: int | None
    include_subdomains: bool
    preload: bool


class KeyExchange(Frozen):
    """Smallest ephemeral keys the server chose over all accepted suites (None: none seen).
    X25519 counts as 256 bits, the size class profiles give it (its keys are 253 bits)."""

    dh_min_bits: int | None = None
    ecdh_min_bits: int | None = None


class TlsData(Frozen):
    scanned_at: datetime
    sni: str | None
    starttls: StartTls | None = None
    starttls_refused: bool = False
    """The service answered in its plain protocol and refused the STARTTLS / AUTH TLS upgrade:
    it speaks no TLS, so every fact below is empty."""
    protocols: tuple[Protocol, ...]
    cipher_suites: dict[Protocol, tuple[str, ...]]
    """Accepted suites per protocol, IANA names."""
    forward_secrecy: bool
    """Every accepted suite uses an ephemeral key exchange."""
    key_exchange: KeyExchange = KeyExchange()
    groups: tuple[str, ...] | None
    """Supported groups (IANA names, e.g. `x25519`, `secp256r1`); None when not tested."""
    certificate: Certificate | None
    other_certificates: tuple[Certificate, ...] = ()
    """The server's other certificates (sent with SNI to a client that offers only RSA, or only
    ECDSA, authentication), each judged as `certificate` is; empty in runs stored before attt
    recorded them."""
    ocsp_responder: str | None = None
    """The OCSP URL of the leaf certificate, if any."""
    ocsp_stapling: bool
    """A successful OCSP response was stapled to the handshake (in runs stored before attt read
    its status: any response)."""
    ocsp_stapled_status: str | None = None
    """The status of the OCSP response stapled (`successful`, `tryLater`, ...); None when none
    was."""
    vulnerabilities: Vulnerabilities
    http: bool
    """The endpoint answered an HTTP request over TLS."""
    http_requested: bool = True
    """An HTTP request was sent: not on STARTTLS endpoints nor on ports of well-known non-HTTP
    TLS services (IMAPS, POP3S, SMTPS, LDAPS, ...)."""
    hsts: Hsts | None = None
    incomplete: tuple[str, ...] = ()
    """Probe steps (sslyze scan commands, named as in `SUITE_STEPS` and the other `*_STEP`
    constants) that did not complete; the facts they would give are None or empty, and a rule
    that needs one of them is `error`. A failed HTTP request counts here as `http_headers`."""
    step_errors: dict[str, str] = Field(default_factory=dict)
    """Why each incomplete step failed, bounded text."""


class TlsSettings(Settings):
    """Per-policy settings of the `tls` check (`settings: {tls: {...}}`)."""

    # Pace and method: the same facts (exhaustive_suites gives the same answer by brute force).
    neutral: ClassVar[frozenset[str]] = frozenset({"max_connections_per_server", "exhaustive_suites"})

    trust_anchors: tuple[str, ...] = ()
    """PEM files of extra trusted CAs (provincial or government CAs missing from public stores)."""
    starttls: dict[Annotated[int, Field(ge=1, le=65535)], StartTls] = Field(default_factory=dict)
    """Ports that speak a plain protocol upgraded by STARTTLS, beyond the usual ones."""
    extra_tls_ports: tuple[Annotated[int, Field(ge=1, le=65535)], ...] = ()
    """Open ports to scan as implicit TLS besides the well-known ones."""
    max_connections_per_server: int = Field(default=3, ge=1, le=10)
    """Connections the TLS scan may hold open to one IP address at a time, all its ports together."""
    exhaustive_suites: bool = False
    """Enumerate cipher suites one handshake per suite and curves one per curve, and run ROBOT
    everywhere, as sslyze does (hundreds of connections per endpoint), instead of by elimination
    (one per accepted suite or curve, plus one per group) with ROBOT skipped where no suite with
    RSA key exchange was accepted: the same answer, which tests/checks/tls/test_elimination.py
    proves on every lab server; for an auditor who wants the brute-force path."""
