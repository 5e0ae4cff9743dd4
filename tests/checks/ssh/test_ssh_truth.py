"""Verdicts that must rest on what a real sshd showed (servers on 127.0.247.0/24, started here):
keyboard-interactive with and without PAM, Match blocks that `sshd -T` does not show, an
identification string longer than RFC 4253 allows, and a budget that runs out mid-probe."""

from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import paramiko
import pytest

from attt.checks.ssh import SshCheck, SshData, SshSettings, sshd_match
from attt.checks.ssh.models import CONFIG_STEP, MATCH_STEP
from attt.scanner.evaluate import evaluate
from attt.scanner.models.finding import Finding
from attt.scanner.models.observation import Observation
from attt.scanner.models.target import Host, Service, SystemInfo, Target
from attt.scanner.plugin import Credential, ProbeContext
from attt.scanner.policy import load_policy
from attt.scanner.registry import RegisteredCheck, Registry
from tests.servers.sshd import Sshd, can_run_sshd, one_sshd

POLICY = Path(__file__).parents[3] / "policies" / "baseline-ssh.yaml"
NET = "127.0.247"
TIMEOUT = 40.0
"""Ten seconds per connection: the authenticated session runs five commands, on a loaded machine."""
KEYS: dict[str, tuple[str, int | None]] = {"ed25519": ("ed25519", None)}

MATCH_FILE = """\
Match User alice
    PasswordAuthentication yes
Match Address 127.0.0.0/8
    PermitRootLogin prohibit-password
Match Group admins
    Include {dir}/inner.conf
"""
INNER_FILE = "AllowAgentForwarding yes\n"
MATCH_ALL_FILE = "Match all\n    MaxAuthTries 3\n"


@dataclass(frozen=True)
class TruthServers:
    ki_no_pam: Sshd
    ki_pam: Sshd
    match: Sshd
    match_all: Sshd
    long_banner: Sshd
    match_dir: Path


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TruthServers]:
    if not can_run_sshd():
        pytest.skip("real sshd fixtures need root and openssh-server")
    base = tmp_path_factory.mktemp("ssh-truth")
    match_dir = base / "match-files"
    match_dir.mkdir()
    (match_dir / "match.conf").write_text(MATCH_FILE.format(net=NET, dir=match_dir))
    (match_dir / "inner.conf").write_text(INNER_FILE)
    (match_dir / "all.conf").write_text(MATCH_ALL_FILE)
    ki = "KbdInteractiveAuthentication yes\nPasswordAuthentication no\nPermitRootLogin prohibit-password"
    # one_sshd appends the listen address and the common lines: Match blocks live in included files,
    # where they end with the file. Root may log in (with the test key) only from the Match block's
    # addresses, the probe's among them: a management network's exception, as sshd_config often has.
    match = (
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin no\n"
        f"AllowAgentForwarding no\nX11Forwarding no\nInclude {match_dir}/match.conf"
    )
    match_all = f"PasswordAuthentication no\nKbdInteractiveAuthentication no\nInclude {match_dir}/all.conf"
    with ExitStack() as stack:
        yield TruthServers(
            ki_no_pam=stack.enter_context(one_sshd(base / "ki", f"{NET}.1", ki, KEYS)),
            ki_pam=stack.enter_context(one_sshd(base / "pam", f"{NET}.2", f"UsePAM yes\n{ki}", KEYS)),
            match=stack.enter_context(one_sshd(base / "match", f"{NET}.3", match, KEYS)),
            match_all=stack.enter_context(one_sshd(base / "all", f"{NET}.4", match_all, KEYS)),
            long_banner=stack.enter_context(
                one_sshd(base / "long", f"{NET}.5", "VersionAddendum " + "A" * 300, KEYS)
            ),
            match_dir=match_dir,
        )


def _target(ip: str) -> Target:
    info = SystemInfo(id="test", name="Test system", owner="Sở KH&CN", level=3)
    return Target(system=info, host=Host(address=ip, services=(Service(port=22, kind="ssh"),)), ip=ip)


def _probe(server: Sshd, credential: bool = True, timeout: float = TIMEOUT) -> Observation:
    context = ProbeContext(
        timeout=timeout,
        settings=SshSettings(sshd_config=str(server.config)),
        credential=Credential(user="root", key_file=str(server.client_key)) if credential else None,
    )
    [observation] = SshCheck().probe(_target(server.ip), context)
    return observation


def _findings(observation: Observation) -> dict[str, Finding]:
    registry = Registry.of({"ssh": RegisteredCheck(SshCheck(), "attt-scanner")})
    policy = load_policy(str(POLICY), registry)
    target = _target(observation.ip or "")
    found = evaluate([target], [observation], {"test": [policy]}, registry, {"ssh"}, datetime.now(UTC))
    return {f.rule_id: f for f in found}


def _data(observation: Observation) -> SshData:
    assert observation.status == "ok", observation.error
    return SshData.model_validate(observation.data)


# --- keyboard-interactive --------------------------------------------------------------


