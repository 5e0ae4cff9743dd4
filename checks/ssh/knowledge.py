"""The SSH knowledge tables in checks/ssh/data/, validated once when first used."""

import json
import re
from datetime import date
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


class SshAuditDifference(Frozen):
    """Algorithms ssh-audit fails that the baseline accepts on purpose, and why."""

    reason: str
    kex: tuple[str, ...] = ()
    key: tuple[str, ...] = ()
    enc: tuple[str, ...] = ()
    mac: tuple[str, ...] = ()


class _Differences(Frozen):
    comment: str = Field(alias="_comment")
    source: str
    read: date
    differences: tuple[SshAuditDifference, ...]


def _read(name: str) -> str:
    return files("attt.checks.ssh").joinpath("data", name).read_text(encoding="utf-8")


@cache
def profiles() -> dict[str, AlgorithmProfile]:
    return _Profiles.model_validate(json.loads(_read("ssh_profiles.json"))).profiles


@cache
def ssh_audit_differences() -> tuple[SshAuditDifference, ...]:
    return _Differences.model_validate(json.loads(_read("ssh_audit_differences.json"))).differences


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
