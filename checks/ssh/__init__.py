"""The `ssh` check: SSH server hardening seen from the network, and with a credential, from
the effective sshd configuration."""

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from pydantic import BaseModel

from attt.checks.ssh.controls import CONTROLS
from attt.checks.ssh.models import SshData, SshSettings
from attt.checks.ssh.probe import probe_target
from attt.scanner.models.observation import Observation
from attt.scanner.models.target import Target
from attt.scanner.plugin import API_VERSION, Control, ProbeContext

__all__ = ["SshCheck", "SshData", "SshSettings"]


class SshCheck:
    """One observation per SSH endpoint: the declared `ssh` services and the ports the ports
    check found speaking SSH (or open on 22)."""

    name: ClassVar[str] = "ssh"
    api_version: ClassVar[int] = API_VERSION
    data_model: ClassVar[type[BaseModel]] = SshData
    settings_model: ClassVar[type[BaseModel]] = SshSettings
    after: ClassVar[tuple[str, ...]] = ("ports",)
    cpu_heavy: ClassVar[bool] = True  # key exchanges (paramiko) are CPU work under the GIL
    controls: ClassVar[Mapping[str, Control[Any, Any]]] = CONTROLS

    def probe(self, target: Target, ctx: ProbeContext[SshSettings]) -> Iterable[Observation]:
        return probe_target(target, ctx)
