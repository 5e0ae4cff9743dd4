"""Benchmark: attt's ssh probe against ssh-audit on the same test servers (127.0.40.x).

Run as root from the repository: `.venv/bin/python -m tests.bench.bench_ssh [--rounds N]`.
It starts the servers of tests/servers/sshd.py, times both tools per server (median of N
rounds, same 5-second timeout), prints a table with the ratio, and stops every server.
"""

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from attt.checks.ssh import SshCheck, SshSettings
from attt.scanner.models.target import Host, Service, SystemInfo, Target
from attt.scanner.plugin import ProbeContext
from tests.servers.sshd import SshServers, can_run_sshd, running_ssh_servers

SSH_AUDIT = Path(sys.executable).parent / "ssh-audit"
TIMEOUT = 5.0
SERVERS = ("hardened", "debian", "weak", "terrapin", "garbage", "silent")


def _attt(ip: str) -> None:
    info = SystemInfo(id="bench", name="Bench", owner="Bench", level=3)
    target = Target(system=info, host=Host(address=ip, services=(Service(port=22, kind="ssh"),)), ip=ip)
    list(SshCheck().probe(target, ProbeContext(timeout=TIMEOUT, settings=SshSettings())))


def _ssh_audit(ip: str) -> None:
    subprocess.run(
        [str(SSH_AUDIT), "-j", "-t", str(int(TIMEOUT)), ip], capture_output=True, timeout=120, check=False
    )


def _median_seconds(run: Callable[[str], None], ip: str, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        run(ip)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _connections(servers: SshServers, run: Callable[[str], None]) -> int:
    before = servers.terrapin_connections()
    run(servers.terrapin)
    time.sleep(0.2)  # let the accept loop see the last connection
    return servers.terrapin_connections() - before


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, choices=range(1, 21), metavar="N")
    args = parser.parse_args()
    if not can_run_sshd() or not SSH_AUDIT.is_file():
        print("needs root, openssh-server and ssh-audit in the virtualenv", file=sys.stderr)
        return 2
    with (
        tempfile.TemporaryDirectory(prefix="attt-bench-ssh-") as tmp,
        running_ssh_servers(Path(tmp)) as servers,
    ):
        print(f"{'server':<10} {'address':<12} {'attt s':>8} {'ssh-audit s':>12} {'ratio':>7}")
        totals = [0.0, 0.0]
        for name in SERVERS:
            ip = getattr(servers, name)
            ours = _median_seconds(_attt, ip, args.rounds)
            theirs = _median_seconds(_ssh_audit, ip, args.rounds)
            totals[0] += ours
            totals[1] += theirs
            print(f"{name:<10} {ip:<12} {ours:>8.3f} {theirs:>12.3f} {theirs / ours:>6.1f}x")
        print(f"{'total':<23} {totals[0]:>8.3f} {totals[1]:>12.3f} {totals[1] / totals[0]:>6.1f}x")
        print(
            f"connections to one server (terrapin): attt {_connections(servers, _attt)}, "
            f"ssh-audit {_connections(servers, _ssh_audit)}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