def test_keyboard_interactive_without_credential_is_an_error_not_a_pass(servers: TruthServers) -> None:
    # Offered keyboard-interactive is PAM, usually the password: "no password" was never seen.
    observation = _probe(servers.ki_no_pam, credential=False)
    assert _data(observation).auth_methods == ("publickey", "keyboard-interactive")
    finding = _findings(observation)["SSH-PASSWORD-AUTH"]
    assert finding.status == "error"
    assert "keyboard-interactive is offered" in finding.message.en and "UsePAM" in finding.message.en


def test_keyboard_interactive_without_pam_passes_once_sshd_t_shows_it(servers: TruthServers) -> None:
    observation = _probe(servers.ki_no_pam)
    data = _data(observation)
    assert data.config is not None and data.config["usepam"] == "no" and data.config_match == {}
    finding = _findings(observation)["SSH-PASSWORD-AUTH"]
    assert finding.status == "pass", finding.message.en
    assert "UsePAM no" in finding.message.en


def test_keyboard_interactive_with_pam_is_an_error(servers: TruthServers) -> None:
    observation = _probe(servers.ki_pam)
    data = _data(observation)
    assert data.config is not None and data.config["usepam"] == "yes"
    finding = _findings(observation)["SSH-PASSWORD-AUTH"]
    assert finding.status == "error"
    assert "UsePAM yes" in finding.message.en


# --- Match blocks ----------------------------------------------------------------------


def test_match_blocks_are_read_with_the_files_sshd_includes(servers: TruthServers) -> None:
    data = _data(_probe(servers.match))
    assert data.incomplete == () and data.config is not None, data.step_errors
    # sshd -T alone shows the settings outside every Match block: the ones the blocks change are seen.
    assert data.config["permitrootlogin"] == "no"
    assert data.config["passwordauthentication"] == "no"
    where = servers.match_dir / "match.conf"
    assert data.config_match == {
        "passwordauthentication": (f"{where}:2 under Match User alice",),
        "permitrootlogin": (f"{where}:4 under Match Address 127.0.0.0/8",),
        "allowagentforwarding": (f"{servers.match_dir / 'inner.conf'}:1 under Match Group admins",),
    }


def test_the_blocks_are_real_passwords_for_alice(servers: TruthServers) -> None:
    # What the Match block does, seen from outside: alice is offered passwords, an unknown user not.
    def methods(user: str) -> list[str]:
        with paramiko.Transport((servers.match.ip, 22)) as transport:
            transport.start_client(timeout=TIMEOUT)
            with pytest.raises(paramiko.BadAuthenticationType) as refused:
                transport.auth_none(user)
            return list(refused.value.allowed_types)

    assert "password" in methods("alice")
    assert "password" not in methods("attt-probe")


def test_rules_on_settings_a_match_block_changes_are_errors(servers: TruthServers) -> None:
    findings = _findings(_probe(servers.match))
    for rule, keyword, place in (
        ("SSH-ROOT-LOGIN", "permitrootlogin", "match.conf:4 under Match Address 127.0.0.0/8"),
        ("SSH-PASSWORD-AUTH", "passwordauthentication", "match.conf:2 under Match User alice"),
        ("SSH-FORWARDING", "allowagentforwarding", "inner.conf:1 under Match Group admins"),
    ):
        finding = findings[rule]
        assert finding.status == "error", (rule, finding.message.en)
        assert f"a Match block sets {keyword}" in finding.message.en and place in finding.message.en
    # A rule on settings no Match block touches is judged as before.
    assert findings["SSH-LOG-LEVEL"].status == "pass"


def test_match_all_is_what_sshd_t_shows(servers: TruthServers) -> None:
    # sshd -T applies `Match all`: what it sets is no hidden exception.
    observation = _probe(servers.match_all)
    data = _data(observation)
    assert data.config is not None and data.config["maxauthtries"] == "3"
    assert data.config_match == {}
    findings = _findings(observation)
    assert findings["SSH-CONFIG-AUTH"].status == "pass", findings["SSH-CONFIG-AUTH"].message.en
    assert findings["SSH-PASSWORD-AUTH"].status == "pass"


def test_unread_match_blocks_leave_no_pass(servers: TruthServers) -> None:
    # The Match reading failed (here: sshd -ddd -T cannot run as that path): the rules that would
    # pass on sshd -T are errors naming the step; the facts of sshd -T stand.
    data = _data(_probe(servers.match_all)).model_dump()
    why = "`sudo -n /usr/sbin/sshd -ddd -T` exited with status 1"
    unread = data | {"config_match": None, "incomplete": (MATCH_STEP,), "step_errors": {MATCH_STEP: why}}
    observation = _probe(servers.match_all).model_copy(update={"data": SshData.model_validate(unread)})
    findings = _findings(observation)
    for rule in ("SSH-CONFIG-AUTH", "SSH-PASSWORD-AUTH", "SSH-LOG-LEVEL"):
        finding = findings[rule]
        assert finding.status == "error" and "Match blocks" in finding.message.en, rule
        assert why in finding.message.en, rule
    # A run stored before attt read Match blocks: sshd -T without them is no pass either.
    older = data | {"config_match": None}
    observation = observation.model_copy(update={"data": SshData.model_validate(older)})
    assert _findings(observation)["SSH-LOG-LEVEL"].status == "error"


