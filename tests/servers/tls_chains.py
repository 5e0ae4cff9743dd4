"""TLS servers whose certificate chains are unusual or hostile, on 127.0.222.0/24.

A test CA (an EC root, never installed anywhere: scans get it as a trust anchor) issues three
intermediates: a sound one (EC P-256, SHA-256), one with an RSA-1024 key, and one whose own
signature uses SHA-1 (made with the openssl command line: `cryptography` refuses to sign with
SHA-1). Each server is an `openssl s_server` sending one leaf (ECDSA P-256, SHA-256) and some of
the chain (`CHAINS`); one has a second leaf, RSA and expired, which only a client offering no
ECDSA suite is sent. Every server stops with its `with` block.
"""

import datetime as dt
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

from tests.servers.tls import OPENSSL_LEGACY_CONF, TlsServer, _process, _s_server, _write_key

NET = "127.0.222"
PORT = 443
DOMAIN = "chains.attt.test"

Key = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
OCSP_TRY_LATER = b"\x30\x03\x0a\x01\x03"
"""An OCSPResponse whose status is tryLater (3), with no response bytes: what a server staples
when it passes on its responder's error (Apache does by default)."""


@dataclass(frozen=True)
class Chain:
    """What one server sends after its leaf: which intermediate issued the leaf, whether that
    intermediate is sent, and whether the root is sent too (before it, out of order)."""

    issuer: str
    send_issuer: bool = True
    root_first: bool = False
    expired_rsa_too: bool = False
    """A second leaf, RSA-2048 and expired, for clients that offer only RSA authentication."""
    stapled: bytes | Literal["revoked"] | None = None
    """An OCSP response (DER) stapled to every handshake, or `revoked`: one the issuer signed
    saying the leaf is revoked; the leaf then names a responder."""


CHAINS: dict[str, Chain] = {
    "sound": Chain("sound"),
    "out-of-order": Chain("sound", root_first=True),
    "weak-key-intermediate": Chain("rsa1024"),
    "sha1-intermediate": Chain("sha1"),
    "sha1-intermediate-missing": Chain("sha1", send_issuer=False),
    "expired-rsa-beside-ecdsa": Chain("sound", expired_rsa_too=True),
    "ocsp-try-later-stapled": Chain("sound", stapled=OCSP_TRY_LATER),
    "ocsp-revoked-stapled": Chain("sound", stapled="revoked"),
}


@dataclass(frozen=True)
class ChainLab:
    ca_file: Path
    servers: dict[str, TlsServer]


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _ca(
    subject: x509.Name, issuer: x509.Name, key: Key, now: dt.datetime, days: int
) -> x509.CertificateBuilder:
    """A CA certificate for `key`, valid from a day before `now` for `days` days, to be signed."""
    usage = x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
        key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False,
    )  # fmt: skip
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )


def _write(cert: x509.Certificate, path: Path) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def _sha1_intermediate(workdir: Path, root: Path, root_key: Path, now: dt.datetime) -> tuple[Path, Key]:
    key = ec.generate_private_key(ec.SECP256R1())
    key_path = _write_key(key, workdir / "sha1.key")
    csr, ext, cert = workdir / "sha1.csr", workdir / "sha1.ext", workdir / "sha1.pem"
    ext.write_text(
        "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign,digitalSignature\n"
        "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"
    )
    run = {"check": True, "capture_output": True, "timeout": 30}
    subprocess.run(
        ["openssl", "req", "-new", "-key", str(key_path), "-subj", "/CN=attt chains SHA-1 intermediate",
         "-out", str(csr)],
        **run,  # type: ignore[call-overload]
    )  # fmt: skip
    subprocess.run(
        ["openssl", "x509", "-req", "-sha1", "-days", "30", "-in", str(csr), "-CA", str(root), "-CAkey",
         str(root_key), "-set_serial", "2222", "-extfile", str(ext), "-out", str(cert)],
        **run,  # type: ignore[call-overload]
    )  # fmt: skip
    return cert, key


def _leaf(
    workdir: Path,
    stem: str,
    host: str,
    key: Key,
    issuer: tuple[x509.Certificate, Key],
    now: dt.datetime,
    ocsp: bool = False,
) -> tuple[Path, Path]:
    """A server certificate for `host`, valid from a day before `now` for 60 days (naming an OCSP
    responder with `ocsp`), and its key."""
    day = dt.timedelta(days=1)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(host))
        .issuer_name(issuer[0].subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - day)
        .not_valid_after(now + 60 * day)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer[1].public_key()), critical=False
        )
    )
    if ocsp:
        responder = x509.UniformResourceIdentifier(f"http://ocsp.{DOMAIN}/")
        access = x509.AccessDescription(AuthorityInformationAccessOID.OCSP, responder)
        builder = builder.add_extension(x509.AuthorityInformationAccess([access]), critical=False)
    cert = builder.sign(issuer[1], hashes.SHA256())
    return _write(cert, workdir / f"{stem}-leaf.pem"), _write_key(key, workdir / f"{stem}-leaf.key")


