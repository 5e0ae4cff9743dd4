"""Benchmarks (`make bench`): speed goals live here, never in timed tests."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def in_own_netns(module: str) -> bool:
    """Whether this benchmark runs in a network namespace of its own, so that its loopback
    servers meet nobody else's. Where one can be made (`unshare -n`, root), `tests.bench.<module>`
    runs again inside it and this process exits with its code; False where none can be made."""
    if os.environ.get("ATTT_BENCH_NETNS") == "1":
        return True
    if shutil.which("unshare") is None or os.geteuid() != 0:
        return False
    command = f"ip link set lo up && exec {sys.executable} -m tests.bench.{module} " + " ".join(sys.argv[1:])
    done = subprocess.run(["unshare", "-n", "--", "sh", "-c", command],
                          env={**os.environ, "ATTT_BENCH_NETNS": "1"}, check=False, cwd=REPO)  # fmt: skip
    sys.exit(done.returncode)
