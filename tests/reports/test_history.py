"""`attt report` reads the earlier runs of the same inventory from the store: trends, "failing
since", the change since the last run, in the HTML it writes."""

from datetime import timedelta
from pathlib import Path

from click.testing import CliRunner

from attt.scanner.cli import main
from attt.scanner.models.finding import FindingStatus
from attt.scanner.models.report import Report
from attt.scanner.store import Store
from tests import factories as F


def stored(store: Store, day: int, status: FindingStatus, inventory: str = "a" * 64) -> Report:
    report = F.report(
        [F.finding("TLS-PROTO-LEGACY", status), F.finding("TLS-CERT-EXPIRY", "pass")],
        id=f"run-{day:+04d}",
        started=F.STARTED + timedelta(days=day),
        finished=F.STARTED + timedelta(days=day, minutes=5),
        inventory_sha256=inventory,
    )
    store.create_run(report.run.model_copy(update={"status": "running"}), report.systems, report.targets)
    store.finish_run(report.run.id, "complete", report.run.finished or report.run.started, report.findings)
    return report


def latest_report_page(db: Path, out: Path) -> str:
    """The HTML, in Vietnamese, that `attt report` renders of the latest run (`run-+000`)."""
    result = CliRunner().invoke(
        main, ["report", "run-+000", "--db", str(db), "--out", str(out), "--format", "html", "--lang", "vi"]
    )
    assert result.exit_code == 0, result.output
    return (out / "report.html").read_text("utf-8")


def test_report_shows_trends_and_failing_since_from_the_store(tmp_path: Path):
    db = tmp_path / "attt.db"
    store = Store(db)
    stored(store, -60, "pass")
    stored(store, -45, "fail")
    stored(store, -30, "fail")
    stored(store, -20, "fail", inventory="f" * 64)  # another inventory: not this one's history
    stored(store, 0, "fail")
    store.close()
    page = latest_report_page(db, tmp_path / "out")
    assert 'id="trends"' in page and "<polyline" in page
    assert "06/10/2026 (45 ngày)" in page  # failing since the run 45 days before, not 60
    assert "(4 lượt quét)" in page  # the other inventory's run is not in the trend
    assert 'id="changes"' in page  # the baseline is chosen by main's rule (same hosts and checks)


def test_a_run_killed_before_it_was_judged_adds_no_point_to_the_trends(tmp_path: Path):
    # Its findings were never written: as a point it would read "nothing serious open" that day.
    db = tmp_path / "attt.db"
    store = Store(db)
    stored(store, -60, "fail")
    killed = F.report([], id="run--030", started=F.STARTED - timedelta(days=30), inventory_sha256="a" * 64)
    store.create_run(killed.run.model_copy(update={"status": "running"}), killed.systems, killed.targets)
    store.mark(killed.run.id, "incomplete", killed.run.started + timedelta(minutes=1))
    stored(store, 0, "fail")
    store.close()
    page = latest_report_page(db, tmp_path / "out")
    assert "(2 lượt quét)" in page
