"""The ssh check against real servers (tests/servers/sshd.py), and its controls on factory data."""

import json
import re
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import paramiko
import pytest
from pydantic import SecretStr

from attt.checks.ports.models import OpenPort, PortsData
from attt.checks.ssh import SshCheck, SshData, SshSettings, _paramiko
from attt.checks.ssh.controls import CONTROLS
from attt.checks.ssh.models import CONFIG_STEP, HostKey, InstalledPackage
from attt.checks.ssh.wire import MAX_PACKETS_BEFORE_KEXINIT, MAX_PRELUDE_LINES
from attt.scanner.models.observation import Observation
from attt.scanner.models.policy import ResolvedRule
from attt.scanner.models.target import Host, Service, SystemInfo, Target
from attt.scanner.plugin import Credential, ProbeContext, Verdict
from attt.scanner.policy import load_policy
from attt.scanner.registry import RegisteredCheck, Registry
from tests.servers.ssh_hostile import KEX, kexinit_packet
from tests.servers.sshd import AUTH_BANNER, SshServers

POLICY = Path(__file__).parents[3] / "policies" / "baseline-ssh.yaml"
SSH_AUDIT = Path(__file__).parents[3] / ".venv" / "bin" / "ssh-audit"
TIMEOUT = 8.0
SECRET = "never-stored-pw-7f3a"
KEX_MARKERS = {"kex-strict-s-v00@openssh.com", "ext-info-s"}
UNUSED = "127.0.243.250"
"""An address of this test's range where nothing listens: connections to it are refused."""


def _target(ip: str, declared: bool = True, level: int = 3) -> Target:
    services = (Service(port=22, kind="ssh"),) if declared else ()
    info = SystemInfo(id="test", name="Test system", owner="Sở KH&CN", level=level)
    return Target(system=info, host=Host(address=ip, services=services), ip=ip)


def _probe(ip: str, **ctx: Any) -> Observation:
    observations = list(
        SshCheck().probe(
            _target(ip),
            ProbeContext(
                timeout=ctx.pop("timeout", TIMEOUT), settings=ctx.pop("settings", SshSettings()), **ctx
            ),
        )
    )
    assert len(observations) == 1
    return observations[0]


@pytest.fixture(scope="module")
def scans(sshd_servers: SshServers) -> dict[str, Observation]:
    """One probe of every server; the Debian one with the root test key, for `sshd -T`."""
    credential = Credential(user="root", key_file=str(sshd_servers.client_key))
    settings = SshSettings(sshd_config=str(sshd_servers.debian_config))
    return {
        "hardened": _probe(sshd_servers.hardened),
        # Five commands over the session, sshd -ddd -T among them: ten seconds each (timeout / 4),
        # so that a loaded machine does not cut the Match step (a pass would then be an error).
        "debian": _probe(sshd_servers.debian, credential=credential, settings=settings, timeout=40),
        "weak": _probe(sshd_servers.weak),
        "terrapin": _probe(sshd_servers.terrapin),
        "ssh1": _probe(sshd_servers.ssh1),
    }


@pytest.fixture(scope="module")
def rules() -> dict[str, ResolvedRule]:
    registry = Registry.of({"ssh": RegisteredCheck(SshCheck(), "attt-scanner")})
    return {rule.id: rule for rule in load_policy(str(POLICY), registry).rules}


def _data(observation: Observation) -> SshData:
    assert observation.status == "ok", observation.error
    return SshData.model_validate(observation.data)


def _judge(rule: ResolvedRule, observation: Observation) -> Verdict:
    control = CONTROLS[rule.control]
    return control.judge(_data(observation), rule.params, _target(observation.ip or ""))


def _fingerprint(public_key: Path) -> str:
    out = subprocess.run(
        ["ssh-keygen", "-l", "-E", "sha256", "-f", str(public_key)],
        capture_output=True,
        text=True,
        timeout=10,
    )
    return out.stdout.split()[1]


# --- facts -----------------------------------------------------------------------------


def test_hardened_server_facts(
    scans: dict[str, Observation], sshd_servers: SshServers, tmp_path: Path
) -> None:
    data = _data(scans["hardened"])
    assert data.banner.startswith("SSH-2.0-OpenSSH_9.2p1 Debian-")
    assert data.software == data.banner.removeprefix("SSH-2.0-")
    assert data.protocol == "2.0"
    assert data.kex == (
        "sntrup761x25519-sha512@openssh.com",
        "curve25519-sha256",
        "curve25519-sha256@libssh.org",
        "kex-strict-s-v00@openssh.com",
    )
    assert data.ciphers == (
        "chacha20-poly1305@openssh.com",
        "aes256-gcm@openssh.com",
        "aes128-gcm@openssh.com",
    )
    assert data.ciphers_server_to_client is None
    assert data.macs == ("hmac-sha2-512-etm@openssh.com", "hmac-sha2-256-etm@openssh.com")
    assert data.host_key_algorithms == ("ssh-ed25519",)
    assert data.strict_kex is True
    assert data.auth_methods == ("publickey",)
    key_dir = sshd_servers.client_key.parent
    assert data.host_keys == (
        HostKey(type="ssh-ed25519", bits=256, sha256=_fingerprint(key_dir / "ssh_host_ed25519_key.pub")),
    )
    assert data.auth_banner == AUTH_BANNER  # kept as text; escaping is the renderers' job
    assert data.config is None and data.config_error is None and data.notes == ()


def test_debian_default_facts_and_sshd_t(scans: dict[str, Observation], sshd_servers: SshServers) -> None:
    data = _data(scans["debian"])
    key_dir = sshd_servers.client_key.parent
    assert {(k.type, k.bits, k.sha256) for k in data.host_keys} == {
        ("ssh-rsa", 3072, _fingerprint(key_dir / "ssh_host_rsa_key.pub")),
        ("ecdsa-sha2-nistp256", 256, _fingerprint(key_dir / "ssh_host_ecdsa_key.pub")),
        ("ssh-ed25519", 256, _fingerprint(key_dir / "ssh_host_ed25519_key.pub")),
    }
    assert data.auth_methods == ("publickey", "password")
    assert "hmac-sha1" in data.macs and "ecdh-sha2-nistp256" in data.kex
    # The authenticated probe read the running server's effective configuration.
    assert data.config_error is None and data.config is not None
    assert data.config["listenaddress"] == f"{sshd_servers.debian}:22"
    assert data.config["permitrootlogin"] == "without-password"
    assert data.config["maxauthtries"] == "6"
    assert data.config["passwordauthentication"] == "yes"
    assert data.config["x11forwarding"] == "yes"


