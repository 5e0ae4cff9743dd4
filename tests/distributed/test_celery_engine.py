"""The celery engine with real parts: redis-server, two zones in two network namespaces, and
`attt worker` processes inside them (harness.py). Each zone's hosts listen only inside its own
namespace, so a worker can reach its own zone and nothing else; the coordinator (this process)
reaches no host at all, only the broker's unix socket.

Loopback ranges, inside the namespaces the tests create: dmz 127.0.180.0/24, internal
127.0.181.0/24, a zone with no worker 127.0.182.0/24, the killed worker's zone 127.0.183.0/24,
the stopped broker's 127.0.184.0/24.
"""

import json
import os
import signal
import sqlite3
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import CliRunner, Result

from attt.scanner.cli import main
from attt.scanner.distributed import TASK_NAME, celery_app, queue_for, resolve_broker, visibility_timeout
from attt.scanner.exitcodes import ExitCode
from tests.distributed.harness import (
    Namespace,
    Redis,
    can_run,
    namespace,
    redis_server,
    stop_process,
    wait_for_worker,
)

# Skipped on a machine that cannot run them, except under CI=true: CI must prove the engine.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(can_run() is not None and os.environ.get("CI") != "true", reason=str(can_run())),
]

POLICY = Path(__file__).parents[1] / "scanner" / "e2e" / "policy.yaml"
DMZ = ["127.0.180.1", "127.0.180.2", "127.0.180.3"]
INTERNAL = ["127.0.181.1", "127.0.181.2"]
TELNET_HOST = "127.0.180.2"
TIMEOUT = "3"
"""The probe budget (and the workers' --max-timeout): a task held by a killed worker runs
elsewhere after 2 x (3 + 5) s."""


def inventory(path: Path, zones: dict[str, list[str]], outside: str = "") -> Path:
    networks = {
        "dmz": "127.0.180.0/24",
        "internal": "127.0.181.0/24",
        "dark": "127.0.182.0/24",
        "kz": "127.0.183.0/24",
        "bz": "127.0.184.0/24",
    }
    zone_lines = "".join(f"  - {{id: {z}, name: Zone {z}, cidrs: [{networks[z]}]}}\n" for z in zones)
    if outside:
        zone_lines += f"  - {{id: internet, name: Internet, vantage: outside, reaches: [{outside}]}}\n"
    systems = ""
    for zone, hosts in zones.items():
        host_lines = "".join(
            f"      - {{address: {h}, services: [{{port: 8080, kind: http}}]}}\n" for h in hosts
        )
        systems += f"  - id: sys-{zone}\n    name: System {zone}\n    owner: Agency\n    level: 2\n"
        systems += f"    hosts:\n{host_lines}"
    path.write_text(
        textwrap.dedent("""\
        province: Test
        scope: [127.0.176.0/20]
        zones:
        """)
        + zone_lines
        + "systems:\n"
        + systems
    )
    return path


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Redis]:
    with redis_server(tmp_path_factory.mktemp("redis")) as redis:
        yield redis


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("zones")


@pytest.fixture(scope="module")
def zones(broker: Redis, logs: Path) -> Iterator[dict[str, Namespace]]:
    """Two zones, each with its hosts and one worker in its own namespace; and a worker of the
    outside vantage `internet` placed where it sees the dmz (in its namespace), as a machine
    outside the province's network would."""
    with namespace("dmz") as dmz, namespace("int") as internal:
        for ns, hosts, zone, network in (
            (dmz, DMZ, "dmz", "127.0.180.0/24"),
            (internal, INTERNAL, "internal", "127.0.181.0/24"),
        ):
            endpoints = [(h, 8080) for h in hosts] + ([(TELNET_HOST, 2323)] if zone == "dmz" else [])
            ns.listen(endpoints, logs / f"{zone}-listen.log")
            ns.worker(broker, zone, [network], logs / f"{zone}-worker.log", "--max-timeout", TIMEOUT)
        dmz.worker(
            broker, "internet", ["127.0.180.0/24"], logs / "internet-worker.log", "--max-timeout", TIMEOUT
        )
        for zone in ("dmz", "internal", "internet"):
            wait_for_worker(broker, zone)
        yield {"dmz": dmz, "internal": internal}


