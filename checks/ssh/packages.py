"""Package versions of the distributions' OpenSSH builds: how they order, and how a banner
names one.

A Debian or Ubuntu sshd shows its package revision in the banner (`OpenSSH_9.2p1
Debian-2+deb12u3` is package `1:9.2p1-2+deb12u3`), so a backported fix can be read from the
network. A Red Hat family sshd shows only `OpenSSH_8.7`: the fix level is invisible there and
only the installed package (read with a credential) tells.
"""

import re
from dataclasses import dataclass
from typing import Literal

Distribution = Literal["debian", "ubuntu", "rhel"]

# Debian and Ubuntu have packaged OpenSSH with epoch 1 since 2003; the banner drops the epoch.
_DEB_EPOCH = "1"
_BANNER_BUILD = re.compile(
    r"^OpenSSH_(?P<upstream>[0-9][0-9.]*p[0-9]+) (?P<vendor>Debian|Ubuntu)-(?P<revision>[0-9A-Za-z.+~]+)$"
)
_DEBIAN_RELEASE = re.compile(r"(?:\+deb|~bpo|~deb)(?P<release>[0-9]{2})")
_DPKG_DISTRIBUTIONS: dict[str, Distribution] = {"debian": "debian", "ubuntu": "ubuntu"}
_RHEL_FAMILY = frozenset({"rhel", "centos", "rocky", "almalinux", "ol", "circle", "eurolinux"})


@dataclass(frozen=True)
class Build:
    """One distribution build of OpenSSH, as far as it is known."""

    distribution: Distribution
    package_version: str
    """In the package manager's own form: `1:9.2p1-2+deb12u3`, `0:8.7p1-38.el9_4.1`."""
    release: str | None = None
    """`12`, `22.04`, `9`; None when the build does not say (then the upstream version may)."""


def banner_build(software: str) -> Build | None:
    """The Debian or Ubuntu build a banner's software field names, or None for any other."""
    match = _BANNER_BUILD.match(software.strip())
    if match is None:
        return None
    vendor: Distribution = "debian" if match["vendor"] == "Debian" else "ubuntu"
    revision = match["revision"]
    release = _DEBIAN_RELEASE.search(revision) if vendor == "debian" else None
    return Build(
        distribution=vendor,
        package_version=f"{_DEB_EPOCH}:{match['upstream']}-{revision}",
        release=release["release"] if release else None,
    )


def package_build(os_id: str, os_version: str, manager: str, version: str) -> Build | None:
    """The build an authenticated probe found installed (os-release ID and VERSION_ID, and the
    package manager's version of openssh-server), or None for a system outside the table."""
    os_id = os_id.lower()
    if manager == "dpkg" and os_id in _DPKG_DISTRIBUTIONS:
        distribution = _DPKG_DISTRIBUTIONS[os_id]
        return Build(distribution=distribution, package_version=version, release=os_version or None)
    if os_id in _RHEL_FAMILY and manager == "rpm":
        # Rocky, Alma and the others rebuild Red Hat's sources with Red Hat's revisions.
        major = os_version.split(".")[0]
        return Build(distribution="rhel", package_version=version, release=major or None)
    return None


def upstream_of(package_version: str) -> str:
    """`1:9.2p1-2+deb12u3` → `9.2p1`: the upstream part of a dpkg or rpm version."""
    _, _, rest = package_version.rpartition(":")
    upstream, _, _ = rest.partition("-")
    return upstream


def compare(distribution: Distribution, left: str, right: str) -> int:
    """-1, 0 or 1 as `left` is older than, equal to or newer than `right`."""
    if distribution == "rhel":
        return _compare_evr(left, right)
    return _compare_dpkg(left, right)


# --- dpkg (Debian Policy 5.6.12) ---------------------------------------------------------


def _split_dpkg(version: str) -> tuple[int, str, str]:
    epoch, colon, rest = version.partition(":")
    if not colon:
        epoch, rest = "0", version
    upstream, dash, revision = rest.rpartition("-")
    if not dash:
        upstream, revision = rest, ""
    return int(epoch or 0), upstream, revision


def _dpkg_order(char: str) -> int:
    if char == "~":
        return -1
    if char.isalpha():
        return ord(char)
    return ord(char) + 256


def _dpkg_part(left: str, right: str) -> int:
    i = j = 0
    while i < len(left) or j < len(right):
        # Non-digit runs compare character by character: `~` before anything, even the end.
        while (i < len(left) and not left[i].isdigit()) or (j < len(right) and not right[j].isdigit()):
            a = _dpkg_order(left[i]) if i < len(left) and not left[i].isdigit() else 0
            b = _dpkg_order(right[j]) if j < len(right) and not right[j].isdigit() else 0
            if a != b:
                return -1 if a < b else 1
            i += 1
            j += 1
        start_i, start_j = i, j
        while i < len(left) and left[i].isdigit():
            i += 1
        while j < len(right) and right[j].isdigit():
            j += 1
        a_num = int(left[start_i:i] or 0)
        b_num = int(right[start_j:j] or 0)
        if a_num != b_num:
            return -1 if a_num < b_num else 1
    return 0


def _compare_dpkg(left: str, right: str) -> int:
    (le, lu, lr), (re_, ru, rr) = _split_dpkg(left), _split_dpkg(right)
    if le != re_:
        return -1 if le < re_ else 1
    return _dpkg_part(lu, ru) or _dpkg_part(lr, rr)


# --- rpm (rpmvercmp) ---------------------------------------------------------------------

_RPM_SEGMENT = re.compile(r"(~|\^|[0-9]+|[A-Za-z]+)")


def _rpm_segments(text: str) -> list[str]:
    return _RPM_SEGMENT.findall(text)


def _rpmvercmp(left: str, right: str) -> int:
    if left == right:
        return 0
    a, b = _rpm_segments(left), _rpm_segments(right)
    for x, y in zip(a, b, strict=False):
        if x == y:
            continue
        if "~" in (x, y):
            return -1 if x == "~" else 1
        if "^" in (x, y):
            return 1 if x == "^" else -1
        if x.isdigit() != y.isdigit():
            # A numeric segment is newer than an alphabetic one.
            return 1 if x.isdigit() else -1
        if x.isdigit():
            xi, yi = int(x), int(y)
            if xi != yi:
                return -1 if xi < yi else 1
            continue
        return -1 if x < y else 1
    if len(a) == len(b):
        return 0
    longer, sign = (a, 1) if len(a) > len(b) else (b, -1)
    # A trailing `~` makes the longer one older; anything else makes it newer.
    nxt = longer[min(len(a), len(b))]
    return -sign if nxt == "~" else sign


def _split_evr(version: str) -> tuple[int, str, str]:
    epoch, colon, rest = version.partition(":")
    if not colon:
        epoch, rest = "0", version
    ver, _, release = rest.partition("-")
    return int(epoch or 0), ver, release


def _compare_evr(left: str, right: str) -> int:
    (le, lv, lr), (re_, rv, rr) = _split_evr(left), _split_evr(right)
    if le != re_:
        return -1 if le < re_ else 1
    return _rpmvercmp(lv, rv) or _rpmvercmp(lr, rr)
