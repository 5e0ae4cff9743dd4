"""CPU-heavy probes in worker processes (scanner/processes.py): the same facts and verdicts as
in threads; a worker killed mid-probe costs its own probes an `error` that says so, never the
run; Ctrl-C to the whole process group stops the workers and leaves a resumable run.

The real `attt scan` runs in a child process against the TLS and SSH labs (127.0.30.x,
127.0.40.x) and silent TLS ports on 127.0.152.x, which hold a probe for about a quarter of its
`--timeout`: long enough to kill its worker under it.
"""

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import SecretStr

from attt.checks.ssh import SshData, SshSettings
from attt.scanner.config import load_config
from attt.scanner.errors import ConfigError
from attt.scanner.models.observation import Observation
from attt.scanner.plugin import Check, Credential, ProbeContext, cpu_heavy
from attt.scanner.processes import ProcessPool
from attt.scanner.registry import RegisteredCheck, Registry
from attt.scanner.runner import DEFAULT_MAX_WORKERS, GRACE, MIN_PROBES, Runner, ScanPlan, workers_for
from tests import factories
from tests.robustness.conftest import history, start
from tests.robustness.test_budgets import _fleet
from tests.scanner import plugins
from tests.servers.listeners import tcp_listeners
from tests.servers.sshd import SshServers
from tests.servers.tls import TlsLab

SILENT = [f"127.0.152.{i}" for i in range(10, 16)]
SILENT_PORT = 8443
WAIT_SECONDS = 240.0
SECRET = "mật-khẩu-không-được-lộ"


@pytest.fixture(scope="module")
def silent_ports() -> Iterator[None]:
    with tcp_listeners([(ip, SILENT_PORT) for ip in SILENT]):
        yield


def _workers(pid: int) -> set[int]:
    """The worker processes of the scan `pid`: children of its fork server, a child of its own."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue  # it has just exited
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    children = {p for p, parent in parents.items() if parent == pid}
    return {p for p, parent in parents.items() if parent in children}


def _running(pid: int) -> bool:
    """Whether the process runs (a zombie whose new parent has not reaped it does not: with the
    fork server gone, a worker's parent is this machine's init, which may be slow to)."""
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _scan(
    args: Sequence[str], during: Callable[[subprocess.Popen[str]], None] = lambda _: None
) -> tuple[int, set[int], str]:
    """Run `attt ARGS`; its exit code, every worker process seen while it ran, its stderr."""
    proc = start(args)
    seen: set[int] = set()
    during(proc)
    deadline = time.monotonic() + WAIT_SECONDS
    while proc.poll() is None:
        seen |= _workers(proc.pid)
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"attt {' '.join(args)} still running after {WAIT_SECONDS:.0f} s")
        time.sleep(0.05)
    _, err = proc.communicate(timeout=10)
    return proc.returncode, seen, err


def _report(out: Path) -> dict[str, Any]:
    return dict(json.loads((out / "report.json").read_text(encoding="utf-8")))


def _scan_args(tmp_path: Path, inventory: Path, name: str, *extra: str) -> list[str]:
    return ["scan", "-i", str(inventory), "--format", "json", "--out", str(tmp_path / name),
            "--db", str(tmp_path / f"{name}.sqlite"), *extra]  # fmt: skip


def _facts(report: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Observations without their times (the only thing two scans of a server may differ in)."""
    untimed = [
        {k: v for k, v in (o["data"] or {}).items() if k != "scanned_at"} for o in report["observations"]
    ]
    return sorted(
        (
            o["check"],
            o["system"],
            o["host"],
            o["port"],
            o["status"],
            o["error"],
            json.dumps(data, sort_keys=True),
        )
        for o, data in zip(report["observations"], untimed, strict=True)
    )


def _verdicts(report: dict[str, Any]) -> list[tuple[Any, ...]]:
    return sorted((f["rule_id"], f["system"], f["host"], f["port"], f["status"]) for f in report["findings"])


