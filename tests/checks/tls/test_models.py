"""The tls data model's own definitions: the names it shares with the controls, and forward
secrecy, each defined once."""

from typing import get_args

from attt.checks.tls.controls import VulnerabilitiesParams
from attt.checks.tls.models import (
    ALL_VULNERABILITIES,
    Protocol,
    Vulnerabilities,
    VulnerabilityName,
    static_key_suites,
)


def test_vulnerability_names_are_the_model_fields_in_order() -> None:
    # A weakness added to the model but not to the Literal could never be asked about; one added
    # to the Literal only would make the control read a field that does not exist.
    assert get_args(VulnerabilityName) == ALL_VULNERABILITIES == tuple(Vulnerabilities.model_fields)
    assert VulnerabilitiesParams().checks == ALL_VULNERABILITIES


def test_static_key_suites_are_the_non_ephemeral_ones_before_tls_1_3() -> None:
    suites: dict[Protocol, tuple[str, ...]] = {
        "TLSv1.2": (
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
            "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384",
            "TLS_RSA_WITH_AES_128_CBC_SHA",
        ),
        "TLSv1.3": ("TLS_AES_128_GCM_SHA256",),
        "SSLv2": ("SSL_CK_RC4_128_WITH_MD5",),
    }
    assert static_key_suites(suites) == [
        "TLSv1.2 TLS_RSA_WITH_AES_128_CBC_SHA",
        "SSLv2 SSL_CK_RC4_128_WITH_MD5",
    ]
    assert static_key_suites({"TLSv1.3": ("TLS_CHACHA20_POLY1305_SHA256",)}) == []
