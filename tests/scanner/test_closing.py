"""`attt scan` renders its report while the store closes the run (`cli._closed_while_rendering`):
the files written must be the report of the run as the store closed it, and when the store refuses
to close it, the report of the incomplete run it then is."""

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from attt.scanner.cli import ReportOutput, _closed_while_rendering
from attt.scanner.models.target import Target
from attt.scanner.pipeline import ScanOptions, build_report, close_run, run_scan
from attt.scanner.store import Store
from tests.scanner.plugins import CountCheck, registry, target
from tests.scanner.test_pipeline_judge import prepared

JSON_ONLY = ReportOutput(["json"], "en", None, per_owner=False, owner=None)


@pytest.fixture
def hosts() -> Iterator[list[Target]]:
    CountCheck.behaviour = {"127.0.0.3": "error"}
    yield [target(f"127.0.0.{i}", system="sys-a" if i % 2 else "sys-b") for i in range(1, 7)]
    CountCheck.behaviour = {}


def test_the_report_rendered_while_the_store_closes_the_run_is_the_closed_runs(
    hosts: list[Target], tmp_path: Path
) -> None:
    store = Store(tmp_path / "runs.db", registry().data_models)
    scan = prepared(hosts)
    outcome = run_scan(scan, ScanOptions(timeout=5, concurrency=3), store, registry(), close=False)
    assert store.load(scan.run.id).info.status == "running"  # left open for the caller

    closed, report, written = _closed_while_rendering(store, outcome, tmp_path / "out", JSON_ONLY)

    assert written is not None and closed.store_error is None
    stored = store.load(scan.run.id)
    assert stored.info.status == "complete" and stored.info == closed.run.info == report.run
    on_disk = json.loads((tmp_path / "out" / "report.json").read_text())
    assert on_disk == json.loads(build_report(stored).model_dump_json())


def test_a_store_refusing_to_close_the_run_gets_the_report_of_an_incomplete_run(
    hosts: list[Target], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ATTT_DB_BUSY_TIMEOUT", "0.5")
    path = tmp_path / "runs.db"
    store = Store(path, registry().data_models)
    scan = prepared(hosts)
    outcome = run_scan(scan, ScanOptions(timeout=5, concurrency=3), store, registry(), close=False)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process holds the store's write lock past the timeout
    try:
        closed, report, written = _closed_while_rendering(store, outcome, tmp_path / "out", JSON_ONLY)
    finally:
        holder.execute("ROLLBACK")
        holder.close()

    assert closed.store_error is not None and "database is locked" in closed.store_error
    assert written is not None
    on_disk = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report.run.status == on_disk["run"]["status"] == "incomplete"
    # The findings it judged are reported all the same; the store keeps the run open for --resume.
    assert len(on_disk["findings"]) == len(outcome.run.findings) > 0
    assert store.load(scan.run.id).info.status != "complete"


def test_the_run_as_judged_is_the_run_as_the_store_closes_it(hosts: list[Target], tmp_path: Path) -> None:
    """What lets the report be rendered once, before the store answers: the run's record as
    `run_scan` leaves it equals the one the store gives back when it closes the run."""
    store = Store(tmp_path / "runs.db", registry().data_models)
    outcome = run_scan(prepared(hosts), ScanOptions(timeout=5, concurrency=3), store, registry(), close=False)
    assert close_run(store, outcome).run.info == outcome.run.info
