"""The celery engine against the local one on a 200-host fleet (issue 18).

    python -m tests.bench.bench_distributed [--hosts 200] [--concurrency 16] [--no-save]

Runs in its own network namespace (re-executing itself under `unshare -n`). The fleet is the
same everywhere: one TCP listener (8080) on each of 127.0.190.1-200, ports check only (the e2e
policy: 2 ports a host). The local engine scans it from the bench's namespace; the celery engine
with 1, 2 and 4 workers, each worker in a namespace of its own that holds its own copy of the
fleet (one zone), each with the same `--concurrency`, all through one redis-server on a unix
socket. Measured: wall time of `attt scan`, probes per second, and the broker's own cost:

- slot idle per probe: (wall x probe slots - the probes' own durations) / probes, i.e. what a
  probe costs beyond probing (queueing, sending, waiting for the answer, storing);
- round trip: a task the worker answers without probing (refused: outside its scope), sent
  and awaited one after the other: the broker and result store alone.

The local engine runs nmap for many hosts at once (a batch); the celery engine one nmap per host
(its task is one probe), so its figure includes that difference too. Appends one entry to
tests/bench/results.json.
"""

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import Any

from tests.bench import append_results, in_own_netns

REPO = Path(__file__).resolve().parents[2]
POLICY = REPO / "tests" / "scanner" / "e2e" / "policy.yaml"
ATTT = str(Path(sys.executable).with_name("attt"))
NETWORK = "127.0.190.0/24"


def _addresses(count: int) -> list[str]:
    return [f"127.0.190.{1 + i}" for i in range(count)]


