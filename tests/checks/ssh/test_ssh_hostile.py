"""The ssh check against servers that are correct up to a point (tests/servers/ssh_hostile.py):
what they did show stands, what they withheld is an error of its own step, and the probe keeps
to its time budget."""

import time

import pytest
from pydantic import SecretStr

from attt.checks.ports.models import OpenPort, PortsData
from attt.checks.ssh import SshCheck, SshData, SshSettings, _paramiko
from attt.checks.ssh.models import AUTH_STEP
from attt.checks.ssh.wire import MAX_PRELUDE_LINES
from attt.scanner.models.observation import Observation
from attt.scanner.models.target import Host, Service, SystemInfo, Target
from attt.scanner.plugin import Credential, ProbeContext
from tests.servers.ssh_hostile import ALT_PORT, HOST_KEY_ALGORITHMS, KEX, PRELUDE_LINES, SLOW_SIGN, HostileSsh

SLACK = 0.5
"""What closing sockets and paramiko's threads may add to a time budget on a loaded machine."""


def _target(ip: str, ports: tuple[int, ...]) -> Target:
    info = SystemInfo(id="test", name="Test system", owner="Sở KH&CN", level=3)
    services = tuple(Service(port=port, kind="ssh") for port in ports)
    return Target(system=info, host=Host(address=ip, services=services), ip=ip)


def _probe(ip: str, ports: tuple[int, ...] = (22,), timeout: float = 4.0) -> list[Observation]:
    context = ProbeContext(timeout=timeout, settings=SshSettings())
    return list(SshCheck().probe(_target(ip, ports), context))


def _data(observation: Observation) -> SshData:
    assert observation.status == "ok", observation.error
    assert isinstance(observation.data, SshData)
    return observation.data


@pytest.mark.parametrize("server", ["reset_on_auth", "garbled_auth"])
def test_a_broken_auth_answer_costs_only_the_auth_step(hostile_ssh: HostileSsh, server: str) -> None:
    # paramiko re-raises whatever its reader thread hit (here a connection reset, or a
    # UnicodeDecodeError): the host key read over the same connection must survive it.
    [observation] = _probe(getattr(hostile_ssh, server))
    data = _data(observation)
    assert [k.sha256 for k in data.host_keys] == [hostile_ssh.host_key_sha256]
    assert data.auth_methods is None
    assert data.incomplete == (AUTH_STEP,)
    assert data.step_errors[AUTH_STEP].startswith("authentication query failed")


def test_an_empty_method_list_is_not_an_observed_absence_of_passwords(hostile_ssh: HostileSsh) -> None:
    # A server that names no method to an unknown user has said nothing of what its users get:
    # "password authentication is not offered" would rest on that silence.
    [observation] = _probe(hostile_ssh.empty_auth)
    data = _data(observation)
    assert [k.sha256 for k in data.host_keys] == [hostile_ssh.host_key_sha256]
    assert data.auth_methods is None and data.incomplete == (AUTH_STEP,)
    assert data.step_errors[AUTH_STEP] == "the server named no authentication method for the probe user"


@pytest.mark.parametrize("service_detection", [False, True])
def test_an_open_2222_counts_only_if_it_speaks_ssh(hostile_ssh: HostileSsh, service_detection: bool) -> None:
    # nmap's port table names 2222 EtherNetIP-1: SSH there was left unprobed, and its rules were
    # not_applicable on a host whose only SSH server it is. A hosting panel's HTTP there is no SSH.
    expected = {hostile_ssh.alt_ssh: [(ALT_PORT, "ok")], hostile_ssh.alt_http: []}
    for ip, found in expected.items():
        target = _target(ip, ())
        service = "ssh" if service_detection and ip == hostile_ssh.alt_ssh else "EtherNetIP-1"
        if service_detection and ip == hostile_ssh.alt_http:
            service = "http"
        data = PortsData(
            scanned=(22, ALT_PORT),
            open=(OpenPort(port=ALT_PORT, service=service),),
            service_detection=service_detection,
            nmap_version="test",
        )
        prior = (Observation(check="ports", system="test", host=ip, status="ok", data=data),)
        context = ProbeContext(timeout=1.0, settings=SshSettings(), prior=prior)
        assert [(o.port, o.status) for o in SshCheck().probe(target, context)] == found


def test_the_auth_query_ends_with_its_connection_budget(hostile_ssh: HostileSsh) -> None:
    # The key exchange takes most of the budget; the unanswered query may only have the rest.
    budget = SLOW_SIGN + 0.4
    started = time.monotonic()
    fact, surface = _paramiko.host_key(hostile_ssh.slow_kex, 22, "ssh-ed25519", budget, "attt-probe")
    elapsed = time.monotonic() - started
    assert fact.sha256 == hostile_ssh.host_key_sha256
    assert surface is not None and surface.methods is None
    assert elapsed < budget + SLACK, elapsed


def test_a_login_cut_by_the_budget_says_so(hostile_ssh: HostileSsh) -> None:
    # The server never answers the login: the time ran out, the credential was not refused.
    credential = Credential(user="root", password=SecretStr("unused-pw"))
    with pytest.raises(_paramiko.ParamikoProbeError) as cut:
        _paramiko.authenticated_facts(hostile_ssh.slow_kex, 22, credential, SLOW_SIGN + 0.4)
    assert str(cut.value) == "probe time budget exhausted during authentication as 'root'"


def test_endpoints_of_one_target_share_its_budget(hostile_ssh: HostileSsh) -> None:
    # Two endpoints whose key exchanges never finish: each could use the whole budget alone.
    timeout = 3.0
    started = time.monotonic()
    observations = _probe(hostile_ssh.stall, hostile_ssh.stall_ports, timeout=timeout)
    elapsed = time.monotonic() - started
    assert elapsed < timeout + SLACK, elapsed
    assert [o.port for o in observations] == list(hostile_ssh.stall_ports)
    for observation in observations:
        data = _data(observation)
        # What the KEXINIT showed stands; the host keys and auth methods it withheld are not guessed.
        assert data.kex == KEX and data.host_key_algorithms == HOST_KEY_ALGORITHMS
        assert data.host_keys == () and data.auth_methods is None
        assert data.incomplete == (AUTH_STEP,)
        # The step that was never reached says the time ran out, not that the server refused.
        assert data.step_errors[AUTH_STEP] == "probe time budget exhausted before the authentication query"


def test_lines_before_the_identification_string_are_skipped(hostile_ssh: HostileSsh) -> None:
    assert PRELUDE_LINES < MAX_PRELUDE_LINES
    [observation] = _probe(hostile_ssh.prelude, timeout=1.0)
    data = _data(observation)
    assert data.banner == "SSH-2.0-OpenSSH_9.9 attt-hostile"
    assert data.kex == KEX


def test_a_host_key_algorithm_listed_twice_is_fetched_once() -> None:
    # Each fetch is a key exchange: a KEXINIT repeating a name must not multiply connections.
    offered = ("ssh-ed25519", "ssh-ed25519", "rsa-sha2-512", "ssh-rsa", "rsa-sha2-512", "x-new", "x-new")
    assert _paramiko.fetchable_host_key_algorithms(offered) == (("ssh-ed25519", "rsa-sha2-512"), ("x-new",))
