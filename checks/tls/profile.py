"""Mozilla Server Side TLS 6.0, as data (checks/tls/data/mozilla-server-side-tls-6.0.json)."""

import json
from functools import cache
from importlib.resources import files
from typing import Literal

from attt.checks.tls.models import Protocol
from attt.scanner.models.base import Frozen

ProfileName = Literal["modern", "intermediate"]
PROFILE_FILE = "mozilla-server-side-tls-6.0.json"


class MozillaProfile(Frozen):
    protocols: tuple[Protocol, ...]
    cipher_suites: tuple[str, ...]
    """IANA names, TLS 1.3 and TLS 1.2 together."""
    groups: tuple[str, ...]
    certificate_key_types: tuple[str, ...]
    certificate_curves: tuple[str, ...]
    certificate_signatures: tuple[str, ...]
    rsa_key_min_bits: int | None
    dh_min_bits: int | None
    ecdh_min_bits: int | None
    max_certificate_lifetime_days: int
    ocsp_stapling: bool
    hsts_min_age: int


class MozillaGuidelines(Frozen):
    version: str
    source: str
    profiles: dict[ProfileName, MozillaProfile]


@cache
def mozilla_guidelines() -> MozillaGuidelines:
    text = files("attt.checks.tls").joinpath("data", PROFILE_FILE).read_text(encoding="utf-8")
    return MozillaGuidelines.model_validate(json.loads(text))