def test_two_worker_processes_see_and_judge_what_one_process_does(
    tls_lab_servers: TlsLab, sshd_servers: SshServers, port_listeners: object, tmp_path: Path
) -> None:
    # Given a dozen healthy TLS, STARTTLS and SSH servers and a host of plain ports, scanned
    # within issue 14's budgets (none of them may end as `error`)
    inventory = _fleet(tmp_path / "fleet.yaml", tls_lab_servers, sshd_servers)
    checks = ("--check", "ports", "--check", "tls", "--check", "ssh")
    budgets = ("--timeout", "5", "--concurrency", "256")
    reports, workers, progress = [], [], []
    for processes in ("1", "2"):
        # When it is scanned in this process, then with two worker processes
        code, seen, err = _scan(
            _scan_args(tmp_path, inventory, f"p{processes}", *checks, *budgets, "--processes", processes)
        )
        assert code in (0, 1), err[-3000:]
        reports.append(_report(tmp_path / f"p{processes}"))
        workers.append(seen)
        counted = re.findall(r"^\[\s*(\d+)/\d+\]", err, re.MULTILINE)
        progress.append(sorted(int(done) for done in counted))
    # Then the workers ran only when asked for, every probe was counted as it ended, and the
    # facts and verdicts are the same
    assert workers[0] == set()
    assert len(workers[1]) == 2
    assert progress[1] == progress[0] == list(range(1, len(progress[0]) + 1)) and progress[0]
    assert _facts(reports[1]) == _facts(reports[0])
    assert _verdicts(reports[1]) == _verdicts(reports[0])
    assert [o for o in reports[1]["observations"] if o["status"] == "error"] == []


def _silent_inventory(path: Path, lab: TlsLab) -> Path:
    """The silent ports first (one system each), then two healthy lab servers."""
    hosts = [(ip, SILENT_PORT) for ip in SILENT] + [
        (lab.servers[n].ip, 443) for n in ("modern", "intermediate")
    ]
    systems = [
        {"id": f"s{i}", "name": f"s{i}", "owner": "Sở KH&CN", "level": 2,
         "hosts": [{"address": ip, "services": [{"port": port, "kind": "tls"}]}]}
        for i, (ip, port) in enumerate(hosts)
    ]  # fmt: skip
    inventory = {"province": "Hà Tĩnh", "scope": ["127.0.0.0/8"], "systems": systems}
    path.write_text(yaml.safe_dump(inventory, allow_unicode=True), encoding="utf-8")
    return path


def _silent_scan(tmp_path: Path, lab: TlsLab, timeout: str) -> list[str]:
    """A TLS scan of the silent ports and two healthy servers, four at once, on two workers:
    each silent port holds its probe for a quarter of `timeout`."""
    inventory = _silent_inventory(tmp_path / "inventory.yaml", lab)
    return _scan_args(tmp_path, inventory, "out", "--check", "tls", "-p", "baseline", "--timeout", timeout,
                      "--concurrency", "4", "--processes", "2")  # fmt: skip


def _when_workers_hold_probes(
    action: Callable[[subprocess.Popen[str], set[int]], None],
) -> Callable[[subprocess.Popen[str]], None]:
    """Wait until the scan's two workers serve and have had time to take the silent probes."""

    def during(proc: subprocess.Popen[str]) -> None:
        deadline = time.monotonic() + 60
        while len(workers := _workers(proc.pid)) < 2:
            if time.monotonic() > deadline or proc.poll() is not None:
                pytest.fail("the scan started no worker processes")
            time.sleep(0.05)
        time.sleep(2.0)  # ready, and handed the probes in flight
        action(proc, workers)

    return during


