"""The `ssh` observation (facts only) and the check's settings."""

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from attt.scanner.models.base import Frozen
from attt.scanner.plugin import Settings

_SAFE_PATH = re.compile(r"^/[A-Za-z0-9_./-]{1,255}$")
AUTH_STEP = "auth_methods"
CONFIG_STEP = "sshd_t"
MATCH_STEP = "sshd_match"
STRICT_KEX_MARKER = "kex-strict-s-v00@openssh.com"
EXT_INFO_MARKER = "ext-info-s"
KEX_MARKERS = frozenset({STRICT_KEX_MARKER, EXT_INFO_MARKER, "ext-info-c", "kex-strict-c-v00@openssh.com"})
"""Names in the KEX list that signal extensions rather than name key exchanges."""


def _absolute_path(value: str) -> str:
    if not _SAFE_PATH.match(value):
        raise ValueError("must be an absolute path of letters, digits and _ . / -")
    return value


RemotePath = Annotated[str, AfterValidator(_absolute_path)]


class HostKey(Frozen):
    type: str
    """The key's type as the server encodes it (`ssh-ed25519`, `ssh-rsa`, `ecdsa-sha2-nistp256`)."""
    bits: int
    sha256: str
    """OpenSSH-style fingerprint, `SHA256:<base64>`."""


class InstalledPackage(Frozen):
    """The openssh-server package an authenticated probe found, and the system around it."""

    manager: Literal["dpkg", "rpm"]
    version: str = Field(max_length=120)
    """As the package manager prints it: `1:9.2p1-2+deb12u3`, `0:8.7p1-38.el9_4.1`."""
    os_id: str = Field(max_length=40)
    """`ID` of /etc/os-release (`debian`, `ubuntu`, `rhel`, `rocky`, ...)."""
    os_version: str = Field(max_length=40)
    """`VERSION_ID` of /etc/os-release (`12`, `22.04`, `9.4`)."""


class SshData(Frozen):
    """What one SSH endpoint showed: its greeting, its KEXINIT lists and authentication surface."""

    banner: str
    """The identification string as sent, e.g. `SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3`."""
    protocol: str
    """`2.0`; `1.99` means SSH-1 is also accepted; `1.x` means SSH-1 only (no lists below)."""
    software: str
    """Software version and comments, distribution suffix kept (it matters for patch status)."""
    kex: tuple[str, ...]
    """As the server listed it, markers such as `ext-info-s` included."""
    host_key_algorithms: tuple[str, ...]
    ciphers: tuple[str, ...]
    """Client-to-server; `ciphers_server_to_client` is set only when that list differs."""
    ciphers_server_to_client: tuple[str, ...] | None = None
    macs: tuple[str, ...]
    macs_server_to_client: tuple[str, ...] | None = None
    compression: tuple[str, ...]
    compression_server_to_client: tuple[str, ...] | None = None
    strict_kex: bool
    """`kex-strict-s-v00@openssh.com` offered: the Terrapin (CVE-2023-48795) countermeasure."""
    ext_info: bool
    auth_methods: tuple[str, ...] | None
    """Methods offered to an unknown user after a `none` request; None when that was impossible."""
    auth_banner: str | None = None
    host_keys: tuple[HostKey, ...]
    config: dict[str, str] | None = None
    """Effective `sshd -T` settings (lower-case keys), or None when not collected."""
    config_error: str | None = None
    """Why `sshd -T` could not be collected although a credential was given."""
    config_match: dict[str, tuple[str, ...]] | None = None
    """Keywords (as `sshd -T` names them) that a `Match` block other than `Match all` sets, each
    with where (`file:line under Match User alice`): for some users or addresses they differ from
    what `config` shows. Empty when no Match block sets anything; None when not read."""
    package: InstalledPackage | None = None
    """The installed openssh-server, read with the credential; None without one."""
    package_error: str | None = None
    """Why the installed package could not be read although a credential was given."""
    notes: tuple[str, ...] = ()
    """What the probe could not see (e.g. a host key type paramiko cannot fetch)."""
    incomplete: tuple[str, ...] = ()
    """Probe steps that were attempted and did not complete: `auth_methods` (the `none`
    authentication query), `sshd_t` (the credentialed `sshd -T`), `sshd_match` (the Match blocks
    of the configuration it read). A rule that needs one is `error`; the facts of the other
    steps stand."""
    step_errors: dict[str, str] = Field(default_factory=dict)
    """Why each incomplete step failed."""

    @property
    def speaks_ssh2(self) -> bool:
        return self.protocol in ("2.0", "1.99")

    def all_ciphers(self) -> tuple[str, ...]:
        return _union(self.ciphers, self.ciphers_server_to_client)

    def all_macs(self) -> tuple[str, ...]:
        return _union(self.macs, self.macs_server_to_client)

    def kex_algorithms(self) -> tuple[str, ...]:
        """The KEX list without extension markers."""
        return tuple(k for k in self.kex if k not in KEX_MARKERS)


def _union(first: tuple[str, ...], second: tuple[str, ...] | None) -> tuple[str, ...]:
    return first + tuple(x for x in second or () if x not in first)


class SshSettings(Settings):
    """Per-policy settings of the ssh check."""

    probe_user: str = Field(default="attt-probe", pattern=r"^[a-z_][a-z0-9_-]{0,31}$")
    """The neutral user name of the `none` authentication request."""
    sshd_path: RemotePath = "/usr/sbin/sshd"
    """Where `sshd` lives on the targets, for the credentialed `sshd -T`."""
    sshd_config: RemotePath | None = None
    """A non-default sshd_config for `sshd -T -f`; None reads the system's default file."""
