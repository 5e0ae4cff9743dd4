"""Shared parts of the robustness suite: `run_attt` (the real CLI in a child process, with
its exit code, output, time and peak memory), the silent TLS lab and scans of it."""

import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.servers.listeners import tcp_listeners

REPO = Path(__file__).resolve().parents[2]
ATTT_ENTRY = "import sys; from attt.scanner.cli import main; sys.exit(main())"


@dataclass(frozen=True)
class AtttRun:
    """One `attt` process run to its end: what it printed, how it ended, what it cost."""

    returncode: int
    stdout: str
    stderr: str
    seconds: float
    cpu_seconds: float
    """User and system time of the process itself: what a test bounding work (not waiting)
    asserts on, unmoved by the machine's load."""
    max_rss_mib: float

    @property
    def terminal(self) -> str:
        return self.stdout + self.stderr


def run_attt(
    args: Sequence[str],
    *,
    timeout: float = 120.0,
    env: Mapping[str, str] | None = None,
    entry: str = ATTT_ENTRY,
    wrapper: Sequence[str] = (),
) -> AtttRun:
    """Run `attt ARGS` in a child process (from the repository, so the source tree is used) and
    wait at most `timeout` seconds. Its peak memory is read from /proc while it runs: the
    rusage of wait4 would also count the pytest process it was forked from, because Linux keeps
    the high-water mark across exec.

    `entry` is the Python code that starts the CLI; `wrapper` a command to run it under (strace).
    """
    started = time.monotonic()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            [*wrapper, sys.executable, "-c", entry, *args],
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )
        deadline = started + timeout
        peak_kib = 0
        while True:
            peak_kib = max(peak_kib, _peak_rss_kib(proc.pid))
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
                proc.wait(timeout=10)
                pytest.fail(f"attt {' '.join(args)} still running after {timeout:.0f} s")
            time.sleep(0.05)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return AtttRun(
            returncode=proc.returncode,
            stdout=out.read().decode("utf-8", errors="replace"),
            stderr=err.read().decode("utf-8", errors="replace"),
            seconds=time.monotonic() - started,
            cpu_seconds=usage.ru_utime + usage.ru_stime,
            max_rss_mib=peak_kib / 1024,
        )


def scan_tls_hosts(
    workdir: Path, net: str, ips: Sequence[str], port: int, timeout: float, *options: str
) -> tuple[dict[str, Any], AtttRun]:
    """`attt scan --check tls` (and `options`) of one level-3 system whose hosts (in `net`.0/24)
    each declare a TLS `port`, run while the caller's servers run: the report, and the run
    (never a traceback)."""
    hosts = [{"address": ip, "services": [{"port": port, "kind": "tls"}]} for ip in ips]
    body = {
        "province": "Hà Tĩnh",
        "scope": [f"{net}.0/24"],
        "systems": [{"id": "flaky", "name": "Flaky", "owner": "Sở KH&CN", "level": 3, "hosts": hosts}],
    }
    inventory = workdir / "inventory.yaml"
    inventory.write_text(json.dumps(body, ensure_ascii=False))  # JSON is YAML
    run = run_attt(
        ["scan", "-i", str(inventory), "--check", "tls", "--out", str(workdir / "out"),
         "--db", str(workdir / "runs.db"), "--format", "json", "--timeout", f"{timeout:g}", *options],
        timeout=90,
    )  # fmt: skip
    assert "Traceback" not in run.terminal, run.terminal
    return json.loads((workdir / "out" / "report.json").read_text()), run


def _peak_rss_kib(pid: int) -> int:
    """VmHWM of a running process: the peak resident memory of its own program since exec."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:  # it has just exited
        return 0
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def wait_for_probe(db: Path, check: str, deadline: float) -> None:
    """Wait until the scan writing to `db` has stored a finished probe of `check`."""
    while time.monotonic() < deadline:
        if db.exists():
            with sqlite3.connect(db) as conn:
                try:
                    if conn.execute("SELECT 1 FROM probes WHERE check_name = ?", (check,)).fetchone():
                        return
                except sqlite3.OperationalError:
                    pass  # the schema is being created
        time.sleep(0.1)
    pytest.fail(f"no {check} probe was recorded in time")


# --- a lab of silent TLS ports, and scans of it in child processes (store faults, signals) ---

NET = "127.0.133"
HOSTS = [f"{NET}.{i}" for i in range(10, 18)]
"""Each silent port costs its TLS probe about a second (no answer to the ClientHello), so a scan
of these hosts one at a time lasts long enough to be hit mid-way."""
PORT = 8443


@pytest.fixture(scope="session")
def silent_lab() -> Iterator[None]:
    with tcp_listeners([(h, PORT) for h in HOSTS]):
        yield


def inventory(tmp_path: Path, hosts: Sequence[str] = HOSTS, extra: str = "") -> Path:
    """One system whose hosts each declare a TLS port; `extra` is added to the system (YAML)."""
    lines = "".join(f"      - {{address: {h}, services: [{{port: {PORT}, kind: tls}}]}}\n" for h in hosts)
    path = tmp_path / "inventory.yaml"
    path.write_text(
        textwrap.dedent(f"""\
            province: Hà Tĩnh
            scope: [{NET}.0/24]
            systems:
              - id: cong-thong-tin
                name: Cổng thông tin
                owner: Sở Khoa học và Công nghệ
                level: 3
            """)
        + extra
        + "    hosts:\n"
        + lines
    )
    return path


def scan_args(
    tmp_path: Path, db: Path | str, out: Path, hosts: Sequence[str] = HOSTS, timeout: str = "4"
) -> list[str]:
    """A scan of `hosts` one at a time; a silent port costs max(1, timeout / 4) seconds."""
    return ["scan", "-i", str(inventory(tmp_path, hosts)), "-p", "baseline", "--check", "tls",
            "--db", str(db), "--out", str(out), "--format", "json", "--timeout", timeout,
            "--concurrency", "1"]  # fmt: skip


def start(
    args: Sequence[str], env: Mapping[str, str] | None = None, entry: str = ATTT_ENTRY
) -> subprocess.Popen[str]:
    """`attt ARGS` in a child process of its own session (a signal to its group reaches nmap too)."""
    return subprocess.Popen(
        [sys.executable, "-c", entry, *args], cwd=REPO, text=True, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, env={**os.environ, "CI": "true", **(env or {})}, start_new_session=True,
    )  # fmt: skip


def history(db: Path) -> list[str]:
    run = run_attt(["history", "--db", str(db)], timeout=60)
    assert run.returncode == 0, run.terminal
    return run.stdout.splitlines()