def test_a_killed_worker_turns_its_probes_into_errors_and_the_run_completes(
    tls_lab_servers: TlsLab, silent_ports: None, tmp_path: Path
) -> None:
    # Given a scan whose two workers each hold silent ports' probes (about 10 s each)
    args = _silent_scan(tmp_path, tls_lab_servers, timeout="40")
    killed: list[int] = []
    first: set[int] = set()

    def kill_one(_proc: subprocess.Popen[str], workers: set[int]) -> None:
        first.update(workers)
        victim = min(workers)
        os.kill(victim, signal.SIGKILL)
        killed.append(victim)

    # When one worker is killed under its probes
    code, seen, err = _scan(args, _when_workers_hold_probes(kill_one))
    # Then the run completes: the dead worker's probes are errors that say why, the others'
    # (and the healthy servers', run by the survivor or the worker that took its place) are not
    assert code in (1, 3), err[-3000:]  # failed or unjudged rules: the run ended on its own
    report = _report(tmp_path / "out")
    assert report["run"]["status"] == "complete"
    by_system = {o["system"]: o for o in report["observations"] if o["check"] == "tls"}
    assert sorted(by_system) == [f"s{i}" for i in range(len(SILENT) + 2)]
    lost = [o for o in by_system.values() if "killed by SIGKILL" in (o["error"] or "")]
    assert lost
    assert all(f"pid {killed[0]}" in o["error"] for o in lost)
    assert len(lost) < len(SILENT)  # the other worker's probes ended their own way
    assert by_system[f"s{len(SILENT)}"]["status"] == by_system[f"s{len(SILENT) + 1}"]["status"] == "ok"
    assert seen - first, err[-3000:]  # a worker took the dead one's place


def test_a_stuck_worker_is_killed_and_its_probes_are_errors(
    tls_lab_servers: TlsLab, silent_ports: None, tmp_path: Path
) -> None:
    # Given a scan whose two workers each hold silent ports' probes (about 2 s each)
    args = _silent_scan(tmp_path, tls_lab_servers, timeout="8")
    stuck: list[int] = []

    def freeze_one(_proc: subprocess.Popen[str], workers: set[int]) -> None:
        stuck.append(min(workers))
        os.kill(stuck[0], signal.SIGSTOP)  # as stuck as a library call that never lets go

    # When one of them stops answering altogether
    code, _, err = _scan(args, _when_workers_hold_probes(freeze_one))
    # Then it is killed once silent for longer than a probe may take, its probes are errors
    # that say so, and the run completes
    assert code in (1, 3), err[-3000:]  # failed or unjudged rules: the run ended on its own
    report = _report(tmp_path / "out")
    assert report["run"]["status"] == "complete"
    errors = [o["error"] or "" for o in report["observations"]]
    assert any(f"(pid {stuck[0]}) stopped answering for" in e and "was killed" in e for e in errors)
    assert not _running(stuck[0])


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=lambda s: signal.Signals(s).name)
def test_ctrl_c_stops_the_workers_and_leaves_a_resumable_run(
    tls_lab_servers: TlsLab, silent_ports: None, tmp_path: Path, signum: int
) -> None:
    # Given a scan whose workers hold silent ports' probes
    args = _silent_scan(tmp_path, tls_lab_servers, timeout="40")
    workers: list[int] = []

    def ctrl_c(proc: subprocess.Popen[str], serving: set[int]) -> None:
        workers.extend(serving)
        # A terminal's Ctrl-C reaches the whole group, as systemd's SIGTERM the whole service.
        os.killpg(proc.pid, signum)

    # When Ctrl-C (or systemd's stop) reaches the scan, its fork server and its workers
    started = time.monotonic()
    code, _, err = _scan(args, _when_workers_hold_probes(ctrl_c))
    # Then the scan ends at once with 130, its workers with it, and the run is incomplete
    assert code == 130, err[-3000:]
    assert time.monotonic() - started < 30
    assert "Traceback" not in err
    assert not any(_running(pid) for pid in workers)
    [line] = [line for line in history(tmp_path / "out.sqlite") if "incomplete" in line]
    run_id = line.split()[0]
    # And --resume finishes it, probing what the interruption left
    code, _, err = _scan(["scan", "--resume", run_id, "--db", str(tmp_path / "out.sqlite"),
                          "--out", str(tmp_path / "resumed"), "--timeout", "40"])  # fmt: skip
    assert code in (1, 3), err[-3000:]  # failed or unjudged rules: the run ended on its own
    report = _report(tmp_path / "resumed")
    assert report["run"]["status"] == "complete"
    assert len({o["system"] for o in report["observations"] if o["check"] == "tls"}) == len(SILENT) + 2


