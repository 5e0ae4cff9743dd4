"""The run store keeps every observation the moment it arrives, in SQLite or in PostgreSQL: every
test of its behaviour runs on both (`location` is a SQLite file or a new database of the real
server that tests/servers/postgres.py starts)."""

import json
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from attt.scanner.errors import RunBusyError, StoreError
from attt.scanner.models.base import Severity, Text
from attt.scanner.models.finding import Finding, FindingStatus
from attt.scanner.models.observation import Observation
from attt.scanner.models.report import RunInfo
from attt.scanner.models.target import Target
from attt.scanner.store import (
    LEASE_SECONDS,
    MIGRATIONS,
    SCHEMA_HEAD,
    Store,
    _await_checkpoints,
    locate,
)
from attt.scanner.stored import Lease
from tests.scanner.plugins import CountData, target
from tests.servers.postgres import Postgres, raw

T0 = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)


def info(run_id: str, started: datetime = T0, sha: str = "a" * 64) -> RunInfo:
    return RunInfo(id=run_id, started=started, status="running", province="Hà Tĩnh", scope=("127.0.0.0/8",),
                   inventory_sha256=sha, policies=(), checks=("count",))  # fmt: skip


@pytest.fixture
def location(store_location: Path | str) -> Path | str:
    return store_location


@pytest.fixture
def store(location: Path | str) -> Iterator[Store]:
    opened = Store(location, {"count": CountData})
    yield opened
    opened.close()


def test_observation_survives_a_crash_before_the_run_finishes(location: Path | str) -> None:
    first = Store(location)
    t = target("127.0.0.4")
    first.create_run(info("20261127T080000Z-aaaaaa"), [t.system], [t])
    first.record_probe(
        "20261127T080000Z-aaaaaa", "count", t, [Observation.ok("count", t, CountData(count=4))]
    )
    # No finish_run: the process died. A new process sees the observation and the running run.
    stored = Store(location, {"count": CountData}).load("20261127T080000Z-aaaaaa")
    assert stored.info.status == "running"
    assert [o.data for o in stored.observations] == [CountData(count=4)]
    # Read without the plugin that made it, the data is kept whole, untyped.
    untyped = Store(location).load("20261127T080000Z-aaaaaa")
    assert [o.data.model_dump() for o in untyped.observations if o.data] == [{"count": 4}]
    assert stored.targets == (t,)


def test_finish_records_status_and_findings(store: Store) -> None:
    t = target("127.0.0.4")
    store.create_run(info("r1"), [t.system], [t])
    finished = store.finish_run("r1", "incomplete", T0 + timedelta(minutes=1), [])
    assert finished.status == "incomplete" and store.load("r1").info.finished == T0 + timedelta(minutes=1)


def test_a_province_of_findings_reaches_the_database_file_before_the_process_exits(tmp_path: Path) -> None:
    """The findings' commit leaves the write-ahead log to a thread of its own (the report is
    written meanwhile); the process waits for it at exit, so the file itself holds the run."""
    path = tmp_path / "runs.sqlite"
    store = Store(path, {"count": CountData})
    hosts = [target(f"127.0.{i // 250}.{1 + i % 250}") for i in range(500)]
    store.create_run(info("r1"), [t.system for t in hosts], hosts)
    text = Text(vi="t" * 200, en="t" * 200)
    findings = [
        Finding(
            rule_id=f"R{i % 40}",
            control="count.at_most",
            check="count",
            policy="p",
            system=t.system.id,
            host=t.address,
            status="pass",
            severity=Severity.LOW,
            title=text,
            message=text,
            evidence={},
            references=(),
            remediation=text,
        )
        for t in hosts
        for i in range(20)
    ]
    before = path.stat().st_size
    store.finish_run("r1", "complete", T0, findings)
    _await_checkpoints()
    assert (tmp_path / "runs.sqlite-wal").stat().st_size > 1000 * 4096  # past SQLite's own checkpoint
    assert path.stat().st_size > before + 3_000_000  # the findings, in the file itself
    # Nothing left in the log that the file lacks.
    with sqlite3.connect(path) as conn:
        busy, logged, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    assert (busy, logged) == (0, copied)
    assert len(Store(path).load("r1").findings) == 10_000
    store.close()