# --- identification string and budget ---------------------------------------------------


def test_identification_longer_than_255_bytes_is_an_error(servers: TruthServers) -> None:
    # OpenSSH sends its VersionAddendum whatever its length; RFC 4253 §4.2 caps the line at 255.
    observation = _probe(servers.long_banner, credential=False)
    assert observation.status == "error"
    assert (
        observation.error is not None and "identification string longer than 255 bytes" in observation.error
    )
    findings = _findings(observation)
    # One error entry blocks every rule of the endpoint; none passes or fails.
    assert findings["SSH-PROBE-ERROR"].status == "error"
    assert "SSH-PASSWORD-AUTH" in (findings["SSH-PROBE-ERROR"].blocked or ())
    assert not [f for f in findings.values() if f.status in ("pass", "fail")]


def test_budget_exhausted_before_the_authenticated_session_says_so(servers: TruthServers) -> None:
    observation = _probe(servers.ki_no_pam, timeout=0.3)
    if observation.status == "error":  # a loaded machine: not even the greeting came in time
        assert observation.error is not None and "SSH greeting" in observation.error
        return
    data = _data(observation)
    assert CONFIG_STEP in data.incomplete
    assert "time budget" in data.step_errors[CONFIG_STEP] or "in time" in data.step_errors[CONFIG_STEP]


# --- reading Match blocks out of what sshd read ------------------------------------------

DEBUG = """\
debug2: load_server_config: filename /etc/ssh/sshd_config
debug3: /etc/ssh/sshd_config:1 setting PermitRootLogin no
debug2: /etc/ssh/sshd_config line 2: new include /etc/ssh/sshd_config.d/*.conf
debug2: /etc/ssh/sshd_config line 2: including /etc/ssh/sshd_config.d/a.conf
debug2: load_server_config: filename /etc/ssh/sshd_config.d/a.conf
debug2: /etc/ssh/sshd_config line 5: including /etc/ssh/admins.conf
debug2: load_server_config: filename /etc/ssh/admins.conf
debug3: checking syntax for 'Match Group admins'
"""
LISTING = """\
/etc/ssh/sshd_config:1:PermitRootLogin no
/etc/ssh/sshd_config:2:Include /etc/ssh/sshd_config.d/*.conf
/etc/ssh/sshd_config:3:# Match User nobody
/etc/ssh/sshd_config:4:Match Group admins
/etc/ssh/sshd_config:5:  Include /etc/ssh/admins.conf
/etc/ssh/sshd_config:6:Match all
/etc/ssh/sshd_config:7:MaxAuthTries 3
/etc/ssh/sshd_config.d/a.conf:1:X11Forwarding no
/etc/ssh/sshd_config.d/a.conf:2:match address 127.0.0.0/8
/etc/ssh/sshd_config.d/a.conf:3:\tChallengeResponseAuthentication=yes
/etc/ssh/admins.conf:1:PasswordAuthentication yes
/etc/ssh/admins.conf:2:Match all
/etc/ssh/admins.conf:3:PermitRootLogin yes
"""


def test_match_blocks_from_sshd_debug_and_file_lines() -> None:
    files, includes = sshd_match.loaded_files(DEBUG)
    assert files == ("/etc/ssh/sshd_config", "/etc/ssh/sshd_config.d/a.conf", "/etc/ssh/admins.conf")
    found = sshd_match.conditional_settings(files, includes, sshd_match.file_lines(LISTING, files))
    assert found == {
        # A Match block ends with its file; an old keyword name is read as sshd -T prints it.
        "kbdinteractiveauthentication": ("/etc/ssh/sshd_config.d/a.conf:3 under Match address 127.0.0.0/8",),
        # An Include inside a Match block makes the whole file conditional, `Match all` in it too.
        "passwordauthentication": ("/etc/ssh/admins.conf:1 under Match Group admins",),
        "permitrootlogin": ("/etc/ssh/admins.conf:3 under Match Group admins",),
    }


@pytest.mark.parametrize(
    ("debug", "why"),
    [
        ("debug1: nothing useful\n", "did not name the configuration files"),
        (
            "".join(f"debug2: load_server_config: filename /etc/ssh/{n}.conf\n" for n in range(40)),
            "more than 32",
        ),
    ],
)
def test_files_sshd_read_cannot_be_told(debug: str, why: str) -> None:
    with pytest.raises(sshd_match.MatchReadError, match=why):
        sshd_match.loaded_files(debug)


def test_an_included_file_that_was_not_read_is_no_empty_file() -> None:
    files, includes = sshd_match.loaded_files(DEBUG)
    lines = sshd_match.file_lines(LISTING, files)
    del lines["/etc/ssh/admins.conf"]
    with pytest.raises(sshd_match.MatchReadError, match="which was not read"):
        sshd_match.conditional_settings(files, includes, lines)