def test_workers_start_on_their_own_only_for_enough_cpu_heavy_probes() -> None:
    registry = Registry.load()
    assert cpu_heavy(registry.check("tls")) and cpu_heavy(registry.check("ssh"))
    assert not cpu_heavy(registry.check("ports"))
    runner = Runner(registry, lambda *_: None)
    targets = [factories.target(address=f"127.0.152.{i}") for i in range(1, 4)]
    assert runner.heavy_probes(ScanPlan(targets=targets, checks=["ports", "tls", "ssh"], policies={})) == 6
    assert runner.heavy_probes(ScanPlan(targets=targets, checks=["ports"], policies={})) == 0
    # A few endpoints never pay for starting workers; many do, one per core; asked for, always.
    assert workers_for(None, 6, machine=2) == 0
    assert workers_for(None, MIN_PROBES, machine=2) == 2
    assert workers_for(None, 1000, machine=1) == 0
    assert workers_for(1, 1000, machine=8) == 0
    assert workers_for(4, 3, machine=2) == 3
    assert workers_for(2, 0, machine=2) == 0
    assert workers_for(None, 1000, machine=64) == DEFAULT_MAX_WORKERS
    assert workers_for(16, 1000, machine=64) == 16


_WORKERS_WHILE_NMAP_HOLDS_A_CORE = """
import os, subprocess, threading
from attt.scanner.cores import dedicated_core
from attt.scanner.plugin import NoSettings, ProbeContext
from attt.scanner.processes import ProcessPool
from attt.scanner.registry import RegisteredCheck, Registry
from tests.scanner import plugins

registry = Registry.of({"worker": RegisteredCheck(plugins.WorkerCheck(), "tests")})
nmap = subprocess.Popen(["sleep", "30"])
with dedicated_core(nmap.pid):
    pool = ProcessPool(registry, 1, timeout=10, stop=threading.Event())
    pool.start()
    ctx = ProbeContext(timeout=10, settings=NoSettings())
    pool.probe(registry.check("worker"), plugins.target("127.0.152.1"), ctx)
    print(len(os.sched_getaffinity(0)), *(len(os.sched_getaffinity(pid)) for pid in pool.pids))
    pool.close()
nmap.kill()
"""


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="one core: programs are left to the kernel")
def test_workers_started_while_nmap_holds_a_core_run_on_every_core() -> None:
    # In a process of its own: its fork server starts while nmap holds a core, as in a scan
    # whose workers start (in the background) as nmap does.
    repo = Path(__file__).resolve().parents[2]
    run = subprocess.run([sys.executable, "-c", _WORKERS_WHILE_NMAP_HOLDS_A_CORE], capture_output=True,
                         text=True, timeout=60, cwd=repo, env={**os.environ, "PYTHONPATH": str(repo)},
                         check=False)  # fmt: skip
    assert run.returncode == 0, run.stderr
    here, *workers = map(int, run.stdout.split())
    assert here == len(os.sched_getaffinity(0)) - 1
    assert workers == [len(os.sched_getaffinity(0))]


def test_a_worker_logs_in_with_the_credential_and_keeps_it_out_of_sight(
    sshd_servers: SshServers, capfd: pytest.CaptureFixture[str]
) -> None:
    # Given a worker process and two logins: the test key (root on the Debian-like server) and
    # a password the weak server refuses
    registry = Registry.load()
    check = registry.check("ssh")
    stop = threading.Event()
    pool = ProcessPool(registry, 1, timeout=10, stop=stop)
    pool.start()
    try:
        key = Credential(user="root", key_file=str(sshd_servers.client_key))
        settings = SshSettings(sshd_config=str(sshd_servers.debian_config))
        target = factories.target(address=sshd_servers.debian, services=((22, "ssh"),))
        # When the worker probes with each
        [logged_in] = (
            pool.probe(check, target, ProbeContext(timeout=10, settings=settings, credential=key)) or []
        )
        password = Credential(user="root", password=SecretStr(SECRET))
        target = factories.target(address=sshd_servers.weak, services=((22, "ssh"),))
        [refused] = (
            pool.probe(check, target, ProbeContext(timeout=10, settings=SshSettings(), credential=password))
            or []
        )
        workers = pool.pids
    finally:
        pool.close()
    # Then it read the server's effective configuration with the key, and the password is in
    # neither the observation nor anything printed
    assert len(workers) == 1 and workers[0] != os.getpid()
    assert isinstance(logged_in.data, SshData) and logged_in.data.config is not None
    assert logged_in.data.config["permitrootlogin"] == "without-password"
    assert isinstance(refused.data, SshData) and refused.data.config_error is not None
    assert SECRET not in refused.model_dump_json()
    printed = capfd.readouterr()
    assert SECRET not in printed.out + printed.err


