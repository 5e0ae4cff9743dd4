"""Benchmarks (`make bench`): speed goals live here, never in timed tests."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SOURCES = ("attt", "scanner", "checks", "reports", "policies")
"""The folders of attt's modules (`attt/` links the other four, which compileall does not follow)."""


def byte_compile() -> None:
    """Compile attt's modules to bytecode once, before anything is timed, as installing a package
    does. A machine that sets PYTHONDONTWRITEBYTECODE (this one does) would otherwise compile every
    module again at every `attt` start, a cost no installed attt pays and a compiled peer (nmap)
    never has; the libraries in the venv are compiled already, by pip."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    folders = [str(REPO / folder) for folder in SOURCES]
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", *folders], env=env, check=True, capture_output=True
    )


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