def test_weak_server_facts(scans: dict[str, Observation]) -> None:
    data = _data(scans["weak"])
    assert "diffie-hellman-group14-sha1" in data.kex
    assert {"aes128-cbc", "aes256-cbc"} <= set(data.ciphers)
    assert "hmac-sha1" in data.macs
    assert "ssh-rsa" in data.host_key_algorithms
    assert [(k.type, k.bits) for k in data.host_keys] == [("ssh-rsa", 1024)]
    assert data.auth_methods == ("publickey", "password", "keyboard-interactive")


def test_terrapin_server_facts(scans: dict[str, Observation], sshd_servers: SshServers) -> None:
    data = _data(scans["terrapin"])
    assert data.software == "paramiko_" + paramiko.__version__
    assert data.strict_kex is False
    assert data.ciphers == ("aes128-cbc", "aes256-cbc", "aes128-ctr")
    assert data.macs == ("hmac-sha2-256-etm@openssh.com", "hmac-sha2-256")
    assert [k.sha256 for k in data.host_keys] == [sshd_servers.terrapin_key_sha256]


def test_probe_is_polite(sshd_servers: SshServers) -> None:
    # One plain connection for the KEXINIT, one paramiko session for the host key and auth methods.
    before = sshd_servers.terrapin_connections()
    _probe(sshd_servers.terrapin)
    assert sshd_servers.terrapin_connections() - before == 2


def test_ssh1_only_server(scans: dict[str, Observation]) -> None:
    data = _data(scans["ssh1"])
    assert (data.protocol, data.software, data.kex, data.auth_methods) == ("1.5", "LegacyBox_1.0", (), None)


@pytest.mark.parametrize("server", ["garbage", "silent"])
def test_garbage_and_silent_ports_are_errors_within_budget(sshd_servers: SshServers, server: str) -> None:
    started = time.monotonic()
    observation = _probe(getattr(sshd_servers, server), timeout=3.0)
    elapsed = time.monotonic() - started
    assert observation.status == "error" and observation.data is None
    assert observation.error is not None and observation.error.startswith("no SSH greeting on port 22")
    assert elapsed < 4.0
    expected = "connection closed by the server after" if server == "garbage" else "within"
    assert expected in observation.error


# --- verdicts of the bundled rules on the real servers ---------------------------------

P, F, E, NA = "pass", "fail", "error", "not_applicable"
VERDICTS = {
    # rule:                    hardened debian weak terrapin ssh1
    "SSH-PROTOCOL-2": (P, P, P, P, F),
    "SSH-KEX-WEAK": (P, P, F, P, E),
    "SSH-CIPHER-BROKEN": (P, P, P, P, E),
    "SSH-CIPHER-CBC": (P, P, F, F, E),
    "SSH-MAC-WEAK": (P, F, F, P, E),
    "SSH-HOSTKEY-ALG-WEAK": (P, P, F, P, E),
    "SSH-HOSTKEY-SIZE": (P, P, F, P, E),
    "SSH-PASSWORD-AUTH": (P, F, F, F, E),
    "SSH-TERRAPIN": (P, P, P, F, E),
    # The servers run this machine's Debian 12 sshd, which carries Debian's fixes.
    "SSH-SOFTWARE-CVE": (P, P, P, NA, NA),
    "SSH-SOFTWARE-CVE-POSTAUTH": (P, P, P, NA, NA),
    "SSH-ALGORITHMS-PROFILE": (P, F, F, F, E),
    "SSH-ROOT-LOGIN": (NA, F, NA, NA, NA),
    "SSH-CONFIG-AUTH": (NA, F, NA, NA, NA),
    "SSH-IDLE-TIMEOUT": (NA, F, NA, NA, NA),
    "SSH-FORWARDING": (NA, F, NA, NA, NA),
    "SSH-LOG-LEVEL": (NA, P, NA, NA, NA),
}
SERVERS = ("hardened", "debian", "weak", "terrapin", "ssh1")


def test_every_bundled_rule_has_expected_verdicts() -> None:
    registry = Registry.of({"ssh": RegisteredCheck(SshCheck(), "attt-scanner")})
    assert {rule.id for rule in load_policy(str(POLICY), registry).rules} == set(VERDICTS)


@pytest.mark.parametrize("rule_id", sorted(VERDICTS))
def test_rule_verdicts_on_real_servers(
    scans: dict[str, Observation], rules: dict[str, ResolvedRule], rule_id: str
) -> None:
    got = {server: _judge(rules[rule_id], scans[server]).status for server in SERVERS}
    assert got == dict(zip(SERVERS, VERDICTS[rule_id], strict=True))


def test_software_cve_verdict_reads_the_installed_package_with_a_credential(
    scans: dict[str, Observation], rules: dict[str, ResolvedRule]
) -> None:
    installed = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", "openssh-server"], capture_output=True, text=True, timeout=10
    ).stdout
    data = _data(scans["debian"])
    assert data.package is not None and data.package_error is None
    assert (data.package.manager, data.package.version, data.package.os_id) == ("dpkg", installed, "debian")
    verdict = _judge(rules["SSH-SOFTWARE-CVE"], scans["debian"])
    assert verdict.status == P
    assert verdict.observed["from_installed_package"] is True
    assert f"installed package {installed}" in verdict.message
    assert (
        "CVE-2024-6387 (regreSSHion) [pre-auth-remote, high]: fixed since 1:9.2p1-2+deb12u3 (DSA-5724-1)"
        in (verdict.message)
    )
    # Without a credential the banner's Debian revision decides the same way.
    banner_only = _judge(rules["SSH-SOFTWARE-CVE"], scans["hardened"])
    assert banner_only.status == P and banner_only.observed["from_installed_package"] is False


