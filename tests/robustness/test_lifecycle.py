"""A scan's life under signals and a second process: every way out is 130 and an `incomplete`
run that `--resume` finishes; a run that is still alive is never resumed (exit 4); a resumed
run runs with its own options and re-runs the probes the interruption cut short.

The real `attt scan` runs in a child process against the silent TLS lab (127.0.133.0/24). To
land a signal exactly in evaluation or report writing, the child's entry code wraps that stage
so the process signals itself there.
"""

import json
import os
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from attt.scanner.cli import main
from tests.robustness.conftest import (
    HOSTS,
    NET,
    history,
    inventory,
    run_attt,
    scan_args,
    start,
    wait_for_probe,
)
from tests.servers.listeners import tcp_listeners

SIGNALS = [signal.SIGINT, signal.SIGTERM, signal.SIGHUP]


def signalling_at(stage: str, signum: int) -> str:
    """Entry code: attt, with `stage` ("module:attribute") sending `signum` to its own process."""
    module, attribute = stage.rsplit(":", 1)
    owner, _, name = attribute.rpartition(".")
    target = f"{module}.{owner}" if owner else module
    return (
        f"import os, sys; from attt.scanner.cli import main; import {module}\n"
        f"holder = {target}; real = getattr(holder, {name!r})\n"
        f"def wrapped(*a, **k):\n    os.kill(os.getpid(), {int(signum)})\n    return real(*a, **k)\n"
        f"setattr(holder, {name!r}, wrapped)\n"
        "sys.exit(main())"
    )


def report_of(out: Path) -> dict[str, Any]:
    return dict(json.loads((out / "report.json").read_text()))


def stored_status(db: Path, run_id: str) -> str:
    [line] = [line for line in history(db) if line.startswith(run_id)]
    return line.split()[1]


@pytest.mark.parametrize("signum", SIGNALS, ids=lambda s: signal.Signals(s).name)
def test_a_signal_during_evaluation_gives_130_and_an_incomplete_run_with_its_report(
    tmp_path: Path, silent_lab: None, signum: int
) -> None:
    db, out = tmp_path / "runs.db", tmp_path / "out"
    entry = signalling_at("attt.scanner.pipeline:evaluate", signum)
    run = run_attt(scan_args(tmp_path, db, out, HOSTS[:1]), env={"CI": "true"}, entry=entry)
    assert run.returncode == 130, run.terminal
    assert "Traceback" not in run.terminal and "Aborted" not in run.terminal
    report = report_of(out)
    assert report["run"]["status"] == "incomplete"
    assert stored_status(db, report["run"]["id"]) == "incomplete"


@pytest.mark.parametrize("signum", SIGNALS, ids=lambda s: signal.Signals(s).name)
def test_a_signal_while_the_report_is_written_gives_130_and_resume_finishes(
    tmp_path: Path, silent_lab: None, signum: int
) -> None:
    db, out = tmp_path / "runs.db", tmp_path / "out"
    entry = signalling_at("attt.reports.json:JsonRenderer.pieces", signum)
    run = run_attt(scan_args(tmp_path, db, out, HOSTS[:1]), env={"CI": "true"}, entry=entry)
    assert run.returncode == 130, run.terminal
    assert "Traceback" not in run.terminal
    [line] = history(db)
    run_id = line.split()[0]
    assert stored_status(db, run_id) == "incomplete"
    resumed = run_attt(["scan", "--resume", run_id, "--db", str(db)], env={"CI": "true"})
    assert resumed.returncode == 3, resumed.terminal  # silent port: TLS rules are errors
    assert report_of(out)["run"]["status"] == "complete"  # the run's own --out


def test_sighup_mid_scan_is_handled_like_sigterm(tmp_path: Path, silent_lab: None) -> None:
    db, out = tmp_path / "runs.db", tmp_path / "out"
    process = start(scan_args(tmp_path, db, out))
    try:
        wait_for_probe(db, "tls", time.monotonic() + 60)
        process.send_signal(signal.SIGHUP)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "--resume" in stderr
    report = report_of(out)
    assert report["run"]["status"] == "incomplete"
    assert 1 <= len({o["host"] for o in report["observations"]}) < len(HOSTS)


