"""Benchmarks (`make bench`): speed goals live here, never in timed tests."""

import json
import os
import resource
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
RESULTS = Path(__file__).with_name("results.json")
RESULTS_SCHEMA = 1
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


def started(module: str) -> tuple[float, ...] | None:
    """A benchmark's start: in its own network namespace (`in_own_netns`), with the open-file
    limit raised as far as it goes, the load average printed and returned; None where no
    namespace can be made (said on stderr)."""
    if not in_own_netns(module):
        print(f"{module}: needs `unshare -n` (root) for its own loopback", file=sys.stderr)
        return None
    resource.setrlimit(resource.RLIMIT_NOFILE, (resource.getrlimit(resource.RLIMIT_NOFILE)[1],) * 2)
    load = os.getloadavg()
    print(f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on {os.cpu_count()} CPUs", flush=True)
    return load


def append_results(load: tuple[float, ...], results: dict[str, Any]) -> None:
    """Add one run's results to tests/bench/results.json, with the commit, date and load."""
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=REPO, check=False).stdout.strip()  # fmt: skip
    saved: dict[str, Any] = {"schema": RESULTS_SCHEMA, "runs": []}
    if RESULTS.exists():
        saved = json.loads(RESULTS.read_text(encoding="utf-8"))
    saved["runs"].append({
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "commit": commit,
        "cpus": os.cpu_count(), "load_average": [round(x, 1) for x in load], "results": results,
    })  # fmt: skip
    RESULTS.write_text(json.dumps(saved, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"appended to {RESULTS.relative_to(REPO)}")


@contextmanager
def peak_memory(pid: int) -> Iterator[list[int]]:
    """The peak resident memory (KiB) of attt's process and of the process keeping its store
    (`attt.scanner.storehost`), added: at most what the two held at once; read when the block
    ends. Sampled every 50 ms on a thread of its own."""
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        store: list[int] = []
        while not done.wait(0.05):
            store = store or _store_processes(pid)
            peak[0] = max(peak[0], _vmhwm_kib(pid) + sum(_vmhwm_kib(child) for child in store))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield peak
    finally:
        done.set()
        sampler.join()


def _vmhwm_kib(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:  # it has just exited
        return 0
    return next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")), 0)


def _store_processes(pid: int) -> list[int]:
    """attt's store process, once started (by its main thread, first thing)."""
    found = []
    with suppress(OSError):
        for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
            with suppress(OSError):
                if b"attt.scanner.storehost" in Path(f"/proc/{child}/cmdline").read_bytes():
                    found.append(int(child))
    return found