def test_terrapin_verdict_names_the_exposed_algorithms(
    scans: dict[str, Observation], rules: dict[str, ResolvedRule]
) -> None:
    verdict = _judge(rules["SSH-TERRAPIN"], scans["terrapin"])
    assert verdict.observed == {
        "strict_kex": False,
        "affected_algorithms": ["aes128-cbc", "aes256-cbc", "hmac-sha2-256-etm@openssh.com"],
    }


# --- credentials -----------------------------------------------------------------------


def test_wrong_key_gives_config_error_and_an_error_verdict(
    sshd_servers: SshServers, rules: dict[str, ResolvedRule], tmp_path: Path
) -> None:
    stranger = tmp_path / "stranger"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True, timeout=30
    )
    observation = _probe(sshd_servers.debian, credential=Credential(user="root", key_file=str(stranger)))
    data = _data(observation)
    assert data.config is None
    assert data.config_error == "authentication as 'root' failed (AuthenticationException)"
    assert data.auth_methods == ("publickey", "password")  # the pre-auth facts are kept
    assert _judge(rules["SSH-ROOT-LOGIN"], observation).status == "error"


def test_password_never_reaches_the_observation(sshd_servers: SshServers) -> None:
    credential = Credential(user="root", password=SecretStr(SECRET))
    observation = _probe(sshd_servers.weak, credential=credential)
    assert _data(observation).config_error is not None
    assert SECRET not in observation.model_dump_json()


def test_sudo_runs_sshd_t_as_root(sshd_servers: SshServers) -> None:
    credential = Credential(user="root", key_file=str(sshd_servers.client_key), sudo=True)
    settings = SshSettings(sshd_config=str(sshd_servers.debian_config))
    # Ten seconds per command (timeout / 4): a loaded machine must not cut the Match step, whose
    # cut would rightly leave config_match unread (and every sshd-config pass an error).
    data = _data(_probe(sshd_servers.debian, credential=credential, settings=settings, timeout=40))
    assert data.config_error is None
    assert data.config is not None
    assert data.config["permitrootlogin"] == "without-password"
    # The Match blocks were read through sudo as well (sshd -ddd -T, then grep over its files).
    assert data.config_match == {} and data.incomplete == ()


def test_failed_sudo_command_is_reported_not_passed(
    sshd_servers: SshServers, rules: dict[str, ResolvedRule]
) -> None:
    credential = Credential(user="root", key_file=str(sshd_servers.client_key), sudo=True)
    settings = SshSettings(sshd_path="/usr/sbin/no-such-sshd", sshd_config=str(sshd_servers.debian_config))
    observation = _probe(sshd_servers.debian, credential=credential, settings=settings)
    data = _data(observation)
    assert data.config is None
    assert data.config_error is not None
    assert data.config_error.startswith("`sudo -n /usr/sbin/no-such-sshd -T -f")
    assert _judge(rules["SSH-ROOT-LOGIN"], observation).status == "error"


@pytest.mark.parametrize("program", ["/usr/bin/true", "/usr/bin/echo"])
def test_sshd_t_output_without_the_settings_is_an_error_not_a_fail(
    sshd_servers: SshServers, rules: dict[str, ResolvedRule], program: str
) -> None:
    # A wrapper or forced command that exits 0 without printing sshd's settings: what it did not
    # print was never seen, so no rule on it may fail (or pass) the server.
    credential = Credential(user="root", key_file=str(sshd_servers.client_key))
    observation = _probe(sshd_servers.debian, credential=credential, settings=SshSettings(sshd_path=program))
    data = _data(observation)
    if program.endswith("true"):
        assert data.config is None and data.config_error == f"`{program} -T` printed no settings"
    rule_ids = ("SSH-ROOT-LOGIN", "SSH-CONFIG-AUTH", "SSH-IDLE-TIMEOUT", "SSH-FORWARDING", "SSH-LOG-LEVEL")
    for rule_id in rule_ids:
        assert _judge(rules[rule_id], observation).status == E, rule_id


def test_sshd_t_of_another_daemon_is_not_this_endpoints_configuration(
    sshd_servers: SshServers, rules: dict[str, ResolvedRule]
) -> None:
    # The login lands on the weak server (its one host key, RSA-1024), but `-f` names the Debian
    # server's file: sshd -T prints that file's settings, which are not what this endpoint runs.
    credential = Credential(user="root", key_file=str(sshd_servers.client_key))
    settings = SshSettings(sshd_config=str(sshd_servers.debian_config))
    observation = _probe(sshd_servers.weak, credential=credential, settings=settings)
    data = _data(observation)
    assert data.config is None and data.incomplete == (CONFIG_STEP,)
    assert data.config_error is not None and data.config_error.startswith("none of the host keys sshd -T")
    for rule_id in ("SSH-ROOT-LOGIN", "SSH-LOG-LEVEL"):
        assert _judge(rules[rule_id], observation).status == E, rule_id


def test_a_credential_for_an_ssh1_only_server_is_not_called_missing(
    sshd_servers: SshServers, rules: dict[str, ResolvedRule]
) -> None:
    # The rules on sshd -T are not_applicable without a credential; one was given here, and the
    # SSH-1 server could not be logged into.
    credential = Credential(user="root", key_file=str(sshd_servers.client_key))
    observation = _probe(sshd_servers.ssh1, credential=credential)
    data = _data(observation)
    assert data.incomplete == (CONFIG_STEP,)
    assert data.config_error == "the server speaks only SSH-1.5; the authenticated session needs SSH-2"
    for rule_id in ("SSH-ROOT-LOGIN", "SSH-FORWARDING"):
        assert _judge(rules[rule_id], observation).status == E, rule_id


# --- endpoints -------------------------------------------------------------------------