def _revoked(leaf: Path, issuer: tuple[x509.Certificate, Key], now: dt.datetime) -> bytes:
    """A successful OCSP response, signed by the leaf's issuer, saying the leaf is revoked."""
    cert = x509.load_pem_x509_certificate(leaf.read_bytes())
    single = ocsp.OCSPResponseBuilder().add_response(
        cert=cert, issuer=issuer[0], algorithm=hashes.SHA256(), cert_status=ocsp.OCSPCertStatus.REVOKED,
        this_update=now, next_update=now + dt.timedelta(days=1), revocation_time=now - dt.timedelta(hours=1),
        revocation_reason=x509.ReasonFlags.key_compromise,
    )  # fmt: skip
    response = single.responder_id(ocsp.OCSPResponderEncoding.HASH, issuer[0]).sign(
        issuer[1], hashes.SHA256()
    )
    return response.public_bytes(serialization.Encoding.DER)


@contextmanager
def chain_lab(workdir: Path) -> Iterator[ChainLab]:
    """Make the CA, intermediates and leaves in `workdir`; start one server per `CHAINS` entry."""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    day = dt.timedelta(days=1)
    root_key = ec.generate_private_key(ec.SECP256R1())
    root_name = _name("attt chains root")
    root_cert = _ca(root_name, root_name, root_key, now, 365).sign(root_key, hashes.SHA256())
    root = _write(root_cert, workdir / "root.pem")
    intermediates: dict[str, tuple[Path, Key]] = {}
    for stem, key in (
        ("sound", ec.generate_private_key(ec.SECP256R1())),
        ("rsa1024", rsa.generate_private_key(public_exponent=65537, key_size=1024)),  # noqa: S505 - under test
    ):
        cert = (
            _ca(_name(f"attt chains {stem} intermediate"), root_name, key, now, 90)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), False)
            .sign(root_key, hashes.SHA256())
        )
        intermediates[stem] = (_write(cert, workdir / f"{stem}.pem"), key)
    intermediates["sha1"] = _sha1_intermediate(workdir, root, _write_key(root_key, workdir / "root.key"), now)
    servers = {
        name: TlsServer(name, f"{NET}.{10 + i}", PORT, f"{name}.{DOMAIN}") for i, name in enumerate(CHAINS)
    }
    conf = workdir / "openssl-legacy.cnf"
    conf.write_text(OPENSSL_LEGACY_CONF)  # lets s_server send an RSA-1024 or SHA-1 intermediate
    with ExitStack() as stack:
        for name, chain in CHAINS.items():
            issuer_path, issuer_key = intermediates[chain.issuer]
            issuer = x509.load_pem_x509_certificate(issuer_path.read_bytes())
            issuer_cert = (issuer, issuer_key)
            host = servers[name].hostname
            leaf_key = ec.generate_private_key(ec.SECP256R1())
            ocsp = chain.stapled is not None
            leaf, leaf_key_path = _leaf(workdir, name, host, leaf_key, issuer_cert, now, ocsp=ocsp)
            sent = [root] if chain.root_first else []
            sent += [issuer_path] if chain.send_issuer else []
            flags = [
                "-no_tls1_3",
                "-cipher",
                "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256@SECLEVEL=0",
            ]
            if chain.expired_rsa_too:
                rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
                expired = _leaf(workdir, f"{name}-rsa", host, rsa_key, issuer_cert, now - 100 * day)
                flags += ["-dcert", str(expired[0]), "-dkey", str(expired[1])]
            if sent:
                bundle = workdir / f"{name}-chain.pem"
                bundle.write_bytes(b"".join(path.read_bytes() for path in sent))
                flags += ["-cert_chain", str(bundle)]
            if chain.stapled is not None:
                staple = _revoked(leaf, issuer_cert, now) if chain.stapled == "revoked" else chain.stapled
                (workdir / f"{name}.ocsp").write_bytes(staple)
                flags += ["-status_file", str(workdir / f"{name}.ocsp")]
            argv = _s_server(servers[name], leaf, leaf_key_path, *flags)
            stack.enter_context(_process(argv, servers[name], workdir, {"OPENSSL_CONF": str(conf)}))
        yield ChainLab(ca_file=root, servers=servers)