def test_run_references_resolve_by_prefix_and_latest(store: Store) -> None:
    t = target("127.0.0.4")
    store.create_run(info("20261127T080000Z-abc123"), [t.system], [t])
    store.create_run(info("20261128T080000Z-def456", T0 + timedelta(days=1)), [t.system], [t])
    assert store.load("20261127").info.id == "20261127T080000Z-abc123"
    assert store.load("latest").info.id == "20261128T080000Z-def456"
    with pytest.raises(StoreError, match="more than one run"):
        store.load("2026112")
    with pytest.raises(StoreError, match="no run"):
        store.load("1999")
    with pytest.raises(StoreError, match="no run"):
        store.load("%")  # LIKE wildcards are literal


def test_history_is_newest_first_and_filters_by_system(store: Store) -> None:
    a, b = target("127.0.0.4", "sys-a"), target("127.0.0.5", "sys-b")
    store.create_run(info("r1"), [a.system], [a])
    store.record_probe("r1", "count", a, [Observation.ok("count", a, CountData(count=1))])
    store.create_run(info("r2", T0 + timedelta(hours=1)), [b.system], [b])
    store.record_probe("r2", "count", b, [Observation.ok("count", b, CountData(count=1))])
    assert [r.id for r in store.runs()] == ["r2", "r1"]
    assert [r.id for r in store.runs(system="sys-a")] == ["r1"]
    assert [r.id for r in store.runs(limit=1)] == ["r2"]


def test_earlier_runs_come_newest_first_with_their_targets(store: Store) -> None:
    t, u = target("127.0.0.4"), target("127.0.0.5", "sys-b")
    store.create_run(info("r1", T0), [t.system], [t])
    store.create_run(info("r2", T0 + timedelta(hours=1)), [t.system, u.system], [t, u])
    current = info("r3", T0 + timedelta(hours=2))
    store.create_run(current, [t.system], [t])
    assert [(i.id, targets) for i, targets in store.earlier_runs(current)] == [("r2", (t, u)), ("r1", (t,))]
    assert store.earlier_runs(info("r1", T0)) == []


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:////tmp/x.db", Path("/tmp/x.db")),
        ("sqlite:///runs/a.db", Path("runs/a.db")),
        ("runs/a.db", Path("runs/a.db")),
    ],
)
def test_db_url_forms(url: str, path: Path) -> None:
    assert locate(url).path == path


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://attt:s3cret@db.example:5433/attt", "postgresql://attt@db.example:5433/attt"),
        ("postgres://attt@db/attt", "postgresql://attt@db/attt"),
        ("postgresql+psycopg://db/attt?sslmode=require", "postgresql://db/attt?sslmode=require"),
        (
            "postgresql:///attt?host=/run/postgresql&password=s3cret",
            "postgresql:///attt?host=%2Frun%2Fpostgresql",
        ),
    ],
)
def test_postgresql_urls_are_shown_without_their_password(url: str, shown: str) -> None:
    where = locate(url)
    assert where.path is None and where.url.drivername == "postgresql+psycopg"
    assert str(where) == shown and "s3cret" not in str(where)


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("mysql://attt:s3cret@db/attt", "unsupported store URL 'mysql://attt:\\*\\*\\*@db/attt'"),
        ("postgresql+psycopg2://attt:s3cret@db/attt", "through psycopg 3"),
        ("postgresql://attt:s3cret@db:port/attt", "is not a PostgreSQL URL"),
        ("postgresql://attt:s3cret@db:5432", "names no database"),
    ],
)
def test_unsupported_db_urls_are_clear_errors_without_the_password(url: str, error: str) -> None:
    with pytest.raises(StoreError, match=error) as raised:
        locate(url)
    assert "s3cret" not in str(raised.value)


def test_atttdb_may_name_a_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATTT_DB", "postgresql://attt@db/attt")
    assert str(locate(None)) == "postgresql://attt@db/attt"
    assert str(locate("x.db")) == "x.db"


def test_finished_probes_are_known_for_resuming_even_when_they_saw_nothing(store: Store) -> None:
    a, b = target("127.0.0.4"), target("127.0.0.5")
    store.create_run(info("r1"), [a.system], [a, b])
    seen = Observation.ok("count", a, CountData(count=4))
    store.record_probe("r1", "count", a, [seen])
    store.record_probe("r1", "echo", a, [])
    assert store.probes_done("r1") == {
        ("count", "sys-a", "127.0.0.4"): (seen,),
        ("echo", "sys-a", "127.0.0.4"): (),
    }
    store.finish_run("r1", "incomplete", T0, [])
    store.claim("r1")
    assert store.load("r1").info.status == "running"
    assert store.load("r1").info.finished is None


