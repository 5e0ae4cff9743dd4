"""SSH-FORWARDING: X11 and agent forwarding are off, whether by their own switches or by
`DisableForwarding yes` on a build that honours it.

`sshd -T` prints X11Forwarding and AllowAgentForwarding as configured even under
`DisableForwarding yes`. OpenSSH 10.0 made that switch cover X11 and agent forwarding
(CVE-2025-32728); Debian backported the fix to 9.2p1 in 1:9.2p1-2+deb12u6. This machine's sshd is
Debian 12's, so the real servers here show the backported case; OpenSSH 10 and unfixed builds are
judged on recorded `sshd -T` output (tests/data/sshd_t/, this sshd's own, under `DisableForwarding
yes`) with the banner or installed package of the other builds.
"""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paramiko
import pytest

from attt.checks.ssh import SshCheck, SshData, SshSettings
from attt.checks.ssh._paramiko import parse_sshd_t
from attt.checks.ssh.controls import CONTROLS
from attt.checks.ssh.models import InstalledPackage
from attt.scanner.models.policy import ResolvedRule
from attt.scanner.models.target import Host, Service, SystemInfo, Target
from attt.scanner.plugin import Credential, ProbeContext, Verdict
from attt.scanner.policy import load_policy
from attt.scanner.registry import Registry
from tests.servers.sshd import Sshd, can_run_sshd, one_sshd

NET = "127.0.233"
RECORDED = Path(__file__).parents[2] / "data" / "sshd_t" / "debian12-disableforwarding.txt"
P, F, E, NA = "pass", "fail", "error", "not_applicable"


def _target(ip: str) -> Target:
    info = SystemInfo(id="test", name="Test system", owner="Sở KH&CN", level=3)
    return Target(system=info, host=Host(address=ip, services=(Service(port=22, kind="ssh"),)), ip=ip)


@pytest.fixture(scope="module")
def rule() -> ResolvedRule:
    [found] = [r for r in load_policy("baseline", Registry.load()).rules if r.id == "SSH-FORWARDING"]
    return found


def _judge(rule: ResolvedRule, data: SshData) -> Verdict:
    return CONTROLS[rule.control].judge(data, rule.params, _target("127.0.233.1"))


# --- real servers ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Sshd]]:
    if not can_run_sshd():
        pytest.skip("real sshd fixtures need root and openssh-server")
    directory = tmp_path_factory.mktemp("sshd-forwarding")
    keys: dict[str, tuple[str, int | None]] = {"ed25519": ("ed25519", None)}
    switches = {
        # X11Forwarding yes as in Debian's shipped sshd_config; AllowAgentForwarding keeps its default (yes).
        "disabled": "X11Forwarding yes\nDisableForwarding yes",
        "x11": "X11Forwarding yes",
    }
    with (
        one_sshd(directory / "disabled", f"{NET}.1", switches["disabled"], keys) as disabled,
        one_sshd(directory / "x11", f"{NET}.2", switches["x11"], keys) as x11,
    ):
        yield {"disabled": disabled, "x11": x11}


def _probe(server: Sshd) -> SshData:
    credential = Credential(user="root", key_file=str(server.client_key))
    context = ProbeContext(
        timeout=20.0, settings=SshSettings(sshd_config=str(server.config)), credential=credential
    )
    [observation] = SshCheck().probe(_target(server.ip), context)
    assert observation.status == "ok", observation.error
    return SshData.model_validate(observation.data)


def _x11_granted(server: Sshd) -> bool:
    """Whether the server grants an X11 forwarding request on a session channel."""
    transport = paramiko.Transport((server.ip, server.port))
    try:
        transport.connect(username="root", pkey=paramiko.Ed25519Key.from_path(server.client_key))
        channel = transport.open_session(timeout=5)
        try:
            channel.request_x11(auth_protocol="MIT-MAGIC-COOKIE-1", auth_cookie="0" * 32)
        except paramiko.SSHException:
            return False
        return True
    finally:
        transport.close()


def test_disable_forwarding_passes_on_a_build_that_honours_it(
    servers: dict[str, Sshd], rule: ResolvedRule
) -> None:
    server = servers["disabled"]
    data = _probe(server)
    assert data.config is not None
    # What sshd -T says, and what the server does: the two lines say yes, the switch wins.
    assert (data.config["x11forwarding"], data.config["allowagentforwarding"]) == ("yes", "yes")
    assert data.config["disableforwarding"] == "yes"
    assert not _x11_granted(server)
    verdict = _judge(rule, data)
    assert verdict.status == P, verdict.message
    assert "CVE-2025-32728" in verdict.message and "fixed since 1:9.2p1-2+deb12u6" in verdict.message


def test_forwarding_left_on_fails(servers: dict[str, Sshd], rule: ResolvedRule) -> None:
    server = servers["x11"]
    data = _probe(server)
    assert _x11_granted(server)
    verdict = _judge(rule, data)
    assert verdict.status == F
    assert verdict.message == "forwarding is on (x11forwarding yes, allowagentforwarding yes)"


# --- recorded sshd -T output, other builds ---------------------------------------------


def _recorded(**settings: str) -> dict[str, str]:
    config = parse_sshd_t(RECORDED.read_text())
    return config | settings