def test_a_run_that_is_still_running_is_not_resumed(tmp_path: Path, silent_lab: None) -> None:
    db, out = tmp_path / "runs.db", tmp_path / "out"
    process = start(scan_args(tmp_path, db, out, timeout="12"))  # 3 s per host, 24 s in all
    try:
        wait_for_probe(db, "tls", time.monotonic() + 60)
        second = start(["scan", "--resume", "latest", "--db", str(db), "--out", str(tmp_path / "second")])
        again = start(scan_args(tmp_path, db, tmp_path / "third"))  # the same inventory: locked
        refused = [(p.wait(timeout=60), p.communicate()[1]) for p in (second, again)]
        _, stderr = process.communicate(timeout=90)
    finally:
        process.kill()
    for code, error in refused:
        assert code == 4, error
        assert "still running" in error and "Traceback" not in error
    assert not (tmp_path / "second").exists() and not (tmp_path / "third").exists()
    assert process.returncode == 3, stderr
    report = report_of(out)
    assert report["run"]["status"] == "complete"
    assert {o["host"] for o in report["observations"]} == set(HOSTS)


# --- issue 11, item 5: what a resumed run runs ------------------------------------------------

SLOW = [f"{NET}.{i}" for i in range(30, 33)]
SLOW_POLICY = """\
id: slow-ports
title: Service detection on a silent port (nmap -sV waits on it)
settings:
  ports: {ports: [8443], service_detection: true}
rules:
  - id: SLOW-DECLARED
    control: ports.declared_reachable
    severity: medium
    title: {vi: "Dịch vụ đã khai báo hoạt động", en: "Declared services answer"}
    remediation: {vi: "Kiểm tra dịch vụ.", en: "Check the service."}
"""


def test_probes_killed_by_the_interruption_run_again_on_resume(tmp_path: Path) -> None:
    # SIGTERM to the whole process group (as a scheduler or Ctrl-C does) kills nmap too: its
    # error is not a fact about the host, so it is not kept, and resume probes that host again.
    db, out = tmp_path / "runs.db", tmp_path / "out"
    policy = tmp_path / "slow.yaml"
    policy.write_text(SLOW_POLICY)
    args = ["scan", "-i", str(inventory(tmp_path, SLOW)), "-p", str(policy), "--check", "ports",
            "--db", str(db), "--out", str(out), "--format", "json", "--timeout", "60",
            "--concurrency", "3"]  # fmt: skip
    with tcp_listeners([(h, 8443) for h in SLOW]):
        process = start(args)
        try:
            _wait_for_run(db, time.monotonic() + 30)
            time.sleep(1.5)  # nmap -sV is now waiting on the silent ports
            os.killpg(process.pid, signal.SIGTERM)
            _, stderr = process.communicate(timeout=60)
        finally:
            process.kill()
    assert process.returncode == 130, stderr
    first = report_of(out)
    assert first["run"]["status"] == "incomplete"
    assert [o for o in first["observations"] if o["status"] == "error"] == []
    # The silent ports are closed now: nmap answers at once (the hosts look gone, an honest error).
    resumed = run_attt(["scan", "--resume", first["run"]["id"], "--db", str(db)], env={"CI": "true"})
    assert resumed.returncode in (0, 1, 3), resumed.terminal
    second = report_of(out)
    assert second["run"]["status"] == "complete"
    assert {o["host"] for o in second["observations"] if o["check"] == "ports"} == set(SLOW)
    assert not [o for o in second["observations"] if "nmap failed" in (o["error"] or "")]


def _wait_for_run(db: Path, deadline: float) -> None:
    while time.monotonic() < deadline:
        if db.exists():
            with sqlite3.connect(db) as conn:
                try:
                    if conn.execute("SELECT 1 FROM runs").fetchone():
                        return
                except sqlite3.OperationalError:
                    pass  # the schema is being created
        time.sleep(0.1)
    pytest.fail("the scan never stored its run")


