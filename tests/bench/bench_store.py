"""The run store on a province-sized run: what `attt report` waits for before it renders.

    python -m tests.bench.bench_store [--systems 1500] [--findings 60000] [--db PATH|URL]

Writes one run (every probe's observations as a scan does, then the findings) and times the
reads `attt report RUN` makes: `load` of the run, the run list, the earlier runs a baseline is
chosen from. Without `--db`, a fresh SQLite file and a fresh PostgreSQL server (started as the
tests start one, but with fsync on, as SQLite's commits are synchronous); `--db URL|PATH`
measures that store alone. Prints the best of three reads, since a shared machine's noise only
ever adds time.
"""

import argparse
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

from attt.scanner.models.observation import Observation
from attt.scanner.store import Store
from tests.factories import large_report
from tests.servers.postgres import postgres_bin, running_postgres

REPEATS = 3


def _best(action: Callable[[], object]) -> tuple[float, float]:
    """The shortest wall time and the shortest CPU time of this process over REPEATS calls: on a
    shared machine the CPU time is the steadier measure of SQLite (which runs in the process);
    a server's work shows only in the wall time."""
    walls, cpus = [], []
    for _ in range(REPEATS):
        wall, cpu = time.perf_counter(), time.process_time()
        action()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return min(walls), min(cpus)


def bench(store: Store, systems: int, findings: int) -> dict[str, float]:
    report = large_report(systems, findings)
    run = report.run.model_copy(update={"status": "running", "finished": None})
    by_probe: dict[tuple[str, str, str], list[Observation]] = defaultdict(list)
    for obs in report.observations:
        by_probe[(obs.check, obs.system, obs.host)].append(obs)
    targets = {(t.system.id, t.address): t for t in report.targets}
    seconds: dict[str, float] = {}
    started, cpu = time.perf_counter(), time.process_time()
    store.create_run(run, report.systems, report.targets)
    for (check, system, host), seen in by_probe.items():
        store.record_probe(run.id, check, targets[(system, host)], seen)
    seconds["write probes"] = time.perf_counter() - started
    seconds["write probes (cpu)"] = time.process_time() - cpu
    started = time.perf_counter()
    store.finish_run(run.id, "complete", report.run.started, report.findings)
    seconds["write findings"] = time.perf_counter() - started
    loaded = store.load(run.id)
    assert len(loaded.findings) == len(report.findings), "the store lost findings"
    seconds["load"], seconds["load (cpu)"] = _best(lambda: store.load(run.id))
    seconds["runs"], _ = _best(store.runs)
    seconds["earlier runs"], _ = _best(lambda: store.earlier_runs(loaded.info))
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--systems", type=int, default=1500)
    parser.add_argument("--findings", type=int, default=60_000)
    parser.add_argument("--db", help="a store URL or path (default: a new SQLite file)")
    args = parser.parse_args()
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        if args.db:
            results[args.db] = _measure(args.db, args)
        else:
            results["sqlite"] = _measure(Path(tmp) / "bench.db", args)
            if postgres_bin() is None:
                print("PostgreSQL is not installed: measured SQLite only")
            else:
                with running_postgres(durable=True) as pg:
                    results["postgresql"] = _measure(pg.url(pg.database("bench")), args)
    print(f"store: {args.systems} systems, {args.findings} findings")
    print(f"{'step':<16}" + "".join(f"{name:>14}" for name in results))
    for step in next(iter(results.values())):
        print(f"{step:<16}" + "".join(f"{seconds[step]:>14.3f}" for seconds in results.values()))
    return 0


def _measure(where: Path | str, args: argparse.Namespace) -> dict[str, float]:
    store = Store(where)
    try:
        return bench(store, args.systems, args.findings)
    finally:
        store.close()


if __name__ == "__main__":
    sys.exit(main())
