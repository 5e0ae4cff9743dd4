"""The ssh probe: the only I/O of the check. Per endpoint, a handful of connections:
one plain socket for the greeting and KEXINIT, one paramiko session per distinct host key
(the first also asks which authentication methods an unknown user may try), and, with a
credential, one authenticated session for `sshd -T`."""

import time
from collections.abc import Iterable
from typing import cast

from attt.checks.ports.models import ports_seen
from attt.checks.ssh.models import (
    AUTH_STEP,
    CONFIG_STEP,
    EXT_INFO_MARKER,
    MATCH_STEP,
    STRICT_KEX_MARKER,
    HostKey,
    InstalledPackage,
    SshData,
    SshSettings,
)
from attt.checks.ssh.wire import NoSshHere, ServerHello, WireError, read_server_hello
from attt.scanner.models.observation import Observation, bound_text
from attt.scanner.models.target import Target
from attt.scanner.plugin import ProbeContext

CHECK = "ssh"
DEFAULT_PORT = 22
ALTERNATE_PORTS = frozenset({2222})
"""Where SSH often runs besides 22; nmap's port table names 2222 otherwise (EtherNetIP-1)."""
MAX_AUTH_BANNER = 2000
MAX_NOTE = 300


class _Budget:
    """One endpoint's share of the whole-target timeout, handed out one connection at a time."""

    def __init__(self, seconds: float, per_connection: float) -> None:
        self._deadline = time.monotonic() + seconds
        self._per_connection = per_connection

    def next(self) -> float:
        return max(0.0, min(self._per_connection, self._deadline - time.monotonic()))

    @property
    def exhausted(self) -> bool:
        return self.next() < 0.2


def ssh_ports(target: Target, prior: Iterable[Observation]) -> tuple[tuple[int, ...], frozenset[int]]:
    """Ports declared as `ssh` in the inventory, plus open ports the ports check saw as ssh or 22;
    and the ports that may hold SSH without anyone having seen it: 22 when no port scan of the
    host covered it, an open 2222 whose service nobody identified. Those count only if SSH answers."""
    ports = set(target.declared_ports("ssh"))
    seen = ports_seen(prior)
    maybe: set[int] = set()
    if seen is not None:
        for p in seen.open:
            if p.protocol == "tcp" and (p.service == "ssh" or p.port == DEFAULT_PORT):
                ports.add(p.port)
            elif p.protocol == "tcp" and p.port in ALTERNATE_PORTS and not seen.service_detection:
                maybe.add(p.port)
    if seen is None or seen.unscanned((DEFAULT_PORT,)):
        # "Nothing to probe" would otherwise rest on a port nobody looked at.
        maybe.add(DEFAULT_PORT)
    maybe -= ports
    return tuple(sorted(ports | maybe)), frozenset(maybe)


def probe_target(target: Target, ctx: ProbeContext[SshSettings]) -> list[Observation]:
    """One observation per SSH endpoint, all within the target's `ctx.timeout`."""
    ports, maybe = ssh_ports(target, ctx.prior)
    deadline = time.monotonic() + ctx.timeout
    observations: list[Observation] = []
    for index, port in enumerate(ports):
        # Each endpoint gets an equal part of what is left: one whose key exchanges stall
        # cannot take the others' time, and what a quick one leaves goes to those after it.
        share = (deadline - time.monotonic()) / (len(ports) - index)
        budget = _Budget(share, ctx.connect_timeout)
        observation = _probe_endpoint(target, port, ctx, budget, maybe_ssh=port in maybe)
        if observation is not None:
            observations.append(observation)
    return observations


def _probe_endpoint(
    target: Target, port: int, ctx: ProbeContext[SshSettings], budget: _Budget, maybe_ssh: bool
) -> Observation | None:
    """The endpoint's observation; None when SSH was only possible there and is seen absent."""
    try:
        hello = read_server_hello(target.ip, port, budget.next())
    except WireError as exc:
        if maybe_ssh and isinstance(exc, NoSshHere):
            return None
        return Observation.failed(CHECK, target, f"no SSH greeting on port {port}: {exc}", port)
    data = _greeting_facts(hello)
    if hello.kexinit is None:
        if ctx.credential is not None:
            # The credential was given, not refused: "no credential" would excuse the sshd -T rules.
            why = f"the server speaks only SSH-{hello.protocol}; the authenticated session needs SSH-2"
            data |= {"config_error": why, "package_error": why}
            data |= {"incomplete": (CONFIG_STEP,), "step_errors": {CONFIG_STEP: why}}
        return Observation.ok(CHECK, target, SshData.model_validate(data), port)
    notes: list[str] = []
    failed: dict[str, str] = {}
    session = _session_facts(target.ip, port, hello, ctx.settings, budget, notes, failed)
    data.update(session)
    if ctx.credential is not None:
        presented = frozenset(key.sha256 for key in cast(tuple[HostKey, ...], session["host_keys"]))
        data.update(_config_facts(target.ip, port, ctx, ctx.settings, budget, failed, presented))
    data["notes"] = tuple(bound_text(n, MAX_NOTE) for n in notes)
    data["incomplete"] = tuple(sorted(failed))
    data["step_errors"] = failed
    ctx.logger.debug("ssh %s:%d probed (%d notes)", target.ip, port, len(notes))
    return Observation.ok(CHECK, target, SshData.model_validate(data), port)


