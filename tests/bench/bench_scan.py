"""Benchmark: a whole `attt scan` of a province-sized inventory, ports check only.

Run from the repository: `.venv/bin/python -m tests.bench.bench_scan [--hosts N]`.
It starts TCP listeners on 127.0.70.x/127.0.71.x (two open ports per host), writes an
inventory of N systems with one host each, and times the real CLI (nmap connect scans, the
store, evaluation under each system's level policy, every report format) at two
concurrencies. It prints hosts per second, the ratio between the two, and peak memory.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.bench import peak_memory
from tests.servers.listeners import tcp_listeners

OPEN_PORTS = (80, 443)
FORMATS = "html,json,junit,sarif,csv"


def _addresses(count: int) -> list[str]:
    return [f"127.0.{70 + i // 250}.{1 + i % 250}" for i in range(count)]


def _inventory(path: Path, addresses: list[str]) -> None:
    lines = ["province: Hà Tĩnh (bench)", "scope: [127.0.70.0/24, 127.0.71.0/24]", "systems:"]
    for i, address in enumerate(addresses):
        lines += [
            f"  - id: he-thong-{i:03d}",
            f"    name: Hệ thống {i}",
            f"    owner: Cơ quan {i % 20}",
            f"    level: {1 + i % 5}",
            "    allowed_ports: [443]",
            "    hosts:",
            f"      - address: {address}",
        ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _scan(workdir: Path, concurrency: int) -> tuple[float, float, int]:
    """Seconds, peak MiB of the attt process and its store process (VmHWM, added), exit code."""
    attt = Path(sys.executable).with_name("attt")
    argv = [str(attt), "scan", "-i", str(workdir / "inventory.yaml"), "--check", "ports",
            "--concurrency", str(concurrency), "--db", str(workdir / f"runs-{concurrency}.db"),
            "--out", str(workdir / f"out-{concurrency}"), "--format", FORMATS]  # fmt: skip
    started = time.monotonic()
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ, "CI": "true"})  # fmt: skip
    with peak_memory(process.pid) as peak_kib:
        process.wait()
        wall = time.monotonic() - started
    return wall, peak_kib[0] / 1024, process.returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=200, help="systems (one host each), at most 500")
    hosts = min(parser.parse_args().hosts, 500)
    addresses = _addresses(hosts)
    with tempfile.TemporaryDirectory() as tmp, tcp_listeners([(a, p) for a in addresses for p in OPEN_PORTS]):
        workdir = Path(tmp)
        _inventory(workdir / "inventory.yaml", addresses)
        print(
            f"{hosts} systems, one host each, {len(OPEN_PORTS)} open ports per host; ports check (110 ports)"
        )
        print(f"{'concurrency':>11} {'seconds':>8} {'hosts/s':>8} {'peak MiB':>9} {'exit':>5}", flush=True)
        timings = {}
        for concurrency in (1, 16):
            seconds, peak, code = _scan(workdir, concurrency)
            timings[concurrency] = seconds
            print(
                f"{concurrency:>11} {seconds:>8.1f} {hosts / seconds:>8.1f} {peak:>9.0f} {code:>5}",
                flush=True,
            )
        print(f"speed-up of 16 over 1: {timings[1] / timings[16]:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