@pytest.fixture(scope="module")
def interrupted_template(
    tmp_path_factory: pytest.TempPathFactory, silent_lab: None
) -> tuple[Path, Path, str]:
    """A finished run, then made to look interrupted before its last probe (as after kill -9)."""
    base = tmp_path_factory.mktemp("interrupted")
    db, out = base / "runs.db", base / "own-out"
    args = [*scan_args(base, db, out, HOSTS[:2]), "--fail-on", "critical", "--format", "json,csv"]
    assert run_attt(args, env={"CI": "true"}).returncode == 3
    with sqlite3.connect(db) as conn:
        run_id, body = conn.execute("SELECT id, info FROM runs").fetchone()
        info = json.loads(body) | {"status": "running", "finished": None}
        conn.execute("UPDATE runs SET status = 'running', info = ?, lease_pid = NULL", (json.dumps(info),))
        conn.execute("DELETE FROM probes WHERE host = ?", (HOSTS[1],))
        conn.execute("DELETE FROM observations WHERE json_extract(body, '$.host') = ?", (HOSTS[1],))
    return db, out, str(run_id)


@pytest.fixture
def interrupted_run(tmp_path: Path, interrupted_template: tuple[Path, Path, str]) -> tuple[Path, Path, str]:
    """A copy of the interrupted run's store for one test; its report directory is emptied."""
    template, out, run_id = interrupted_template
    db = tmp_path / "runs.db"
    with sqlite3.connect(template) as source, sqlite3.connect(db) as copy:
        source.backup(copy)
    for path in out.glob("*"):
        path.unlink()
    return db, out, run_id


def resume(db: Path, run_id: str, *options: str) -> Result:
    return CliRunner().invoke(
        main, ["scan", "--resume", run_id, "--db", str(db), *options], env={"CI": "true"}
    )


def test_a_resumed_run_runs_with_its_own_options(interrupted_run: tuple[Path, Path, str]) -> None:
    db, out, run_id = interrupted_run
    resumed = resume(db, run_id)
    assert resumed.exit_code == 3, resumed.output
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "report.csv", "report.json"]
    report = report_of(out)
    assert report["run"]["status"] == "complete"
    assert {o["host"] for o in report["observations"]} == set(HOSTS[:2])
    assert [o["check"] for o in report["observations"]] == ["tls", "tls"]


CONFLICTS = [["--timeout", "9"], ["--concurrency", "4"], ["--check", "ports"], ["-p", "vn-level-3"],
             ["--system", "cong-thong-tin"], ["--tag", "portal"]]  # fmt: skip


@pytest.mark.parametrize("option", CONFLICTS, ids=lambda o: o[0])
def test_an_option_that_contradicts_the_run_is_a_usage_error(
    interrupted_run: tuple[Path, Path, str], option: list[str]
) -> None:
    db, out, run_id = interrupted_run
    resumed = resume(db, run_id, *option)
    assert resumed.exit_code == 2, resumed.output
    assert "conflicts with run" in resumed.output
    assert not any(out.iterdir())


def test_the_same_options_again_are_accepted(interrupted_run: tuple[Path, Path, str]) -> None:
    db, _out, run_id = interrupted_run
    resumed = resume(db, run_id, "--timeout", "4", "--check", "tls", "-p", "baseline", "--concurrency", "1")
    assert resumed.exit_code == 3, resumed.output


def test_a_run_started_with_credentials_needs_them_again(interrupted_run: tuple[Path, Path, str]) -> None:
    db, out, run_id = interrupted_run
    with sqlite3.connect(db) as conn:
        (body,) = conn.execute("SELECT info FROM runs").fetchone()
        info = json.loads(body)
        info["options"]["credentials"] = "given"
        conn.execute("UPDATE runs SET info = ?", (json.dumps(info),))
    resumed = resume(db, run_id)
    assert resumed.exit_code == 2, resumed.output
    assert "give the credentials file again" in resumed.output
    assert not any(out.iterdir())


def test_history_with_a_mistyped_store_creates_nothing(tmp_path: Path) -> None:
    run = run_attt(["history", "--db", str(tmp_path / "typo" / "x.db")])
    assert run.returncode == 2
    assert "no run store at" in run.stderr
    assert not (tmp_path / "typo").exists()
    memory = run_attt(["scan", "-i", str(inventory(tmp_path)), "--db", ":memory:"])
    assert memory.returncode == 2 and "keeps nothing" in memory.stderr