def test_a_run_this_version_cannot_read_is_a_clear_error(store: Store) -> None:
    t = target("127.0.0.4")
    store.create_run(info("r1"), [t.system], [t])
    raw(store, "INSERT INTO observations (run_id, seq, system, body) VALUES ('r1', 0, 'sys-a', '{}')")
    with pytest.raises(
        StoreError, match=r"run r1 .* cannot be read by this version of attt: .* first at check"
    ):
        store.load("r1")


def test_findings_stored_with_one_message_string_still_load(store: Store) -> None:
    t = target("127.0.0.4")
    store.create_run(info("r1"), [t.system], [t])
    text = {"vi": "t", "en": "t"}
    old = {"rule_id": "R", "control": "count.at_most", "check": "count", "policy": "p", "system": "sys-a",
           "host": "127.0.0.4", "status": "pass", "severity": "low", "title": text, "message": "ok",
           "evidence": {}, "references": [], "remediation": text}  # fmt: skip
    raw(store, "INSERT INTO findings (run_id, seq, body) VALUES ('r1', 0, :body)", body=json.dumps(old))
    [finding] = store.load("r1").findings
    assert (finding.message.vi, finding.message.en) == ("ok", "ok")


def test_findings_alike_but_for_system_and_host_each_load_back_as_stored(store: Store) -> None:
    # Read back, findings that differ only by system and host are copies of the first of them:
    # each must keep its own system and host, and anything else that differs is not a copy.
    a, b = target("127.0.0.4"), target("127.0.0.5", system="sys-b")
    store.create_run(info("r1"), [a.system, b.system], [a, b])

    def made(t: Target, status: FindingStatus, seen: str) -> Finding:
        return Finding(rule_id="R", control="count.at_most", check="count", policy="p", system=t.system.id,
                       host=t.address, status=status, severity=Severity.LOW, title=Text(vi="t", en="t"),
                       message=Text(vi=seen, en=seen), evidence={"observed": [seen], "expected": "closed"},
                       references=(), remediation=Text(vi="r", en="r"))  # fmt: skip

    odd = made(a, "pass", "closed").model_copy(update={"host": 'a "quoted" \\ host, đã'})
    findings = [made(a, "pass", "closed"), made(b, "pass", "closed"), made(b, "fail", "open: 23"),
                made(a, "pass", "closed"), made(a, "fail", "open: 23"), odd]  # fmt: skip
    store.finish_run("r1", "complete", T0 + timedelta(minutes=1), findings)
    loaded = store.load("r1").findings
    assert list(loaded) == findings
    assert [(f.system, f.host, f.status) for f in loaded] == [
        ("sys-a", "127.0.0.4", "pass"), ("sys-b", "127.0.0.5", "pass"), ("sys-b", "127.0.0.5", "fail"),
        ("sys-a", "127.0.0.4", "pass"), ("sys-a", "127.0.0.4", "fail"), ("sys-a", odd.host, "pass"),
    ]  # fmt: skip


# --- schema revisions, unreadable rows, leases (issues 13 and 18) ----------------------------

DATA = Path(__file__).parent / "data"
V1_DUMP = DATA / "store-v1.sql"
V3_DUMP = DATA / "store-v3.sql"
"""SQLite stores of the scheme before Alembic: the first release (no version) and schema 3."""


def old_store(path: Path, dump: Path = V1_DUMP) -> Path:
    with sqlite3.connect(path) as db:
        db.executescript(dump.read_text(encoding="utf-8"))
    return path


def test_a_store_of_the_first_release_is_migrated_and_its_run_still_loads(tmp_path: Path) -> None:
    path = old_store(tmp_path / "v1.db")
    store = Store(path, create=False)
    [run] = store.runs()
    stored = store.load(run.id)
    assert stored.info.status == "complete"
    assert [f.rule_id for f in stored.findings] == ["E2E-TELNET", "E2E-DECLARED"]
    assert raw(path, "SELECT version_num FROM alembic_version") == [(SCHEMA_HEAD,)]
    # A migrated store takes new runs (with their leases) like a new one.
    t = target("127.0.0.4")
    store.create_run(info("r-new", T0 + timedelta(days=30)), [t.system], [t])
    assert store.runs()[0].id == "r-new"


