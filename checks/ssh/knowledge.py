"""The SSH knowledge tables in checks/data/, validated once when first used."""

import json
import re
from functools import cache
from importlib.resources import files
from typing import Literal

from pydantic import Field

from attt.scanner.models.base import Frozen

_OPENSSH = re.compile(r"^OpenSSH_(\d+)\.(\d+)(?:\.\d+)?(?:p(\d+))?")

Version = tuple[int, int, int]


class AlgorithmProfile(Frozen):
    source: str
    confidence: Literal["verified", "secondary", "unverified"]
    kex: tuple[str, ...]
    ciphers: tuple[str, ...]
    macs: tuple[str, ...]
    host_key_algorithms: tuple[str, ...]


class _Profiles(Frozen):
    comment: str = Field(alias="_comment")
    profiles: dict[str, AlgorithmProfile]


class KnownCve(Frozen):
    id: str = Field(pattern=r"^CVE-\d{4}-\d{4,}$")
    name: str | None = None
    summary: str
    ranges: tuple[tuple[str | None, str], ...]
    """[introduced, fixed) pairs in portable numbering, e.g. `8.5p1`."""
    confidence: Literal["verified", "secondary", "unverified"]

    def affects(self, version: Version) -> bool:
        return any(
            (low is None or parse_version_number(low) <= version) and version < parse_version_number(high)
            for low, high in self.ranges
        )


class _Cves(Frozen):
    comment: str = Field(alias="_comment")
    cves: tuple[KnownCve, ...]


def _read(name: str) -> str:
    return files("attt.checks.ssh").joinpath("data", name).read_text(encoding="utf-8")


@cache
def profiles() -> dict[str, AlgorithmProfile]:
    return _Profiles.model_validate(json.loads(_read("ssh_profiles.json"))).profiles


@cache
def known_cves() -> tuple[KnownCve, ...]:
    return _Cves.model_validate(json.loads(_read("ssh_cves.json"))).cves


def parse_version_number(text: str) -> Version:
    """`9.8p1` → (9, 8, 1). A release without `pN` is OpenBSD's, equal to portable `p1`."""
    parsed = parse_openssh(f"OpenSSH_{text}")
    if parsed is None:
        raise ValueError(f"not an OpenSSH version: {text!r}")
    return parsed


def parse_openssh(software: str) -> Version | None:
    """The version of an OpenSSH software string, or None for other software.

    Some vendors (Red Hat) drop the `pN`; treating it as `p1` keeps such builds in range.
    """
    match = _OPENSSH.match(software)
    if match is None:
        return None
    major, minor, patch = match.groups()
    return int(major), int(minor), int(patch or 1)


def distribution_suffix(software: str) -> str | None:
    """The comment after the version, e.g. `Debian-2+deb12u3`: the distribution's build."""
    _, _, comment = software.partition(" ")
    return comment.strip() or None