def scan(broker: Redis, tmp: Path, inv: Path, *extra: str) -> Result:
    args = ["scan", "-i", str(inv), "-p", str(POLICY), "--check", "ports", "--timeout", TIMEOUT]
    return _attt(broker, tmp, [*args, *extra])


def _attt(broker: Redis, tmp: Path, args: list[str]) -> Result:
    common = ["--engine", "celery", "--broker", broker.url, "--db", str(tmp / "attt.db"), "--format", "json"]
    if "--out" not in args:
        common += ["--out", str(tmp / f"out-{len(list(tmp.glob('out-*')))}")]
    env = {"ATTT_BROKER_PASSWORD": broker.password, "ATTT_LANG": "en", "CI": "1"}
    return CliRunner().invoke(main, [*args, *common], env=env)


def rows(db: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(db) as conn:
        return [json.loads(body) for (body,) in conn.execute("SELECT body FROM observations ORDER BY seq")]


def probes(db: Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(db) as conn:
        return [tuple(r) for r in conn.execute("SELECT check_name, system, host FROM probes")]


def run_status(db: Path) -> str:
    with sqlite3.connect(db) as conn:
        return str(conn.execute("SELECT status FROM runs").fetchone()[0])


def test_a_run_across_two_zones_is_probed_by_each_zones_worker(
    broker: Redis, zones: dict[str, Namespace], tmp_path: Path
) -> None:
    inv = inventory(tmp_path / "inventory.yaml", {"dmz": DMZ, "internal": INTERNAL})
    result = scan(broker, tmp_path, inv, "--out", str(tmp_path / "out"))
    assert result.exit_code == ExitCode.VIOLATION, result.output
    seen = rows(tmp_path / "attt.db")
    assert {(o["host"], o["zone"], o["status"]) for o in seen} == {
        *((h, "dmz", "ok") for h in DMZ),
        *((h, "internal", "ok") for h in INTERNAL),
    }
    assert len(seen) == len(DMZ) + len(INTERNAL)
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["run"]["status"] == "complete"
    failed = {(f["rule_id"], f["host"]) for f in report["findings"] if f["status"] == "fail"}
    assert failed == {("E2E-TELNET", TELNET_HOST)}
    summary = report["summary"]["systems"]
    assert summary["sys-dmz"]["by_status"]["pass"] == 5  # 3 hosts x 2 rules, one failure
    assert summary["sys-internal"]["by_status"]["pass"] == 4


def test_a_zone_with_no_worker_is_an_error_in_bounded_time(
    broker: Redis, zones: dict[str, Namespace], tmp_path: Path
) -> None:
    inv = inventory(tmp_path / "inventory.yaml", {"dmz": DMZ[:1], "dark": ["127.0.182.1"]})
    started = time.monotonic()
    result = scan(broker, tmp_path, inv)
    assert time.monotonic() - started < 30
    assert result.exit_code == ExitCode.INCOMPLETE, result.output
    by_host = {o["host"]: o for o in rows(tmp_path / "attt.db")}
    assert by_host["127.0.182.1"]["status"] == "error"
    assert by_host["127.0.182.1"]["error"] == "no worker for zone dark"
    assert by_host[DMZ[0]]["status"] == "ok"


def test_a_forged_task_for_an_address_outside_the_zone_is_refused(
    broker: Redis, zones: dict[str, Namespace], logs: Path, tmp_path: Path
) -> None:
    """A compromised broker sends the dmz worker a task for an internal host, straight to the
    queue: the worker refuses it from its own configuration and says so."""
    app = celery_app(resolve_broker(broker.url, None), 30)
    target = {
        "system": {"id": "sys-internal", "name": "x", "owner": "Agency", "level": 2},
        "host": {"address": INTERNAL[0]},
        "ip": INTERNAL[0],
        "zone": "dmz",
    }
    payload = {
        "run": "forged",
        "check": "ports",
        "zone": "dmz",
        "target": target,
        "timeout": 3,
        "settings": {},
    }
    answer = app.send_task(TASK_NAME, args=[payload], task_id="forged:ports:x:y", queue=queue_for("dmz"))
    observations = answer.get(timeout=30)
    assert len(observations) == 1
    assert observations[0]["status"] == "error"
    assert observations[0]["error"] == f"refused by worker dmz: {INTERNAL[0]} is outside its scope"
    assert observations[0]["zone"] == "dmz"
    assert (
        f"refused by worker dmz: {INTERNAL[0]} is outside its scope" in (logs / "dmz-worker.log").read_text()
    )


def _when(condition: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.05)


def _stored(db: Path) -> int:
    try:
        return len(probes(db))
    except sqlite3.Error:
        return 0


def _unacked(broker: Redis) -> int:
    """Tasks a worker has taken and not yet acknowledged (kombu's Redis bookkeeping)."""
    client = redis.Redis(unix_socket_path=str(broker.socket), password=broker.password)
    try:
        return int(client.hlen("unacked"))
    finally:
        client.close()


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_a_worker_killed_mid_run_has_its_task_run_by_another_with_nothing_duplicated(
    broker: Redis, tmp_path: Path, sig: signal.Signals
) -> None:
    """SIGKILL: the task it held comes back after the visibility timeout. SIGTERM: the worker
    stops its probe (its nmap too) and hands the task back at once; the cut-short probe is no
    observation."""
    # 40 hosts: three batches of the ports check (16 hosts a task), run one after the other by
    # the first worker, which is killed as soon as it holds one.
    hosts = [f"127.0.183.{i}" for i in range(1, 41)]
    inv = inventory(tmp_path / "inventory.yaml", {"kz": hosts})
    db = tmp_path / "attt.db"
    events: list[str] = []
    with namespace(f"kill{sig.value}") as ns:
        ns.listen([(h, 8080) for h in hosts], tmp_path / "listen.log")
        first = ns.worker(
            broker,
            "kz",
            ["127.0.183.0/24"],
            tmp_path / "a.log",
            "--concurrency",
            "1",
            "--max-timeout",
            TIMEOUT,
        )
        wait_for_worker(broker, "kz")

        def kill_then_replace() -> None:
            # Killed while it holds a task it has not acknowledged: that task must run elsewhere.
            _when(lambda: _unacked(broker) >= 1, 60, "a task taken")
            stop_process(first, sig)
            events.append(f"killed after {_stored(db)} probe(s)")
            ns.worker(
                broker,
                "kz",
                ["127.0.183.0/24"],
                tmp_path / "b.log",
                "--concurrency",
                "2",
                "--max-timeout",
                TIMEOUT,
            )

        killer = threading.Thread(target=kill_then_replace)
        killer.start()
        started = time.monotonic()
        result = scan(broker, tmp_path, inv)
        elapsed = time.monotonic() - started
        killer.join(60)
    assert events, result.output
    assert result.exit_code == ExitCode.OK, result.output
    assert run_status(db) == "complete"
    assert Counter(h for _c, _s, h in probes(db)) == Counter(hosts)
    seen = rows(db)
    assert Counter(o["host"] for o in seen) == Counter(hosts)
    assert {(o["status"], o["zone"]) for o in seen} == {("ok", "kz")}
    if sig == signal.SIGKILL:
        # The task the dead worker held waited for the visibility timeout (2 x (3 + 5) s) first.
        assert elapsed > visibility_timeout(float(TIMEOUT)) - 1
    else:
        assert elapsed < visibility_timeout(float(TIMEOUT)), "handed back, not left to time out"


def test_a_broker_stopped_mid_run_leaves_the_run_incomplete_and_resumable(tmp_path: Path) -> None:
    # 120 hosts: eight batches one after the other; the broker stops once the first is stored.
    hosts = [f"127.0.184.{i}" for i in range(1, 121)]
    inv = inventory(tmp_path / "inventory.yaml", {"bz": hosts})
    db = tmp_path / "attt.db"
    with redis_server(tmp_path / "redis") as own, namespace("brk") as ns:
        ns.listen([(h, 8080) for h in hosts], tmp_path / "listen.log")
        worker = ns.worker(own, "bz", ["127.0.184.0/24"], tmp_path / "a.log", "--concurrency", "1")
        wait_for_worker(own, "bz")

        def stop_broker() -> None:
            _when(lambda: _stored(db) >= 1, 20, "a first batch")
            own.stop()

        stopper = threading.Thread(target=stop_broker)
        stopper.start()
        started = time.monotonic()
        result = scan(own, tmp_path, inv)
        stopper.join(60)
        assert time.monotonic() - started < 60, result.output
        assert result.exit_code == ExitCode.INTERRUPTED, result.output
        errors = [line for line in result.output.splitlines() if "error:" in line]
        assert len(errors) == 1, result.output
        assert "stopped answering" in errors[0] and "attt scan --resume" in errors[0]
        assert own.password not in result.output
        assert own.password not in (tmp_path / "a.log").read_text()  # the worker saw it go, too
        assert "Traceback" not in result.output
        assert run_status(db) == "incomplete"
        kept = _stored(db)
        assert 1 <= kept < len(hosts)
        run_id = errors[0].split("run ", 1)[1].split()[0]

        stop_process(worker)
        own.start()  # the broker is back, empty (no persistence): the resumed run sends again
        ns.worker(own, "bz", ["127.0.184.0/24"], tmp_path / "b.log")
        wait_for_worker(own, "bz")
        resumed = _attt(own, tmp_path, ["scan", "--resume", run_id])
    assert resumed.exit_code == ExitCode.OK, [o["error"] for o in rows(db) if o["status"] == "error"][:2]
    assert run_status(db) == "complete"
    assert Counter(h for _c, _s, h in probes(db)) == Counter(hosts)
    assert Counter(o["host"] for o in rows(db)) == Counter(hosts)


def test_a_host_reached_from_an_outside_vantage_is_probed_from_there_too(
    broker: Redis, zones: dict[str, Namespace], tmp_path: Path
) -> None:
    """A rule with `vantage: internet` has its check run again by the internet zone's worker:
    a probe of its own (`ports@internet`), its observations marked with that vantage."""
    outside_rule = """\
  - id: E2E-INTERNET-TELNET
    control: ports.forbidden
    params: {ports: [2323]}
    severity: high
    vantage: internet
    title: {vi: "Telnet không mở ra Internet", en: "Telnet is not open to the Internet"}
    remediation: {vi: "Chặn Telnet ở tường lửa.", en: "Block Telnet at the firewall."}
"""
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY.read_text().replace("rules:\n", "rules:\n" + outside_rule, 1))
    inv = inventory(tmp_path / "inventory.yaml", {"dmz": DMZ[:2], "internal": INTERNAL[:1]}, outside="dmz")
    args = ["scan", "-i", str(inv), "-p", str(policy), "--check", "ports", "--timeout", TIMEOUT]
    result = _attt(broker, tmp_path, [*args, "--out", str(tmp_path / "out")])
    assert result.exit_code == ExitCode.VIOLATION, result.output
    db = tmp_path / "attt.db"
    assert Counter(c for c, _s, _h in probes(db)) == {"ports": 3, "ports@internet": 2}
    seen = {(o["host"], o["zone"]) for o in rows(db)}
    assert seen == {
        (DMZ[0], "dmz"),
        (DMZ[1], "dmz"),
        (INTERNAL[0], "internal"),
        (DMZ[0], "internet"),
        (DMZ[1], "internet"),
    }
    assert all(o["check"] == "ports" and o["status"] == "ok" for o in rows(db))
    # Judged centrally: the Internet rule on what the internet worker saw, the others from inside.
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    judged = {(f["rule_id"], f["host"]): (f["status"], f.get("vantage")) for f in report["findings"]}
    assert judged[("E2E-INTERNET-TELNET", TELNET_HOST)] == ("fail", "internet")
    assert judged[("E2E-INTERNET-TELNET", DMZ[0])] == ("pass", "internet")
    assert judged[("E2E-TELNET", TELNET_HOST)] == ("fail", "dmz")