def test_a_store_of_schema_3_keeps_its_runs_texts_and_notifications(tmp_path: Path) -> None:
    path = old_store(tmp_path / "v3.db", V3_DUMP)
    store = Store(path, create=False)
    [run] = store.runs()
    stored = store.load(run.id)
    assert (run.id, stored.info.status, len(stored.findings), len(stored.observations)) == (
        "20261130T010000Z-c0ffee", "complete", 4, 5,
    )  # fmt: skip
    assert all(f.title.en and f.remediation.en for f in stored.findings)
    assert [n.recipient for n in store.notifications(run.id)] == ["so-1@example.invalid"]
    assert raw(path, "SELECT count(*) FROM findings WHERE rule_text IS NULL") == [(0,)]
    # An attt from before Alembic reads user_version up to 3: it refuses this store as newer.
    assert raw(path, "PRAGMA user_version") == [(4,)]
    # Texts still referred to survive a prune; the run is removed with everything it had.
    assert store.prune(lambda runs: set()).removed == ()
    assert len(store.load(run.id).findings) == 4
    assert [r.id for r in store.prune(lambda runs: {r.id for r in runs}).removed] == [run.id]
    assert raw(path, "SELECT count(*) FROM rule_texts") == [(0,)]


def test_the_migrations_build_the_schema_the_code_declares(location: Path | str) -> None:
    """The chain run from nothing builds `_metadata`, which is what a new store is given at once
    (`_create`); both end stamped at the head."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from attt.scanner.store import _metadata, _upgrade

    assert ScriptDirectory(str(MIGRATIONS)).get_current_head() == SCHEMA_HEAD
    engine = sa.create_engine(locate(location).url)
    with engine.begin() as conn:
        _upgrade(conn, None, str)
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), _metadata) == []
        chain = _schema(conn)
    with engine.begin() as conn:
        for table in (
            "findings",
            "probes",
            "observations",
            "notifications",
            "rule_texts",
            "runs",
            "alembic_version",
        ):
            conn.execute(sa.text(f"DROP TABLE {table}"))
    Store(location).close()
    with engine.connect() as conn:
        assert _schema(conn) == chain
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == SCHEMA_HEAD
    engine.dispose()


def _schema(conn: sa.Connection) -> dict[str, object]:
    """Every table's columns (name, type, nullable, key), primary key and foreign keys."""
    seen = sa.inspect(conn)
    return {
        table: (
            [
                (c["name"], str(c["type"]), c["nullable"], c.get("primary_key"))
                for c in seen.get_columns(table)
            ],
            seen.get_pk_constraint(table),
            seen.get_foreign_keys(table),
        )
        for table in sorted(seen.get_table_names())
    }


def test_migrations_ship_inside_the_package() -> None:
    assert {p.name for p in (MIGRATIONS / "versions").glob("rev*.py")} >= {"rev0001_first_release.py"}
    assert (MIGRATIONS / "env.py").is_file()


def test_a_store_of_a_newer_schema_is_refused_in_one_line(location: Path | str, tmp_path: Path) -> None:
    Store(location).close()
    raw(location, "UPDATE alembic_version SET version_num = '0999'")
    with pytest.raises(StoreError, match=r"written by a newer attt \(revision 0999;") as raised:
        Store(location)
    assert "\n" not in str(raised.value)
    future = tmp_path / "future.db"
    with sqlite3.connect(future) as db:
        db.execute("PRAGMA user_version=5")
    with pytest.raises(StoreError, match="written by a newer attt"):
        Store(future)


_OPEN_AT = """
import sys, time
from attt.scanner.store import Store
start = float(sys.argv[2])
time.sleep(max(0.0, start - time.time()))
Store(sys.argv[1]).close()
print("opened")
"""