def _ports_observation(
    target: Target, open_ports: list[OpenPort], also_scanned: tuple[int, ...] = (22,)
) -> Observation:
    scanned = tuple(sorted({*also_scanned, *(p.port for p in open_ports)}))
    data = PortsData(scanned=scanned, open=tuple(open_ports), nmap_version="test")
    return Observation(check="ports", system=target.system.id, host=target.address, status="ok", data=data)


def test_endpoints_come_from_the_ports_observation(sshd_servers: SshServers) -> None:
    target = _target(sshd_servers.hardened, declared=False)
    check = SshCheck()
    prior = (_ports_observation(target, [OpenPort(port=22, service="ssh")]),)
    observations = list(
        check.probe(target, ProbeContext(timeout=TIMEOUT, settings=SshSettings(), prior=prior))
    )
    assert [(o.port, o.status) for o in observations] == [(22, "ok")]
    unrelated = (_ports_observation(target, [OpenPort(port=443, service="https")]),)
    assert (
        list(check.probe(target, ProbeContext(timeout=TIMEOUT, settings=SshSettings(), prior=unrelated)))
        == []
    )


@pytest.mark.parametrize("ports_check", ["not run", "failed", "scanned other ports"])
def test_without_a_port_scan_port_22_is_looked_at(sshd_servers: SshServers, ports_check: str) -> None:
    # "Nothing to probe" (not_applicable) would otherwise rest on a port nobody looked at.
    prior: tuple[Observation, ...] = ()
    if ports_check == "failed":
        prior = (Observation.failed("ports", _target(sshd_servers.hardened), "nmap failed"),)
    elif ports_check == "scanned other ports":
        https = [OpenPort(port=443, service="https")]
        prior = (_ports_observation(_target(sshd_servers.hardened), https, also_scanned=()),)
    for ip, found in ((sshd_servers.hardened, [(22, "ok")]), (UNUSED, []), (sshd_servers.garbage, [])):
        # A refusal, or an answer that is not SSH, is the observed absence of SSH there; silence
        # is an error.
        target = _target(ip, declared=False)
        observations = SshCheck().probe(
            target, ProbeContext(timeout=TIMEOUT, settings=SshSettings(), prior=prior)
        )
        assert [(o.port, o.status) for o in observations] == found
    [silent] = SshCheck().probe(
        _target(sshd_servers.silent, declared=False), ProbeContext(timeout=1.0, settings=SshSettings())
    )
    assert silent.status == "error"


def test_entry_point_loads_the_check() -> None:
    registry = Registry.load()
    assert "ssh" in registry.checks, registry.failures
    assert registry.check("ssh").after == ("ports",)


def test_fetchable_host_key_algorithms_are_accepted_by_paramiko() -> None:
    # Guards against paramiko dropping an algorithm the probe relies on (public API only).
    with socket.socket() as sock:
        transport = paramiko.Transport(sock)
        try:
            transport.get_security_options().key_types = _paramiko.FETCHABLE_HOST_KEY_ALGORITHMS
        finally:
            transport.close()


# --- agreement with ssh-audit ----------------------------------------------------------


def _ssh_audit(ip: str) -> dict[str, Any]:
    run = subprocess.run(
        [str(SSH_AUDIT), "-j", "--skip-rate-test", "-t", "5", ip], capture_output=True, text=True, timeout=60
    )
    result: dict[str, Any] = json.loads(run.stdout)
    return result


@pytest.mark.parametrize("server", ["hardened", "debian", "weak", "terrapin"])
def test_algorithm_lists_agree_with_ssh_audit(
    scans: dict[str, Observation], sshd_servers: SshServers, server: str
) -> None:
    data = _data(scans[server])
    theirs = _ssh_audit(getattr(sshd_servers, server))

    def names(key: str) -> list[str]:
        return [entry["algorithm"] for entry in theirs[key] if entry["algorithm"] not in KEX_MARKERS]

    assert names("kex") == list(data.kex_algorithms())
    assert names("key") == list(data.host_key_algorithms)
    assert names("enc") == list(data.ciphers)
    assert names("mac") == list(data.macs)
    sha256 = {f["hash"] for f in theirs["fingerprints"] if f["hash_alg"] == "SHA256"}
    assert sha256 == {k.sha256.removeprefix("SHA256:") for k in data.host_keys}


# --- hostile servers: the wire reader's bounds -----------------------------------------


def _packet(payload: bytes) -> bytes:
    padding = 8 - (len(payload) + 5) % 8 + 8
    return struct.pack(">IB", len(payload) + padding + 1, padding) + payload + bytes(padding)


def _name_lists(*lists: bytes) -> bytes:
    return b"".join(struct.pack(">I", len(x)) + x for x in lists)


GOOD_BANNER = b"SSH-2.0-Hostile_1.0\r\n"
HOSTILE = {
    "long-identification": (b"SSH-2.0-" + b"A" * 300 + b"\r\n", "identification string longer than 255"),
    "endless-prelude": (b"hello\r\n" * (MAX_PRELUDE_LINES + 1), "no SSH identification string"),
    "huge-prelude": ((b"x" * 8000 + b"\r\n") * 9, "no SSH identification string"),
    "prelude-then-close": (b"hello\r\n" * 40, "connection closed by the server after 'hello"),
    "no-newline": (b"X" * 9000, "line longer than 8192 bytes"),
    "binary-identification": (b"SSH-2.0-\x01\x02\xff\r\n", "not printable ASCII"),
    "huge-packet": (GOOD_BANNER + struct.pack(">I", 0xFFFFFFFF), "impossible length 4294967295"),
    "not-kexinit": (GOOD_BANNER + _packet(bytes([21]) + bytes(40)), "not a KEXINIT (message type 21"),
    "list-overrun": (
        GOOD_BANNER + _packet(bytes([20]) + bytes(16) + struct.pack(">I", 5000) + b"abc"),
        "runs past the packet",
    ),
    "control-char-name": (
        GOOD_BANNER
        + _packet(bytes([20]) + bytes(16) + _name_lists(b"curve\x1b[31m", *[b"x"] * 9) + bytes(5)),
        "malformed name-list",
    ),
    "truncated": (GOOD_BANNER + struct.pack(">I", 100) + b"\x04\x14", "connection closed by the server"),
}