def _mixed_case(text: str) -> str:
    """The recording as OpenSSH 10.4 writes its configuration dump: keywords in mixed case (its
    release notes: "PubkeyAuthentication" rather than "pubkeyauthentication")."""
    names = {n.lower(): n for n in ("X11Forwarding", "AllowAgentForwarding", "DisableForwarding")}
    lines = []
    for line in text.splitlines():
        keyword, _, value = line.partition(" ")
        lines.append(f"{names.get(keyword, keyword.capitalize())} {value}")
    return "\n".join(lines)


def _facts(software: str, config: dict[str, str] | None, **changes: Any) -> SshData:
    base: dict[str, Any] = {
        "banner": f"SSH-2.0-{software}",
        "protocol": "2.0",
        "software": software,
        "kex": ("mlkem768x25519-sha256", "kex-strict-s-v00@openssh.com"),
        "host_key_algorithms": ("ssh-ed25519",),
        "ciphers": ("aes128-gcm@openssh.com",),
        "macs": ("hmac-sha2-256-etm@openssh.com",),
        "compression": ("none",),
        "strict_kex": True,
        "ext_info": True,
        "auth_methods": ("publickey",),
        "host_keys": (),
        "config": config,
        "config_match": None if config is None else {},
    }
    return SshData.model_validate(base | changes)


@pytest.mark.parametrize(
    ("software", "status"),
    [
        # OpenSSH 10.0 and later honour the switch, whatever the vendor.
        ("OpenSSH_10.0", P),
        ("OpenSSH_10.0p2 Debian-7", P),
        ("OpenSSH_10.2p1", P),
        # Debian 12 from its backported fix on; before it the switch is ignored for X11 and agent.
        ("OpenSSH_9.2p1 Debian-2+deb12u6", P),
        ("OpenSSH_9.2p1 Debian-2+deb12u5", F),
        # An upstream 9.x build has nothing backported.
        ("OpenSSH_9.9p2", F),
        # Ubuntu's fixed revision is not in attt's table, a Red Hat banner hides its revision.
        ("OpenSSH_9.6p1 Ubuntu-3ubuntu13.11", E),
        ("OpenSSH_8.7", E),
    ],
)
def test_disable_forwarding_counts_where_the_build_honours_it(
    rule: ResolvedRule, software: str, status: str
) -> None:
    verdict = _judge(rule, _facts(software, _recorded()))
    assert verdict.status == status, verdict.message


def test_openssh_10_4_mixed_case_dump_is_read_the_same(rule: ResolvedRule) -> None:
    config = parse_sshd_t(_mixed_case(RECORDED.read_text()))
    assert config == _recorded()
    assert _judge(rule, _facts("OpenSSH_10.4p1", config)).status == P
    without = parse_sshd_t(
        _mixed_case(RECORDED.read_text()).replace("DisableForwarding yes", "DisableForwarding no")
    )
    assert _judge(rule, _facts("OpenSSH_10.4p1", without)).status == F


@pytest.mark.parametrize(("banner", "status"), [("Debian-2+deb12u7", P), ("Debian-2+deb12u5", F)])
def test_the_running_sshd_counts_as_well_as_the_installed_package(
    rule: ResolvedRule, banner: str, status: str
) -> None:
    # A banner older than the installed package is an sshd not restarted since the update: the
    # running one still ignores DisableForwarding.
    package = InstalledPackage(manager="dpkg", version="1:9.2p1-2+deb12u7", os_id="debian", os_version="12")
    data = _facts(f"OpenSSH_9.2p1 {banner}", _recorded(), package=package)
    assert _judge(rule, data).status == status


@pytest.mark.parametrize(
    ("settings", "status"),
    [
        # Their own switches off: no build question to ask.
        ({"x11forwarding": "no", "allowagentforwarding": "no", "disableforwarding": "no"}, P),
        ({"x11forwarding": "no", "allowagentforwarding": "yes", "disableforwarding": "no"}, F),
    ],
)
def test_the_own_switches_decide_on_an_unfixed_build(
    rule: ResolvedRule, settings: dict[str, str], status: str
) -> None:
    assert _judge(rule, _facts("OpenSSH_9.9p2", _recorded(**settings))).status == status


@pytest.mark.parametrize(
    ("missing", "settings"),
    [
        # Agent forwarding off and X11 unknown; X11 on and the switch that may override it unknown.
        ("x11forwarding", {"allowagentforwarding": "no", "disableforwarding": "no"}),
        ("disableforwarding", {}),
    ],
)
def test_a_line_missing_from_sshd_t_is_an_error(
    rule: ResolvedRule, missing: str, settings: dict[str, str]
) -> None:
    config = {key: value for key, value in _recorded(**settings).items() if key != missing}
    verdict = _judge(rule, _facts("OpenSSH_10.0", config))
    assert verdict.status == E
    assert missing in verdict.message


def test_without_sshd_t_the_policy_decides(rule: ResolvedRule) -> None:
    assert _judge(rule, _facts("OpenSSH_10.0", None)).status == NA
    failed = _facts("OpenSSH_10.0", None, config_error="authentication as 'root' failed")
    assert _judge(rule, failed).status == E
    strict = load_policy("vn-level-5", Registry.load())
    [level5] = [r for r in strict.rules if r.id == "SSH-FORWARDING"]
    assert _judge(level5, _facts("OpenSSH_10.0", None)).status == E
