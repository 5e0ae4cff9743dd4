"""Fault injection for the run store: a file system that fills up mid-scan, a lock another
process holds, a PostgreSQL server that goes away mid-scan, a row written by a newer attt, a store
written by the previous release.

Each case runs the real `attt scan` in a child process against silent TLS listeners on
127.0.133.0/24 (each TLS probe then waits about a second for a ClientHello answer, so a scan
of a dozen hosts one at a time lasts long enough to be hit mid-way), and checks what
docs/robustness.md promises: one line, a documented exit code, a report of what was observed,
the run stored (or left resumable) for what it is.
"""

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.robustness.conftest import (
    HOSTS,
    REPO,
    history,
    inventory,
    run_attt,
    scan_args,
    start,
    wait_for_probe,
)
from tests.servers.postgres import raw, running_postgres

V1_DUMP = REPO / "tests" / "scanner" / "data" / "store-v1.sql"


@pytest.fixture
def tiny_fs(tmp_path: Path) -> Iterator[Path]:
    """An 8 MiB tmpfs mounted for this test only (root only)."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root and mount(8)")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(directory: Path) -> Path:
    """Write zeros until the file system says it is full."""
    filler = directory / "filler"
    with suppress(OSError), filler.open("wb") as stream:
        while True:
            stream.write(b"\0" * 4096)
            stream.flush()
    return filler


def test_a_full_disk_stops_the_scan_cleanly_and_keeps_every_observation(
    tmp_path: Path, tiny_fs: Path, silent_lab: None
) -> None:
    db, out = tiny_fs / "runs.db", tmp_path / "out"
    process = start(scan_args(tmp_path, db, out))
    try:
        wait_for_probe(db, "tls", time.monotonic() + 60)
        filler = fill(tiny_fs)
        _, stderr = process.communicate(timeout=90)
    finally:
        process.kill()
    assert process.returncode == 3, stderr
    assert "Traceback" not in stderr
    [error] = [line for line in stderr.splitlines() if line.startswith("attt: error:")]
    assert "database or disk is full" in error and "probing stopped" in error
    report = json.loads((out / "report.json").read_text())
    assert report["run"]["status"] == "incomplete"
    observed = {o["host"] for o in report["observations"]}
    assert 1 <= len(observed) < len(HOSTS)
    filler.unlink(missing_ok=True)
    # The run outlived its process as "running"; the store now calls it what it is, and resume
    # finishes it.
    [line] = [line for line in history(db) if report["run"]["id"] in line]
    assert " incomplete " in line
    stored_hosts = _stored_hosts(db)
    assert stored_hosts <= observed


def _stored_hosts(db: Path) -> set[str]:
    with sqlite3.connect(db) as conn:
        return {json.loads(body)["host"] for (body,) in conn.execute("SELECT body FROM observations")}


def hold_lock(db: Path, seconds: float) -> subprocess.Popen[str]:
    """Another process takes the store's write lock and keeps it for `seconds`."""
    code = (
        "import sqlite3, sys, time; db = sqlite3.connect(sys.argv[1], isolation_level=None);"
        " db.execute('BEGIN EXCLUSIVE'); print('locked', flush=True); time.sleep(float(sys.argv[2]));"
        " db.execute('ROLLBACK')"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(db), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    return holder


def test_a_store_locked_for_nine_seconds_only_delays_the_scan(tmp_path: Path, silent_lab: None) -> None:
    db, out = tmp_path / "runs.db", tmp_path / "out"
    process = start(scan_args(tmp_path, db, out))
    try:
        wait_for_probe(db, "tls", time.monotonic() + 60)
        holder = hold_lock(db, 9)
        _, stderr = process.communicate(timeout=120)
        holder.wait(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 3, stderr  # silent ports: TLS rules are errors, the run is whole
    assert "attt: error" not in stderr
    report = json.loads((out / "report.json").read_text())
    assert report["run"]["status"] == "complete"
    assert {o["host"] for o in report["observations"]} == set(HOSTS)


def test_a_lock_held_past_the_busy_timeout_stops_the_scan_cleanly(tmp_path: Path, silent_lab: None) -> None:
    db, out = tmp_path / "runs.db", tmp_path / "out"
    process = start(scan_args(tmp_path, db, out), env={"ATTT_DB_BUSY_TIMEOUT": "1"})
    try:
        wait_for_probe(db, "tls", time.monotonic() + 60)
        holder = hold_lock(db, 8)
        _, stderr = process.communicate(timeout=90)
        holder.wait(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 3, stderr
    assert "Traceback" not in stderr
    assert "database is locked" in stderr and "probing stopped" in stderr
    report = json.loads((out / "report.json").read_text())
    assert report["run"]["status"] == "incomplete"
    resumed = run_attt(
        ["scan", "--resume", report["run"]["id"], "--db", str(db), "--out", str(tmp_path / "again")],
        env={"CI": "true"},
    )
    assert resumed.returncode == 3, resumed.terminal
    again = json.loads((tmp_path / "again" / "report.json").read_text())
    assert again["run"]["status"] == "complete"
    assert {o["host"] for o in again["observations"]} == set(HOSTS)


def test_a_row_from_a_newer_attt_is_skipped_with_a_warning(tmp_path: Path, silent_lab: None) -> None:
    db = tmp_path / "runs.db"
    hosts = HOSTS[:1]
    args = ["scan", "-i", str(inventory(tmp_path, hosts)), "-p", "baseline", "--check", "tls",
            "--db", str(db), "--format", "json", "--timeout", "4"]  # fmt: skip
    first = run_attt([*args, "--out", str(tmp_path / "first")], env={"CI": "true"})
    assert first.returncode == 3, first.terminal
    with sqlite3.connect(db) as conn:
        (run_id, body) = conn.execute("SELECT id, info FROM runs").fetchone()
        conn.execute("UPDATE runs SET info = ?", (json.dumps(json.loads(body) | {"written_by": "attt 9"}),))
    listed = run_attt(["history", "--db", str(db)])
    assert listed.returncode == 0, listed.terminal
    assert "Traceback" not in listed.terminal
    assert f"run {run_id}" in listed.stderr and "skipped" in listed.stderr
    second = run_attt([*args, "--out", str(tmp_path / "second")], env={"CI": "true"})
    assert second.returncode == 3, second.terminal
    assert (tmp_path / "second" / "report.json").is_file()


def test_a_store_of_the_previous_release_reads_and_takes_new_runs(tmp_path: Path, silent_lab: None) -> None:
    db = tmp_path / "v1.db"
    with sqlite3.connect(db) as conn:
        conn.executescript(V1_DUMP.read_text(encoding="utf-8"))
    [old] = history(db)
    old_id = old.split()[0]
    rendered = run_attt(
        ["report", old_id, "--db", str(db), "--out", str(tmp_path / "old"), "--format", "json"]
    )
    assert rendered.returncode == 0, rendered.terminal
    args = ["scan", "-i", str(inventory(tmp_path, HOSTS[:1])), "-p", "baseline", "--check", "tls", "--db",
            str(db), "--out", str(tmp_path / "new"), "--format", "json", "--timeout", "4"]  # fmt: skip
    assert run_attt(args, env={"CI": "true"}).returncode == 3
    assert len(history(db)) == 2


def test_a_postgresql_server_lost_mid_scan_stops_the_scan_cleanly(tmp_path: Path, silent_lab: None) -> None:
    """The shared store's server stops (a crash, a maintenance window) while a scan writes to it:
    as for a full disk, probing stops, the report is written from memory, one line names the
    store (never its password)."""
    out = tmp_path / "out"
    with running_postgres() as pg:
        db = pg.url(pg.database())
        process = start(scan_args(tmp_path, db, out))
        try:
            deadline = time.monotonic() + 60
            while not _probed(db):
                assert time.monotonic() < deadline, "no tls probe was recorded in time"
                time.sleep(0.2)
            pg.stop()
            _, stderr = process.communicate(timeout=90)
        finally:
            process.kill()
    assert process.returncode == 3, stderr
    assert "Traceback" not in stderr and pg.password not in stderr
    [error] = [line for line in stderr.splitlines() if line.startswith("attt: error:")]
    assert f"cannot write to the run store postgresql://attt@127.0.0.1:{pg.port}/" in error
    assert "probing stopped" in error
    report = json.loads((out / "report.json").read_text())
    assert report["run"]["status"] == "incomplete"
    assert 1 <= len({o["host"] for o in report["observations"]}) < len(HOSTS)


def _probed(db: str) -> bool:
    try:
        return bool(raw(db, "SELECT 1 FROM probes WHERE check_name = 'tls'"))
    except sa.exc.ProgrammingError:  # the scan has not created the tables yet
        return False