@contextmanager
def _one_shot_server(ip: str, payload: bytes) -> Iterator[None]:
    server = socket.create_server((ip, 22))
    server.settimeout(5)

    def serve() -> None:
        try:
            conn, _ = server.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(2)
            try:
                conn.sendall(payload)
                conn.recv(256)
            except OSError:
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.close()
        thread.join(timeout=6)


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_greetings_are_errors(case: str) -> None:
    payload, expected = HOSTILE[case]
    ip = f"127.0.40.{20 + sorted(HOSTILE).index(case)}"
    with _one_shot_server(ip, payload):
        observation = _probe(ip, timeout=3.0)
    assert observation.status == "error"
    assert observation.error is not None and expected in observation.error
    assert len(observation.error) <= 500


IGNORE = _packet(bytes([2]) + struct.pack(">I", 4) + b"abcd")
DEBUG = _packet(bytes([4, 1]) + struct.pack(">I", 2) + b"hi" + struct.pack(">I", 0))


def test_ignore_and_debug_messages_before_the_kexinit_are_skipped() -> None:
    # RFC 4253 §11: a server may send them at any time, before its KEXINIT too; they do not make
    # the server broken, and at most MAX_PACKETS_BEFORE_KEXINIT of them are read.
    ip = "127.0.243.2"
    with _one_shot_server(ip, GOOD_BANNER + IGNORE + DEBUG + kexinit_packet()):
        assert _data(_probe(ip, timeout=1.0)).kex == KEX
    with _one_shot_server(ip, GOOD_BANNER + IGNORE * (MAX_PACKETS_BEFORE_KEXINIT + 1) + kexinit_packet()):
        observation = _probe(ip, timeout=1.0)
    assert observation.error is not None and "not a KEXINIT (message type 2)" in observation.error


# --- controls on factory data ----------------------------------------------------------


def _facts(**changes: Any) -> SshData:
    base: dict[str, Any] = {
        "banner": "SSH-2.0-OpenSSH_9.9p2",
        "protocol": "2.0",
        "software": "OpenSSH_9.9p2",
        "kex": ("curve25519-sha256", "kex-strict-s-v00@openssh.com"),
        "host_key_algorithms": ("ssh-ed25519",),
        "ciphers": ("aes128-ctr",),
        "macs": ("hmac-sha2-256-etm@openssh.com",),
        "compression": ("none",),
        "strict_kex": True,
        "ext_info": False,
        "auth_methods": ("publickey",),
        "host_keys": (HostKey(type="ssh-ed25519", bits=256, sha256="SHA256:x"),),
    }
    if changes.get("config") is not None:
        # sshd -T read comes with its Match blocks read (none here), unless a test says otherwise.
        base["config_match"] = {}
    return SshData.model_validate(base | changes)


def _verdict(control_id: str, data: SshData, **params: Any) -> Verdict:
    control = CONTROLS[control_id]
    return control.judge(data, control.params_model.model_validate(params), _target("127.0.40.1"))


@pytest.mark.parametrize(
    ("changes", "status"),
    [
        ({}, P),
        ({"strict_kex": False}, P),
        ({"strict_kex": False, "ciphers": ("chacha20-poly1305@openssh.com",)}, F),
        ({"strict_kex": False, "ciphers": ("aes128-cbc",), "macs": ("hmac-sha2-256",)}, P),
        ({"strict_kex": False, "ciphers": ("aes128-cbc",), "macs": ("hmac-sha2-256-etm@openssh.com",)}, F),
        (
            {
                "strict_kex": False,
                "ciphers": ("aes128-ctr",),
                "ciphers_server_to_client": ("chacha20-poly1305@openssh.com",),
            },
            F,
        ),
        ({"ciphers": ("chacha20-poly1305@openssh.com",)}, P),
        # ssh-audit's tests: every ChaCha20-Poly1305 name, and CBC under vendor suffixes too.
        ({"strict_kex": False, "ciphers": ("chacha20-poly1305",)}, F),
        (
            {
                "strict_kex": False,
                "ciphers": ("aes128-cbc@openssh.org",),
                "macs": ("umac-128-etm@openssh.com",),
            },
            F,
        ),
        (
            {
                "strict_kex": False,
                "ciphers": ("twofish-cbc@ssh.com",),
                "macs": ("hmac-sha2-512-etm@openssh.com",),
            },
            F,
        ),
    ],
)
def test_terrapin_logic(changes: dict[str, Any], status: str) -> None:
    assert _verdict("ssh.terrapin_safe", _facts(**changes)).status == status