def _run_workers(
    addresses: list[str], processes: int, check: Check | None = None, timeout: float = 2.0
) -> dict[str, Observation]:
    """The `worker` check's observation of each host, after `count`, with `processes` workers."""
    checks = {"count": RegisteredCheck(plugins.CountCheck(), "tests")}
    checks["worker"] = RegisteredCheck(check or plugins.WorkerCheck(), "tests")
    seen: list[Observation] = []
    runner = Runner(Registry.of(checks), lambda _target, _check, observations: seen.extend(observations))
    plan = ScanPlan(targets=[plugins.target(a) for a in addresses], checks=("count", "worker"), policies={},
                    timeout=timeout, processes=processes)  # fmt: skip
    assert runner.run(plan)
    return {o.host: o for o in seen if o.check == "worker"}


def test_a_heavy_probe_runs_in_a_worker_and_reads_what_the_host_showed_before() -> None:
    addresses = ["127.0.152.1", "127.0.152.2", "127.0.152.3"]
    here = _run_workers(addresses, processes=1)
    there = _run_workers(addresses, processes=2)
    assert {o.data.pid for o in here.values() if isinstance(o.data, plugins.WorkerData)} == {os.getpid()}
    pids = {o.data.pid for o in there.values() if isinstance(o.data, plugins.WorkerData)}
    assert len(pids) == 2 and os.getpid() not in pids
    assert {h: o.data.saw for h, o in there.items() if isinstance(o.data, plugins.WorkerData)} == {
        "127.0.152.1": (1,), "127.0.152.2": (2,), "127.0.152.3": (3,)
    }  # fmt: skip


def test_a_hanging_or_crashing_probe_in_a_worker_costs_only_itself() -> None:
    started = time.monotonic()
    seen = _run_workers(
        ["127.0.152.66", "127.0.152.67", "127.0.152.2", "127.0.152.3"], processes=2, timeout=1.0
    )
    elapsed = time.monotonic() - started
    assert seen["127.0.152.66"].status == "error" and "timed out after 1 s" in (
        seen["127.0.152.66"].error or ""
    )
    assert "probe crashed: RuntimeError: plugin bug" in (seen["127.0.152.67"].error or "")
    assert seen["127.0.152.2"].status == seen["127.0.152.3"].status == "ok"
    assert elapsed < 1.0 + GRACE + 10.0  # budget + grace + the workers' start and slack


def test_a_heavy_check_a_worker_cannot_load_runs_here() -> None:
    class Unimportable(plugins.WorkerCheck):
        """Defined in a function: no worker process can import it by module and name."""

    seen = _run_workers(["127.0.152.1", "127.0.152.2"], processes=2, check=Unimportable())
    assert {o.data.pid for o in seen.values() if isinstance(o.data, plugins.WorkerData)} == {os.getpid()}


def test_the_configuration_sets_the_workers_and_refuses_nonsense(tmp_path: Path) -> None:
    config = tmp_path / "attt.toml"
    config.write_text("[scan]\nprocesses = 3\n", encoding="utf-8")
    assert load_config(config).scan_defaults()["processes"] == 3
    config.write_text("[scan]\nprocesses = 0\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="processes"):
        load_config(config)
