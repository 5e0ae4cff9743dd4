"""Which known OpenSSH CVEs a server's build is exposed to, decided from the distribution's
own fixed revisions (checks/ssh/data/ssh_cves.json) rather than the upstream version alone."""

import json
from dataclasses import dataclass
from datetime import date
from functools import cache
from importlib.resources import files
from typing import Literal

from pydantic import Field

from attt.checks.ssh.knowledge import Version, parse_openssh, parse_version_number
from attt.checks.ssh.packages import Build, Distribution, compare, upstream_of
from attt.scanner.models.base import Frozen, Severity, Text

Kind = Literal["pre-auth-remote", "post-auth", "client-side"]
KINDS: tuple[Kind, ...] = ("pre-auth-remote", "post-auth", "client-side")
Confidence = Literal["verified", "secondary", "unverified"]


class CveFix(Frozen):
    distribution: Distribution
    release: str
    fixed: str
    """The first package version that carries the fix, in the package manager's form."""
    advisory: str
    published: date
    source: str
    confidence: Confidence


class KnownCve(Frozen):
    id: str = Field(pattern=r"^CVE-\d{4}-\d{4,}$")
    name: str | None = None
    kind: Kind
    severity: Severity
    summary: str
    ranges: tuple[tuple[str | None, str], ...]
    """[introduced, fixed) pairs in portable numbering, e.g. `8.5p1`."""
    source: str
    confidence: Confidence
    fixes: tuple[CveFix, ...] = ()

    def affects(self, version: Version) -> bool:
        return any(
            (low is None or parse_version_number(low) <= version) and version < parse_version_number(high)
            for low, high in self.ranges
        )

    def fix_for(self, distribution: str, release: str) -> CveFix | None:
        # An unverified revision never decides: a wrong one would turn into an unearned pass.
        return next(
            (
                f
                for f in self.fixes
                if f.distribution == distribution and f.release == release and f.confidence != "unverified"
            ),
            None,
        )

    @property
    def label(self) -> str:
        return f"{self.id} ({self.name})" if self.name else self.id


class Release(Frozen):
    distribution: Distribution
    release: str
    codename: str | None
    upstream: str
    """The upstream OpenSSH version the release ships (its security updates keep it)."""


class CveTable(Frozen):
    comment: str = Field(alias="_comment")
    read: date
    releases: tuple[Release, ...]
    cves: tuple[KnownCve, ...]

    def release_of(self, build: Build, upstream: str) -> str | None:
        """The release a build belongs to: named by the build, or the one release of that
        distribution that ships this upstream version."""
        if build.release is not None:
            return build.release
        matches = [
            r.release
            for r in self.releases
            if r.distribution == build.distribution and r.upstream == upstream
        ]
        return matches[0] if len(matches) == 1 else None


@cache
def cve_table() -> CveTable:
    text = files("attt.checks.ssh").joinpath("data", "ssh_cves.json").read_text(encoding="utf-8")
    return CveTable.model_validate(json.loads(text))


Outcome = Literal["clear", "affected", "undecided"]


@dataclass(frozen=True)
class Exposure:
    cve: KnownCve
    outcome: Outcome
    why: Text
    fix: CveFix | None = None
    """The distribution fix that decided the outcome, if one did."""


def exposure(cve: KnownCve, software: str, build: Build | None, from_package: bool) -> Exposure:
    """How one CVE stands for a server: `software` is the banner's software field, `build` the
    distribution build (from the installed package when `from_package`, else from the banner)."""
    upstream = upstream_of(build.package_version) if from_package and build else None
    version = parse_openssh(f"OpenSSH_{upstream}") if upstream else parse_openssh(software)
    if version is None:
        # Never "clear" on a version nobody could read.
        return Exposure(
            cve,
            "undecided",
            Text(vi="không đọc được phiên bản OpenSSH", en="the OpenSSH version could not be read"),
        )
    if not cve.affects(version):
        return Exposure(
            cve,
            "clear",
            Text(
                vi="phiên bản gốc nằm ngoài khoảng bị ảnh hưởng",
                en="upstream version outside the affected range",
            ),
        )
    if build is None:
        return _without_build(cve, software)
    table = cve_table()
    release = table.release_of(build, upstream or _upstream_text(software))
    name = f"{build.distribution} {release}" if release else build.distribution
    fix = cve.fix_for(build.distribution, release) if release else None
    if fix is None:
        return Exposure(
            cve,
            "undecided",
            Text(
                vi=f"bảng của attt không có bản vá của {name} cho CVE này nên không xác định được"
                f" bản build {build.package_version} đã được vá hay chưa",
                en=f"attt's table has no fixed {name} revision for it, so whether build"
                f" {build.package_version} carries a fix cannot be told",
            ),
        )
    if compare(build.distribution, build.package_version, fix.fixed) >= 0:
        return Exposure(
            cve,
            "clear",
            Text(
                vi=f"đã vá từ {fix.fixed} ({fix.advisory})",
                en=f"fixed since {fix.fixed} ({fix.advisory})",
            ),
            fix,
        )
    return Exposure(
        cve,
        "affected",
        Text(
            vi=f"{build.package_version} cũ hơn bản vá {fix.fixed} ({fix.advisory})",
            en=f"{build.package_version} predates the fix {fix.fixed} ({fix.advisory})",
        ),
        fix,
    )


def _upstream_text(software: str) -> str:
    return software.removeprefix("OpenSSH_").split(" ")[0]


def _without_build(cve: KnownCve, software: str) -> Exposure:
    """No distribution build is known: a plain `X.YpZ` is an upstream build with nothing
    backported; anything else (Red Hat's bare `8.7`, another vendor's comment) hides it."""
    plain = software.strip()
    if " " not in plain and "p" in plain.removeprefix("OpenSSH_"):
        return Exposure(
            cve,
            "affected",
            Text(
                vi="bản build gốc không có hậu tố của bản phân phối, nằm trong khoảng bị ảnh hưởng",
                en="an upstream build with no distribution suffix, inside the affected range",
            ),
        )
    return Exposure(
        cve,
        "undecided",
        Text(
            vi="không xác định được từ banner: bản phân phối (như họ Red Hat) có thể đã vá bổ sung mà"
            " không đổi chuỗi phiên bản; cần tài khoản kiểm tra để đọc phiên bản gói đã cài",
            en="cannot be told from the banner: the vendor (e.g. the Red Hat family) may have"
            " backported the fix without changing the version string; a credential lets the probe"
            " read the installed package",
        ),
    )