@pytest.mark.parametrize(
    ("software", "status", "affected"),
    [
        # Debian 12: regreSSHion fixed in 1:9.2p1-2+deb12u3 (DSA-5724-1).
        ("OpenSSH_9.2p1 Debian-2+deb12u2", F, {"CVE-2024-6387"}),
        ("OpenSSH_9.2p1 Debian-2+deb12u3", P, set()),
        ("OpenSSH_9.2p1 Debian-2+deb12u10", P, set()),
        ("OpenSSH_9.2p1 Debian-2", F, {"CVE-2024-6387"}),  # the release names no deb12uN yet
        # Debian 11 (8.4p1) and 13 (10.0p1) ship versions outside every pre-auth range.
        ("OpenSSH_8.4p1 Debian-5+deb11u3", P, set()),
        ("OpenSSH_10.0p1 Debian-5", P, set()),
        # Ubuntu 22.04: regreSSHion fixed in 1:8.9p1-3ubuntu0.10 (USN-6859-1).
        ("OpenSSH_8.9p1 Ubuntu-3ubuntu0.9", F, {"CVE-2024-6387"}),
        ("OpenSSH_8.9p1 Ubuntu-3ubuntu0.10", P, set()),
        # Ubuntu 24.04: regreSSHion fixed in 13.3 (USN-6859-1), CVE-2025-26466 in 13.8 (USN-7270-1).
        ("OpenSSH_9.6p1 Ubuntu-3ubuntu13", F, {"CVE-2024-6387", "CVE-2025-26466"}),
        ("OpenSSH_9.6p1 Ubuntu-3ubuntu13.3", F, {"CVE-2025-26466"}),
        ("OpenSSH_9.6p1 Ubuntu-3ubuntu13.8", P, set()),
        # Ubuntu 20.04 ships 8.2p1, outside every pre-auth range.
        ("OpenSSH_8.2p1 Ubuntu-4ubuntu0.5", P, set()),
        # An upstream build has nothing backported: its version decides.
        ("OpenSSH_9.7p1", F, {"CVE-2024-6387", "CVE-2025-26466"}),
        ("OpenSSH_9.9p2", P, set()),
        ("OpenSSH_10.0p2", P, set()),
        # Red Hat 8 ships 8.0, outside every pre-auth range, even without its revision.
        ("OpenSSH_8.0", P, set()),
        ("dropbear_2022.83", NA, set()),
    ],
)
def test_pre_auth_cves_by_distribution_revision(software: str, status: str, affected: set[str]) -> None:
    verdict = _verdict("ssh.software_not_vulnerable", _facts(software=software), kinds=["pre-auth-remote"])
    assert verdict.status == status, verdict.message
    if status != NA:
        assert set(verdict.observed["affected"]) == affected


@pytest.mark.parametrize(
    "software", ["OpenSSH_8.7", "OpenSSH_9.3 FreeBSD-20230719", "OpenSSH_9.6p1 Raspbian-3"]
)
def test_a_banner_that_hides_the_revision_cannot_be_told(software: str) -> None:
    verdict = _verdict("ssh.software_not_vulnerable", _facts(software=software), kinds=["pre-auth-remote"])
    assert verdict.status == E
    assert verdict.message.startswith(f"cannot be told from the banner {software}")
    assert "--credentials" in verdict.message and "--credentials" in (verdict.vi or "")


def test_a_banner_that_names_no_software_is_not_called_another_product() -> None:
    # `SSH-2.0-` alone hides what the server runs: it may be OpenSSH, so not_applicable is unearned.
    data = _facts(banner="SSH-2.0-", software="")
    verdict = _verdict("ssh.software_not_vulnerable", data, kinds=["pre-auth-remote"])
    assert verdict.status == E
    assert "names no software" in verdict.message and verdict.vi


@pytest.mark.parametrize("software", ["OpenSSH_for_Windows_7.7", "OpenSSH", "OpenSSH_X"])
def test_openssh_whose_version_cannot_be_read_is_not_called_another_product(software: str) -> None:
    # Windows Server 2019 sends `OpenSSH_for_Windows_7.7`, inside CVE-2018-15473's range.
    verdict = _verdict("ssh.software_not_vulnerable", _facts(software=software), kinds=["pre-auth-remote"])
    assert verdict.status == E
    assert verdict.message.startswith("OpenSSH in a form whose version attt cannot read") and verdict.vi


@pytest.mark.parametrize(
    ("os_id", "os_version", "version", "status", "affected"),
    [
        # Red Hat 9: regreSSHion fixed in 8.7p1-38.el9_4.1 (RHSA-2024:4312), CVE-2024-6409 in el9_4.4.
        ("rhel", "9.4", "0:8.7p1-38.el9", F, {"CVE-2024-6387", "CVE-2024-6409"}),
        ("rhel", "9.4", "0:8.7p1-38.el9_4.1", F, {"CVE-2024-6409"}),
        ("rocky", "9.4", "0:8.7p1-38.el9_4.4", P, set()),
        ("almalinux", "9.6", "0:8.7p1-45.el9", P, set()),
        ("rhel", "8.10", "0:8.0p1-25.el8_10", P, set()),
        ("debian", "12", "1:9.2p1-2+deb12u2", F, {"CVE-2024-6387"}),
        ("debian", "12", "1:9.2p1-2+deb12u3", P, set()),
    ],
)
def test_the_installed_package_decides_exactly(
    os_id: str, os_version: str, version: str, status: str, affected: set[str]
) -> None:
    manager = "dpkg" if os_id == "debian" else "rpm"
    package = InstalledPackage(manager=manager, version=version, os_id=os_id, os_version=os_version)
    # The Red Hat banner shows no revision; the package read with a credential does.
    banner = "OpenSSH_8.7" if manager == "rpm" else f"OpenSSH_9.2p1 Debian-{version.partition('-')[2]}"
    data = _facts(software=banner, package=package)
    verdict = _verdict("ssh.software_not_vulnerable", data, kinds=["pre-auth-remote"])
    assert verdict.status == status, verdict.message
    assert set(verdict.observed["affected"]) == affected
    assert verdict.observed["from_installed_package"] is True


def test_a_running_sshd_older_than_its_installed_package_is_judged_as_it_runs() -> None:
    # The package was updated and sshd not restarted: the banner names the build still running.
    package = InstalledPackage(manager="dpkg", version="1:9.2p1-2+deb12u3", os_id="debian", os_version="12")
    data = _facts(software="OpenSSH_9.2p1 Debian-2+deb12u2", package=package)
    verdict = _verdict("ssh.software_not_vulnerable", data, kinds=["pre-auth-remote"])
    assert verdict.status == F and verdict.observed["affected"] == ["CVE-2024-6387"]
    assert "and banner OpenSSH_9.2p1 Debian-2+deb12u2 of the running sshd" in verdict.message
    assert "của sshd đang chạy" in (verdict.vi or "")