def test_two_processes_opening_a_new_store_at_once_both_open_it(location: Path | str) -> None:
    """The migration lock: the second waits for the first's migration, then finds the head."""
    import time

    start = str(time.time() + 2)
    children = [
        subprocess.Popen([sys.executable, "-c", _OPEN_AT, str(location), start], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]  # fmt: skip
    results = [child.communicate(timeout=60) for child in children]
    assert [child.returncode for child in children] == [0, 0], results
    assert raw(location, "SELECT version_num FROM alembic_version") == [(SCHEMA_HEAD,)]


def test_a_run_row_from_a_newer_attt_is_skipped_with_one_warning(store: Store) -> None:
    t = target("127.0.0.4")
    store.create_run(info("r-old", T0), [t.system], [t])
    store.create_run(info("r-future", T0 + timedelta(hours=1)), [t.system], [t])
    [(body,)] = raw(store, "SELECT info FROM runs WHERE id = 'r-future'")
    extended = json.loads(body) | {"written_by": "attt 9"}
    raw(store, "UPDATE runs SET info = :info WHERE id = 'r-future'", info=json.dumps(extended))
    warnings: list[str] = []
    reader = Store(store.location, warn=warnings.append)
    assert [r.id for r in reader.runs()] == ["r-old"]
    assert [r.id for r in reader.runs()] == ["r-old"]
    assert [i.id for i, _ in reader.earlier_runs(info("r-now", T0 + timedelta(hours=2)))] == ["r-old"]
    assert len(warnings) == 1 and "r-future" in warnings[0] and "skipped" in warnings[0]
    with pytest.raises(StoreError, match=r"r-future .* cannot be read by this version"):
        reader.load("r-future")


def test_reading_never_creates_a_store(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no run store at"):
        Store(tmp_path / "typo" / "x.db", create=False)
    assert not (tmp_path / "typo").exists()


def test_reading_never_creates_tables_in_an_empty_database(postgres: Postgres) -> None:
    url = postgres.url(postgres.database())
    with pytest.raises(StoreError, match=r"no run store in postgresql://attt@127\.0\.0\.1:"):
        Store(url, create=False)
    assert raw(url, "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'") == [(0,)]


@pytest.mark.parametrize("url", [":memory:", "sqlite:///:memory:", "sqlite://", ""])
def test_an_in_memory_store_is_refused(url: str) -> None:
    with pytest.raises(StoreError, match="keeps nothing"):
        locate(url)


def test_a_live_run_cannot_be_claimed_but_a_dead_one_can(store: Store) -> None:
    t = target("127.0.0.4")
    helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        alive = Lease(helper.pid, socket.gethostname())
        store.create_run(info("r1"), [t.system], [t], lease=alive)
        with pytest.raises(RunBusyError, match=f"process {helper.pid}"):
            store.claim("r1")
    finally:
        helper.kill()
        helper.wait()
    store.claim("r1")  # its process is gone: the run is free
    assert store.load("r1").info.status == "running"


def test_a_lease_not_renewed_for_a_minute_is_dead_even_on_another_host(store: Store) -> None:
    t = target("127.0.0.4")
    store.create_run(info("r1"), [t.system], [t], lease=Lease(1, "elsewhere"))
    with pytest.raises(RunBusyError):
        store.claim("r1")
    stale = (datetime.now(UTC) - timedelta(seconds=LEASE_SECONDS + 1)).isoformat()
    raw(store, "UPDATE runs SET heartbeat = :stale", stale=stale)
    store.claim("r1")


def test_a_second_scan_of_the_same_inventory_is_refused_while_the_first_lives(store: Store) -> None:
    t = target("127.0.0.4")
    helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        lease = Lease(helper.pid, socket.gethostname())
        store.create_run(info("r1"), [t.system], [t], lease=lease, inventory="/srv/inv.yaml")
        with pytest.raises(RunBusyError, match=r"r1 of /srv/inv\.yaml is still running"):
            store.create_run(info("r2"), [t.system], [t], inventory="/srv/inv.yaml")
        store.create_run(info("r3"), [t.system], [t], inventory="/srv/other.yaml")
    finally:
        helper.kill()
        helper.wait()
    store.create_run(info("r4"), [t.system], [t], inventory="/srv/inv.yaml")


def test_claim_forgets_the_probes_to_redo(store: Store) -> None:
    a = target("127.0.0.4")
    store.create_run(info("r1"), [a.system], [a], lease=Lease(1, "elsewhere-long-gone"))
    store.record_probe("r1", "count", a, [Observation.failed("count", a, "nmap failed: b''")])
    store.record_probe("r1", "echo", a, [])
    raw(store, "UPDATE runs SET heartbeat = NULL")
    store.claim("r1", redo=[("count", "sys-a", "127.0.0.4")])
    assert store.probes_done("r1") == {("echo", "sys-a", "127.0.0.4"): ()}
    assert store.load("r1").observations == ()


def test_an_interrupted_run_is_not_resumed_while_another_scan_of_its_inventory_lives(store: Store) -> None:
    t = target("127.0.0.4")
    store.create_run(info("old"), [t.system], [t], lease=Lease(1, "gone"), inventory="/srv/inv.yaml")
    raw(store, "UPDATE runs SET heartbeat = NULL")
    helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        lease = Lease(helper.pid, socket.gethostname())
        store.create_run(
            info("new", T0 + timedelta(hours=1)), [t.system], [t], lease=lease, inventory="/srv/inv.yaml"
        )
        with pytest.raises(RunBusyError, match="run new of"):
            store.claim("old")
    finally:
        helper.kill()
        helper.wait()
    store.claim("old")
