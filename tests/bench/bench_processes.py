"""Worker processes for CPU-heavy probes: `attt scan --processes 1` against `--processes N`.

    python -m tests.bench.bench_processes [--rounds 3] [--processes 2] [--no-save]

Runs in its own network namespace, on local servers only:

- scale: 1,000 systems, ports + TLS at `--concurrency 256`, against one nginx on every address
  (bench_goals' `rss` row), once per setting: wall, CPU seconds of the whole process tree (the
  scan, its nmap runs and its workers), CPU utilisation (CPU / wall), peak resident memory of the
  tree (the sum over its processes, shared pages counted in each) and of the scan's process;
- fleet: the dozen healthy TLS, STARTTLS and SSH lab systems plus ports at `--timeout 5`
  (bench_goals' `scan` row), alternating settings, medians of `--rounds`: with no `--processes`
  (the default: too few probes to start workers), 1, and N.

Appends the table to tests/bench/results.json with the commit, the date and the load average.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tests.bench import append_results, started
from tests.bench.bench_goals import ATTT, REPO, _errors, _fleet, _inventory, _nginx_everywhere, tls_fleet

_TICK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")
_SCALE = ("--check", "ports", "--check", "tls", "--timeout", "5", "--concurrency", "256")


@dataclass
class Measured:
    wall: float
    cpu: float
    tree_peak_mib: int
    own_peak_mib: int
    errors: list[str]

    @property
    def cores(self) -> float:
        return self.cpu / self.wall


def _tree(root: int) -> dict[int, tuple[str, float, int]]:
    """pid -> (command, CPU seconds, resident bytes) of `root` and every process below it."""
    stats: dict[int, tuple[int, str, float, int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            rss = int((entry / "statm").read_text().split()[1]) * _PAGE
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError):
            continue  # it has just exited
        fields = stat.rsplit(")", 1)[1].split()
        stats[int(entry.name)] = (int(fields[1]), command, (int(fields[11]) + int(fields[12])) / _TICK, rss)
    below = {root}
    grown = True
    while grown:
        more = {pid for pid, (parent, *_) in stats.items() if parent in below} - below
        below |= more
        grown = bool(more)
    return {pid: stats[pid][1:] for pid in below if pid in stats}


def measured_scan(work: Path, inventory: Path, *extra: str) -> Measured:
    """One `attt scan`: its wall time, the CPU and peak memory of its whole process tree."""
    out = work / f"out-{time.monotonic_ns()}"
    argv = [str(ATTT), "scan", "-i", str(inventory), "--format", "json", "--out", str(out),
            "--db", str(work / f"db-{time.monotonic_ns()}.sqlite"), *extra]  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ, "CI": "true"}, cwd=REPO)  # fmt: skip
    workers: dict[int, float] = {}
    tree_peak = own_peak = 0
    while process.poll() is None:
        tree = _tree(process.pid)
        tree_peak = max(tree_peak, sum(rss for _, _, rss in tree.values()))
        own_peak = max(own_peak, tree.get(process.pid, ("", 0.0, 0))[2])
        # The fork server and its workers are not the scan's waited-for children: their CPU is
        # read while they live (the scan's own and nmap's come from its rusage below).
        workers.update((pid, cpu) for pid, (command, cpu, _) in tree.items() if "multiprocessing" in command)
        time.sleep(0.1)
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    waited = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    return Measured(wall, waited + sum(workers.values()), tree_peak >> 20, own_peak >> 20, _errors(report))


def scale(work: Path, processes: list[str], systems: int = 1000) -> dict[str, Measured]:
    inventory = tls_fleet(work / "scale.yaml", systems)
    runs: dict[str, Measured] = {}
    with _nginx_everywhere(work):
        for setting in processes:
            runs[setting] = measured_scan(work, inventory, *_SCALE, "--processes", setting)
            print(f"scale --processes {setting}: {_line(runs[setting])}", flush=True)
    return runs


def fleet(work: Path, lab: Any, ssh: Any, settings: list[str], rounds: int) -> dict[str, list[Measured]]:
    inventory = _inventory(work / "fleet.yaml", _fleet(lab, ssh))
    checks = ("--check", "ports", "--check", "tls", "--check", "ssh", "--timeout", "5")
    runs: dict[str, list[Measured]] = {setting: [] for setting in settings}
    for _ in range(rounds):
        for setting in settings:
            extra = () if setting == "default" else ("--processes", setting)
            runs[setting].append(measured_scan(work, inventory, *checks, *extra))
    return runs


def _line(m: Measured) -> str:
    return (
        f"wall {m.wall:7.1f} s  CPU {m.cpu:7.1f} s ({m.cores:.2f} cores)  peak RSS: tree"
        f" {m.tree_peak_mib} MiB, scan process {m.own_peak_mib} MiB  {len(m.errors)} in error"
    )


def _median(runs: list[Measured]) -> Measured:
    middle = sorted(runs, key=lambda m: m.wall)[len(runs) // 2]
    return Measured(statistics.median(m.wall for m in runs), middle.cpu, middle.tree_peak_mib,
                    middle.own_peak_mib, [e for m in runs for e in m.errors])  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--processes", default=str(len(os.sched_getaffinity(0))))
    parser.add_argument("--no-save", action="store_true")
    parser.add_argument("--skip-scale", action="store_true")
    args = parser.parse_args()
    load = started("bench_processes")
    if load is None:
        return 0
    from tests.servers.sshd import running_ssh_servers
    from tests.servers.tls import tls_lab

    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="attt-bench-") as tmp:
        work = Path(tmp)
        (work / "tls").mkdir()
        (work / "ssh").mkdir()
        with tls_lab(work / "tls") as lab, running_ssh_servers(work / "ssh") as ssh:
            settings = ["default", "1", args.processes]
            runs = fleet(work, lab, ssh, settings, args.rounds)
            for setting, measured in runs.items():
                median = _median(measured)
                print(f"fleet of 12 systems, --processes {setting}: {_line(median)}"
                      f" (walls {[round(m.wall, 2) for m in measured]})", flush=True)  # fmt: skip
                results[f"fleet --processes {setting}"] = asdict(median)
        if not args.skip_scale:
            for setting, measured_one in scale(work, ["1", args.processes]).items():
                results[f"scale 1000 --processes {setting}"] = asdict(measured_one)
    if not args.no_save:
        append_results(load, {"processes": {"rounds": args.rounds, "rows": results}})
    return 0


if __name__ == "__main__":
    sys.exit(main())