@pytest.mark.parametrize(
    ("software", "status", "affected"),
    [
        # CVE-2025-32728 needs DisableForwarding, which appeared in 7.4: older builds are clear.
        ("OpenSSH_4.0p1", P, set()),
        ("OpenSSH_7.3p1", F, {"CVE-2021-41617"}),
        ("OpenSSH_7.4p1", F, {"CVE-2021-41617", "CVE-2025-32728"}),
        ("OpenSSH_9.2p1 Debian-2+deb12u5", F, {"CVE-2025-32728"}),
        ("OpenSSH_9.2p1 Debian-2+deb12u6", P, set()),
    ],
)
def test_post_auth_cves_have_their_own_ranges(software: str, status: str, affected: set[str]) -> None:
    verdict = _verdict("ssh.software_not_vulnerable", _facts(software=software), kinds=["post-auth"])
    assert verdict.status == status, verdict.message
    assert set(verdict.observed["affected"]) == affected


@pytest.mark.parametrize(
    ("software", "status"),
    [
        # Debian 11: CVE-2021-41617 fixed in 1:8.4p1-5+deb11u3 (DSA-5586-1).
        ("OpenSSH_8.4p1 Debian-5+deb11u2", F),
        ("OpenSSH_8.4p1 Debian-5+deb11u3", P),
        # Debian 12 shipped 9.2p1, after the fix upstream (8.8).
        ("OpenSSH_9.2p1 Debian-2", P),
    ],
)
def test_debian_11_before_and_after_its_fix(software: str, status: str) -> None:
    data = _facts(software=software)
    verdict = _verdict("ssh.software_not_vulnerable", data, kinds=["post-auth"], cves=["CVE-2021-41617"])
    assert verdict.status == status, verdict.message


@pytest.mark.parametrize(
    ("software", "status"),
    [
        # CVE-2025-26465 (client side) fixed by USN-7270-1: Ubuntu 20.04 in 1:8.2p1-4ubuntu0.12,
        # Debian 12 in 1:9.2p1-2+deb12u5 (DSA-5868-1). Judged only when a rule asks for client-side.
        ("OpenSSH_8.2p1 Ubuntu-4ubuntu0.11", F),
        ("OpenSSH_8.2p1 Ubuntu-4ubuntu0.12", P),
        ("OpenSSH_9.2p1 Debian-2+deb12u4", F),
        ("OpenSSH_9.2p1 Debian-2+deb12u5", P),
    ],
)
def test_client_side_cves_before_and_after_their_fix(software: str, status: str) -> None:
    verdict = _verdict("ssh.software_not_vulnerable", _facts(software=software), kinds=["client-side"])
    assert verdict.status == status, verdict.message


def test_a_release_without_a_fix_in_the_table_cannot_be_told() -> None:
    # CVE-2025-32728 affects Debian 11's 8.4p1 and the table has no Debian 11 fix for it.
    verdict = _verdict(
        "ssh.software_not_vulnerable", _facts(software="OpenSSH_8.4p1 Debian-5+deb11u3"), kinds=["post-auth"]
    )
    assert verdict.status == E and verdict.observed["undecided"] == ["CVE-2025-32728"]
    assert "no fixed debian 11 revision" in verdict.message


def test_each_kind_is_judged_by_its_own_rule() -> None:
    # A client-side CVE (CVE-2025-26465) is not a server finding, and an old build fails the
    # pre-auth rule for pre-auth CVEs only.
    data = _facts(software="OpenSSH_4.0p1")
    pre = _verdict("ssh.software_not_vulnerable", data, kinds=["pre-auth-remote"])
    assert set(pre.observed["affected"]) == {"CVE-2024-6387", "CVE-2018-15473", "CVE-2016-6210"}
    assert "[pre-auth-remote, high]" in pre.message and "[pre-auth-remote, medium]" in pre.message
    client = _verdict("ssh.software_not_vulnerable", _facts(software="OpenSSH_9.2p1 Debian-2+deb12u4"))
    assert "CVE-2025-26465" not in client.observed["affected"]


def test_software_restricted_to_named_cves() -> None:
    data = _facts(software="OpenSSH_9.8p1")
    assert _verdict("ssh.software_not_vulnerable", data, cves=["CVE-2024-6387"]).status == P


KI = ("publickey", "keyboard-interactive")
NO_PAM = {"usepam": "no", "passwordauthentication": "no"}
ALICE = {"passwordauthentication": ("/etc/ssh/sshd_config:40 under Match User alice",)}


@pytest.mark.parametrize(
    ("changes", "params", "status"),
    [
        ({"auth_methods": ("publickey",)}, {}, P),
        # keyboard-interactive is PAM, usually a password: a pass needs UsePAM no seen in sshd -T.
        ({"auth_methods": KI}, {}, E),
        ({"auth_methods": KI, "config": {"usepam": "yes"}}, {}, E),
        ({"auth_methods": KI, "config": NO_PAM, "config_match": {}}, {}, P),
        # sshd -T read, its Match blocks not (a run stored before attt read them): no pass.
        ({"auth_methods": KI, "config": NO_PAM, "config_match": None}, {}, E),
        ({"config": NO_PAM, "config_match": None}, {}, E),
        ({"auth_methods": KI, "config": NO_PAM}, {"keyboard_interactive_counts": True}, F),
        (
            {"auth_methods": KI, "config": NO_PAM, "config_match": None},
            {"keyboard_interactive_counts": True},
            F,
        ),
        ({"auth_methods": ("none",)}, {}, F),
        ({"auth_methods": None}, {}, E),
        # A Match block that re-enables passwords for some users: the unknown user's view is partial.
        ({"config": NO_PAM, "config_match": ALICE}, {}, E),
        ({"auth_methods": ("password",), "config": NO_PAM, "config_match": ALICE}, {}, F),
        ({"config": NO_PAM, "config_match": {"x11forwarding": ("f:1 under Match all",)}}, {}, P),
    ],
)
def test_password_auth_logic(changes: dict[str, Any], params: dict[str, Any], status: str) -> None:
    verdict = _verdict("ssh.password_auth_disabled", _facts(**changes), **params)
    assert verdict.status == status, verdict.message
    if changes.get("config_match") and status == E:
        assert "/etc/ssh/sshd_config:40 under Match User alice" in verdict.message