def _greeting_facts(hello: ServerHello) -> dict[str, object]:
    _, _, software = hello.identification.partition("-")[2].partition("-")
    facts: dict[str, object] = {
        "banner": hello.identification,
        "protocol": hello.protocol,
        "software": software,
        "kex": (),
        "host_key_algorithms": (),
        "ciphers": (),
        "macs": (),
        "compression": (),
        "strict_kex": False,
        "ext_info": False,
        "auth_methods": None,
        "host_keys": (),
    }
    kexinit = hello.kexinit
    if kexinit is not None:
        facts |= {
            "kex": kexinit.kex,
            "host_key_algorithms": kexinit.host_key_algorithms,
            "ciphers": kexinit.ciphers_c2s,
            "macs": kexinit.macs_c2s,
            "compression": kexinit.compression_c2s,
            "ciphers_server_to_client": _if_different(kexinit.ciphers_c2s, kexinit.ciphers_s2c),
            "macs_server_to_client": _if_different(kexinit.macs_c2s, kexinit.macs_s2c),
            "compression_server_to_client": _if_different(kexinit.compression_c2s, kexinit.compression_s2c),
            "strict_kex": STRICT_KEX_MARKER in kexinit.kex,
            "ext_info": EXT_INFO_MARKER in kexinit.kex,
        }
    return facts


def _if_different(c2s: tuple[str, ...], s2c: tuple[str, ...]) -> tuple[str, ...] | None:
    return None if c2s == s2c else s2c


def _session_facts(
    ip: str,
    port: int,
    hello: ServerHello,
    settings: SshSettings,
    budget: _Budget,
    notes: list[str],
    failed: dict[str, str],
) -> dict[str, object]:
    from attt.checks.ssh import _paramiko  # paramiko loads only when an SSH probe runs

    assert hello.kexinit is not None
    fetchable, unfetchable = _paramiko.fetchable_host_key_algorithms(hello.kexinit.host_key_algorithms)
    if unfetchable:
        notes.append(f"host keys not fetched for {', '.join(unfetchable)} (unsupported by the probe)")
    keys: list[HostKey] = []
    auth: _paramiko.AuthSurface | None = None
    # With nothing fetchable, one session with paramiko's own choice still asks for auth methods.
    for algorithm in fetchable or (None,):
        if budget.exhausted:
            notes.append("probe time budget exhausted before every host key was fetched")
            break
        try:
            fact, surface = _paramiko.host_key(
                ip, port, algorithm, budget.next(), settings.probe_user if auth is None else None
            )
        except _paramiko.ParamikoProbeError as exc:
            notes.append(f"{algorithm or 'session'}: {exc}")
            continue
        auth = surface or auth
        if algorithm is not None and all(k.sha256 != fact.sha256 for k in keys):
            keys.append(HostKey(type=fact.type, bits=fact.bits, sha256=fact.sha256))
    if auth is None or auth.methods is None:
        why = "no session reached authentication"
        if auth is not None and auth.error:
            why = auth.error
        elif budget.exhausted:
            why = "probe time budget exhausted before the authentication query"
        failed[AUTH_STEP] = bound_text(why, MAX_NOTE)
    return {
        "host_keys": tuple(keys),
        "auth_methods": auth.methods if auth else None,
        "auth_banner": bound_text(auth.banner, MAX_AUTH_BANNER) if auth and auth.banner else None,
    }


def _config_facts(
    ip: str,
    port: int,
    ctx: ProbeContext[SshSettings],
    settings: SshSettings,
    budget: _Budget,
    failed: dict[str, str],
    presented: frozenset[str],
) -> dict[str, object]:
    """`sshd -T` and the installed openssh-server package, over one authenticated session.

    When `sshd -T` fails only the rules that read it are lost; when the package cannot be read the
    CVE rule falls back to the banner and says why. `sshd -T` reads a configuration file, not the
    daemon that answered: it counts only when one of the host keys it names is one this endpoint
    presented (a second sshd on another port, or another `-f` file, has other keys).
    """
    from attt.checks.ssh import _paramiko  # paramiko loads only when an SSH probe runs

    assert ctx.credential is not None
    if budget.exhausted:
        why = "probe time budget exhausted before the authenticated session"
        failed[CONFIG_STEP] = why
        return {"config_error": why, "package_error": why}
    try:
        facts = _paramiko.authenticated_facts(
            ip, port, ctx.credential, budget.next(), settings.sshd_path, settings.sshd_config
        )
    except _paramiko.ParamikoProbeError as exc:
        why = bound_text(str(exc), MAX_NOTE)
        failed[CONFIG_STEP] = why
        return {"config_error": why, "package_error": why}
    package = facts.package
    found: dict[str, object] = {
        "package": InstalledPackage.model_validate(vars(package)) if package else None,
        "package_error": bound_text(facts.package_error, MAX_NOTE) if facts.package_error else None,
    }
    if facts.config is None:
        why = bound_text(facts.config_error or "sshd -T gave no output", MAX_NOTE)
        failed[CONFIG_STEP] = why
        return {**found, "config_error": why}
    if not presented & facts.config_host_keys:
        why = (
            "none of the host keys sshd -T names is one this endpoint presented, so the configuration"
            " read may be another sshd's"
            if presented and facts.config_host_keys
            else "whether sshd -T describes this endpoint cannot be told (no host key to compare"
            f" {'from the endpoint' if not presented else 'readable from the hostkey files'})"
        )
        if presented and facts.config_host_keys_error:
            why = bound_text(facts.config_host_keys_error, MAX_NOTE)
        failed[CONFIG_STEP] = why
        return {**found, "config_error": why}
    if facts.match_settings is None:
        failed[MATCH_STEP] = bound_text(facts.match_error or "the Match blocks were not read", MAX_NOTE)
    return {**found, "config": facts.config, "config_match": facts.match_settings}
