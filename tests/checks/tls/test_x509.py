"""Certificate path facts (`attt.checks.tls.x509`): pure logic over certificates made here."""

import datetime as dt
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from attt.checks.tls.x509 import Anchors, issuer_path
from tests.servers.tls_chains import _ca, _leaf

NOW = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


def _root(common_name: str, key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    return _ca(name, name, key, NOW, 365).sign(key, hashes.SHA256())


def test_a_path_ends_at_the_anchor_that_names_and_signs_it_among_anchors_of_the_same_name(
    tmp_path: Path,
) -> None:
    key, impostor_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    root, impostor = _root("attt x509 root", key), _root("attt x509 root", impostor_key)
    leaf_pem, _ = _leaf(
        tmp_path, "x", "x.attt.test", ec.generate_private_key(ec.SECP256R1()), (root, key), NOW
    )
    leaf = x509.load_pem_x509_certificate(leaf_pem.read_bytes())
    others = [_root(f"attt x509 other {i}", ec.generate_private_key(ec.SECP256R1())) for i in range(3)]

    assert issuer_path(leaf, [], Anchors([*others, impostor, root])) == ([], None)
    # Named like the issuer but not its signer: the path stops under the issuer, unobserved.
    assert issuer_path(leaf, [], Anchors([*others, impostor])) == ([], "CN=attt x509 root")
    # The issuer sent by the server and an anchor itself: the anchor ends the path above it.
    assert issuer_path(leaf, [root], Anchors([root])) == ([], None)
    assert issuer_path(leaf, [root], Anchors(others)) == ([], None)  # a root sent along ends it too