@pytest.mark.parametrize(
    ("value", "match", "status"),
    [
        ("no", {}, P),
        ("no", {"permitrootlogin": ("/etc/ssh/sshd_config.d/x.conf:3 under Match Address 127.0.0.0/8",)}, E),
        ("yes", {"permitrootlogin": ("/etc/ssh/sshd_config.d/x.conf:3 under Match Address 127.0.0.0/8",)}, F),
        ("no", {"maxauthtries": ("f:9 under Match Group admins",)}, P),
        ("no", None, E),
        ("yes", None, F),
    ],
)
def test_config_rule_under_match_blocks(value: str, match: dict[str, Any] | None, status: str) -> None:
    # sshd -T shows what connections outside every Match block get: a Match block that sets the
    # judged keyword leaves a pass unearned; a failing value still fails (some connections get it).
    data = _facts(config={"permitrootlogin": value}, config_match=match)
    verdict = _verdict("ssh.config", data, expect={"permitrootlogin": {"equals": "no"}})
    assert verdict.status == status, verdict.message
    if match and status != P:
        assert "x.conf:3 under Match Address 127.0.0.0/8" in verdict.message


def test_host_key_sizes_and_unfetched_types() -> None:
    rsa = HostKey(type="ssh-rsa", bits=2048, sha256="SHA256:r")
    assert (
        _verdict(
            "ssh.host_key_min_bits", _facts(host_keys=(rsa,), host_key_algorithms=("rsa-sha2-512",))
        ).status
        == F
    )
    assert (
        _verdict("ssh.host_key_min_bits", _facts(host_key_algorithms=("ssh-ed25519", "ssh-dss"))).status == F
    )
    # An offered key type we could not fetch must not pass silently.
    unseen = _facts(host_key_algorithms=("ssh-ed25519", "ecdsa-sha2-nistp256"))
    assert _verdict("ssh.host_key_min_bits", unseen).status == E


def test_forbidden_and_allowed_lists_use_patterns_and_ignore_markers() -> None:
    data = _facts(kex=("curve25519-sha256", "ext-info-s", "kex-strict-s-v00@openssh.com"))
    assert _verdict("ssh.algorithms_allowed_only", data, kex=["curve25519-sha256"]).status == P
    verdict = _verdict(
        "ssh.algorithms_forbidden",
        _facts(macs=("hmac-sha1-etm@openssh.com", "hmac-sha2-256")),
        macs=["hmac-sha1*"],
    )
    assert (verdict.status, verdict.observed) == (F, {"macs": ["hmac-sha1-etm@openssh.com"]})


def test_bad_params_are_rejected() -> None:
    for control_id, params in [
        ("ssh.algorithms_allowed_only", {"profile": "nonexistent"}),
        ("ssh.algorithms_allowed_only", {}),
        ("ssh.algorithms_forbidden", {}),
        ("ssh.software_not_vulnerable", {"cves": ["CVE-1999-0001"]}),
        ("ssh.config", {"expect": {"maxauthtries": {}}}),
    ]:
        with pytest.raises(ValueError, match=r".+"):
            CONTROLS[control_id].params_model.model_validate(params)


@pytest.mark.parametrize(
    ("config", "error", "params", "status"),
    [
        ({"permitrootlogin": "no", "maxauthtries": "3"}, None, {}, P),
        ({"permitrootlogin": "NO", "maxauthtries": "5"}, None, {}, F),
        # A keyword sshd -T did not print was never seen: an error, unless another one fails.
        ({"permitrootlogin": "no"}, None, {}, E),
        ({"permitrootlogin": "yes"}, None, {}, F),
        (None, None, {}, E),
        (None, None, {"without_credentials": "not_applicable"}, NA),
        (None, "authentication as 'root' failed", {"without_credentials": "not_applicable"}, E),
    ],
)
def test_config_logic(
    config: dict[str, str] | None, error: str | None, params: dict[str, Any], status: str
) -> None:
    expect = {"PermitRootLogin": {"equals": "no"}, "maxauthtries": {"at_most": 4}}
    verdict = _verdict("ssh.config", _facts(config=config, config_error=error), expect=expect, **params)
    assert verdict.status == status


def test_config_excludes_items_of_a_list() -> None:
    data = _facts(config={"ciphers": "aes128-ctr,aes128-cbc"})
    verdict = _verdict("ssh.config", data, expect={"ciphers": {"excludes": ["*-cbc"]}})
    assert (verdict.status, verdict.message) == (F, "ciphers contains aes128-cbc")


def test_failing_verdicts_carry_the_same_facts_in_vietnamese() -> None:
    rsa = HostKey(type="ssh-rsa", bits=2048, sha256="SHA256:r")
    expect = {"maxauthtries": {"at_most": 4}, "logingracetime": {"at_least": 30}}
    failing = [
        _verdict("ssh.host_key_min_bits", _facts(host_keys=(rsa,), host_key_algorithms=("rsa-sha2-512",))),
        _verdict("ssh.software_not_vulnerable", _facts(software="OpenSSH_9.2p1 Debian-2+deb12u2")),
        _verdict("ssh.config", _facts(config={"maxauthtries": "6", "logingracetime": "20"}), expect=expect),
        _verdict("ssh.protocol_2_only", _facts(protocol="1.99", banner="SSH-1.99-OpenSSH_3.9p1")),
    ]
    assert failing[0].vi == "khóa máy chủ ssh-rsa chỉ dài 2048 bit (< 3072)"
    for verdict in failing:
        assert verdict.status == F and verdict.vi is not None and verdict.vi != verdict.message
        assert sorted(re.findall(r"\d+", verdict.vi)) == sorted(re.findall(r"\d+", verdict.message))
        assert re.findall(r"CVE-\d+-\d+", verdict.vi) == re.findall(r"CVE-\d+-\d+", verdict.message)


def test_an_unreadable_package_version_is_never_clear() -> None:
    package = InstalledPackage(manager="dpkg", version="1:garbage", os_id="debian", os_version="12")
    data = _facts(software="OpenSSH_9.2p1 Debian-2+deb12u3", package=package)
    verdict = _verdict("ssh.software_not_vulnerable", data, kinds=["pre-auth-remote"])
    assert verdict.status == E