def _inventory(path: Path, addresses: list[str]) -> None:
    lines = [
        "province: Bench",
        f"scope: [{NETWORK}]",
        "zones:",
        f"  - {{id: fleet, name: Fleet, cidrs: [{NETWORK}]}}",
    ]
    lines.append("systems:")
    for i, address in enumerate(addresses):
        lines += [
            f"  - id: he-thong-{i:03d}",
            f"    name: He thong {i}",
            "    owner: Co quan",
            "    level: 2",
        ]
        lines += ["    hosts:", f"      - {{address: {address}, services: [{{port: 8080, kind: http}}]}}"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _scan(work: Path, label: str, extra: list[str], env: dict[str, str]) -> dict[str, Any]:
    db = work / f"{label}.db"
    argv = [ATTT, "scan", "-i", str(work / "inventory.yaml"), "-p", str(POLICY), "--check", "ports"]
    argv += [
        "--db",
        str(db),
        "--format",
        "json",
        "--out",
        str(work / f"out-{label}"),
        "--timeout",
        "30",
        *extra,
    ]
    started = time.monotonic()
    done = subprocess.run(
        argv, capture_output=True, text=True, env={**env, "CI": "1"}, check=False, timeout=600
    )
    wall = time.monotonic() - started
    with sqlite3.connect(db) as conn:
        bodies = [json.loads(b) for (b,) in conn.execute("SELECT body FROM observations")]
    probing = sum(
        (datetime.fromisoformat(o["finished"]) - datetime.fromisoformat(o["started"])).total_seconds()
        for o in bodies
        if o.get("started") and o.get("finished")
    )
    errors = sum(1 for o in bodies if o["status"] == "error")
    if done.returncode not in (0, 1) or errors:
        print(f"{label}: exit {done.returncode}, {errors} error(s): {done.stderr[-400:]}", file=sys.stderr)
    return {
        "wall_s": wall,
        "probes": len(bodies),
        "errors": errors,
        "exit": done.returncode,
        "probing_s": probing,
    }


def _round_trip(redis: Any, samples: int) -> float:
    """Seconds per task answered without a probe (the worker refuses it), one after the other."""
    from attt.scanner.distributed import TASK_NAME, celery_app, queue_for, resolve_broker

    os.environ["ATTT_BROKER_PASSWORD"] = redis.password
    app = celery_app(resolve_broker(redis.url, None), 60)
    target = {
        "system": {"id": "bench", "name": "Bench", "owner": "Bench", "level": 1},
        "host": {"address": "127.0.191.1"},
        "ip": "127.0.191.1",
        "zone": "fleet",
    }
    payload = {
        "run": "bench",
        "check": "ports",
        "zone": "fleet",
        "target": target,
        "timeout": 5,
        "settings": {},
    }
    started = time.monotonic()
    for i in range(samples):
        app.send_task(TASK_NAME, args=[payload], task_id=f"bench-rt-{i}", queue=queue_for("fleet")).get(
            timeout=30
        )
    return (time.monotonic() - started) / samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--hosts", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()
    from tests.distributed.harness import can_run

    if (why := can_run()) is not None or not in_own_netns("bench_distributed"):
        print(f"bench_distributed: skipped ({why or 'needs `unshare -n` (root)'})", file=sys.stderr)
        return 0
    from tests.distributed.harness import namespace, redis_server, stop_process, wait_for_worker
    from tests.servers.listeners import tcp_listeners

    hosts, concurrency = min(args.hosts, 250), args.concurrency
    addresses = _addresses(hosts)
    load = os.getloadavg()
    print(f"load average {load[0]:.1f} on {os.cpu_count()} CPUs; {hosts} hosts, ports check (2 ports a host),"
          f" --concurrency {concurrency} per engine or worker", flush=True)  # fmt: skip
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="attt-bench-dist-") as tmp, ExitStack() as stack:
        work = Path(tmp)
        _inventory(work / "inventory.yaml", addresses)
        stack.enter_context(tcp_listeners([(a, 8080) for a in addresses]))
        local = _scan(work, "local", ["--concurrency", str(concurrency)], dict(os.environ))
        rows.append({"engine": "local", "workers": 0, **local})
        redis = stack.enter_context(redis_server(work / "redis"))
        spaces = [stack.enter_context(namespace(f"b{i}")) for i in range(4)]
        for i, ns in enumerate(spaces):
            ns.listen([(a, 8080) for a in addresses], work / f"listen-{i}.log")
        for count in (1, 2, 4):
            workers = [
                ns.worker(
                    redis,
                    "fleet",
                    [NETWORK],
                    work / f"worker-{count}-{i}.log",
                    "--concurrency",
                    str(concurrency),
                )
                for i, ns in enumerate(spaces[:count])
            ]
            wait_for_worker(redis, "fleet")
            time.sleep(2)  # every worker of the zone up, not only the first to answer
            measured = _scan(
                work, f"celery-{count}", ["--engine", "celery", "--broker", redis.url], redis.env
            )
            if count == 1:
                measured["round_trip_s"] = _round_trip(redis, 100)
            rows.append({"engine": "celery", "workers": count, **measured})
            for process in workers:
                stop_process(process)
    print(f"{'engine':<8} {'workers':>7} {'wall s':>7} {'probes/s':>9} {'idle/probe ms':>14} {'errors':>6}")
    for row in rows:
        slots = concurrency * max(1, row["workers"])
        row["probes_per_s"] = row["probes"] / row["wall_s"]
        row["slot_idle_per_probe_ms"] = (
            1000 * (row["wall_s"] * slots - row["probing_s"]) / max(1, row["probes"])
        )
        print(f"{row['engine']:<8} {row['workers']:>7} {row['wall_s']:>7.2f} {row['probes_per_s']:>9.1f}"
              f" {row['slot_idle_per_probe_ms']:>14.0f} {row['errors']:>6}")  # fmt: skip
    one = next(r for r in rows if r["workers"] == 1)
    ratio = one["wall_s"] / rows[0]["wall_s"]
    print(f"broker round trip (a task answered without a probe): {1000 * one['round_trip_s']:.1f} ms;"
          f" celery with 1 worker takes {ratio:.2f}x the local engine's wall time")  # fmt: skip
    if not args.no_save:
        _save(rows, load, hosts, concurrency)
    return 0


def _save(rows: list[dict[str, Any]], load: tuple[float, float, float], hosts: int, concurrency: int) -> None:
    rounded = [{k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()} for row in rows]
    append_results(load, {"distributed": {"hosts": hosts, "concurrency": concurrency, "runs": rounded}})


if __name__ == "__main__":
    sys.exit(main())
