"""The credentials file: logins for authenticated probes (today: `sshd -T` over SSH).

```yaml
# chmod 600: a file that group or others may read or write is refused
systems:                      # by system id: every host of the system
  dichvucong: {user: attt-audit, key_file: keys/attt_ed25519, sudo: true}
hosts:                        # by host address as written in the inventory; wins over systems
  10.213.1.10: {user: root, password_env: ATTT_SSH_PASSWORD}
```

Each entry has `user` and exactly one of `key_file` (relative paths are read from the
credentials file's directory), `password` or `password_env` (the name of an environment
variable holding the password). Secrets never appear in a repr, a log line or an error.
"""

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from pydantic import Field, SecretStr, model_validator

from attt.scanner._yaml import YamlDoc, load_yaml, validate
from attt.scanner.errors import ConfigError
from attt.scanner.models.base import Frozen
from attt.scanner.models.target import Address, SystemId, Target
from attt.scanner.plugin import Credential

_PRIVATE_MODE_BITS = stat.S_IRWXG | stat.S_IRWXO


class CredentialEntry(Frozen):
    user: str = Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}$")
    key_file: str | None = Field(default=None, min_length=1, max_length=4096)
    password: SecretStr | None = None
    password_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
    sudo: bool = False
    """Run privileged commands through `sudo -n` (never prompts; the sudoers rule must allow it):
    `sshd -T`, `sshd -ddd -T` (which names the files sshd reads) and `grep -H -n -e '' --` over
    those files (their Match blocks); without the last two, rules on settings pass only where
    the Match blocks were read."""

    @model_validator(mode="after")
    def _one_secret(self) -> Self:
        given = [n for n in ("key_file", "password", "password_env") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of key_file, password, password_env")
        return self


class CredentialsFile(Frozen):
    systems: dict[SystemId, CredentialEntry] = Field(default_factory=dict)
    hosts: dict[Address, CredentialEntry] = Field(default_factory=dict)


@dataclass(frozen=True, repr=False)
class CredentialStore:
    """Credentials resolved at load time (environment read, key paths made absolute)."""

    by_system: dict[str, Credential]
    by_host: dict[str, Credential]

    def for_target(self, target: Target) -> Credential | None:
        """The host's entry (by inventory address, then pinned IP), else its system's, else None."""
        return (
            self.by_host.get(target.address)
            or self.by_host.get(target.ip)
            or self.by_system.get(target.system.id)
        )

    def __repr__(self) -> str:
        return f"CredentialStore(systems={len(self.by_system)}, hosts={len(self.by_host)})"


def load_credentials(path: Path) -> CredentialStore:
    """Load and resolve a credentials file; ConfigError (exit 2) for anything wrong with it."""
    refuse_shared_file(path)
    doc = load_yaml(path)
    parsed = validate(CredentialsFile, doc)
    base = path.resolve().parent
    return CredentialStore(
        by_system={k: _resolve(doc, ("systems", k), e, base) for k, e in parsed.systems.items()},
        by_host={k: _resolve(doc, ("hosts", k), e, base) for k, e in parsed.hosts.items()},
    )


def refuse_shared_file(path: Path, what: str = "credentials file") -> None:
    """ConfigError unless only the owner may read and write `path` (as OpenSSH treats keys): a
    warning would scroll past in a nightly job."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if mode & _PRIVATE_MODE_BITS:
        raise ConfigError(
            f"{path}: {what} is accessible to group or others "
            f"(mode {stat.S_IMODE(mode):04o}); run `chmod 600 {path}`"
        )


def _resolve(doc: YamlDoc, loc: tuple[str, str], entry: CredentialEntry, base: Path) -> Credential:
    if entry.key_file is not None:
        key = Path(entry.key_file).expanduser()
        key = key if key.is_absolute() else base / key
        if not key.is_file():
            raise doc.error((*loc, "key_file"), "no such key file")
        if key.stat().st_mode & _PRIVATE_MODE_BITS:
            raise doc.error((*loc, "key_file"), "key file is accessible to group or others; chmod 600 it")
        return Credential(user=entry.user, key_file=str(key), sudo=entry.sudo)
    if entry.password_env is not None:
        value = os.environ.get(entry.password_env)
        if not value:
            raise doc.error((*loc, "password_env"), f"environment variable {entry.password_env} is not set")
        return Credential(user=entry.user, password=SecretStr(value), sudo=entry.sudo)
    return Credential(user=entry.user, password=entry.password, sudo=entry.sudo)
