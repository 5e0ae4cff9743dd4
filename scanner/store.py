"""The run store: runs, their observations (written as they arrive) and findings, kept in a SQLite
file (the embedded default) or a PostgreSQL database that several machines share.

Both hold one schema, written here with SQLAlchemy Core (`_metadata`) and carried forward by one
chain of Alembic migrations (`scanner/migrations/`), which run when a store is opened, under a lock
(the SQLite file's write lock; a PostgreSQL advisory lock), so two processes opening a new store at
once build it once. A new store is built from `_metadata` and stamped at the head, which is what
the chain builds from nothing (a test compares the two). A newer store than this attt knows is
refused. A SQLite file of the scheme before Alembic (`PRAGMA user_version` 1 to 3) is stamped at
its revision and carried forward.

A row this version cannot read (a run written by a newer attt) is skipped with a warning wherever
runs are listed, and is a one-line error only when that very run is asked for.

A running scan holds a lease on its run (process id, host name, heartbeat), so that a second
process neither resumes a run that is still alive nor starts a scan of an inventory that another
live scan holds (SPEC exit code 4), on this machine or, through a shared database, any other.
"""

import atexit
import itertools
import json
import os
import re
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, Literal

import sqlalchemy as sa
from pydantic import BaseModel, ValidationError
from sqlalchemy.engine import URL, Connection, Engine, make_url

from attt.scanner.changes import choose_baseline
from attt.scanner.errors import RunBusyError, StoreError, StoreWriteError
from attt.scanner.models.finding import Finding, FindingCodec, SharedText
from attt.scanner.models.observation import (
    DATA_MODELS,
    Observation,
    ProbeKey,
    observed_by,
)
from attt.scanner.models.report import RunInfo, RunStatus
from attt.scanner.models.target import SystemInfo, Target
from attt.scanner.stored import (
    SYSTEMS,
    TARGETS,
    EndedProbe,
    Lease,
    SerialisedProbe,
    SerialisedRun,
    StoredRun,
    serialise_findings,
    serialise_probes,
    serialise_run,
)

_metadata = sa.MetaData()
runs_table = sa.Table(
    "runs",
    _metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("started", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("info", sa.Text, nullable=False),
    sa.Column("systems", sa.Text, nullable=False),
    sa.Column("targets", sa.Text, nullable=False),
    sa.Column("lease_pid", sa.Integer),
    sa.Column("lease_host", sa.Text),
    sa.Column("heartbeat", sa.Text),
    sa.Column("inventory", sa.Text),
)
observations_table = sa.Table(
    "observations",
    _metadata,
    sa.Column("run_id", sa.Text, sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("system", sa.Text, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
)
probes_table = sa.Table(
    "probes",
    _metadata,
    sa.Column("run_id", sa.Text, sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("check_name", sa.Text, primary_key=True),
    sa.Column("system", sa.Text, primary_key=True),
    sa.Column("host", sa.Text, primary_key=True),
)
findings_table = sa.Table(
    "findings",
    _metadata,
    sa.Column("run_id", sa.Text, sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("rule_text", sa.Text),
)
notifications_table = sa.Table(
    "notifications",
    _metadata,
    sa.Column("run_id", sa.Text, sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("channel", sa.Text, primary_key=True),
    sa.Column("recipient", sa.Text, primary_key=True),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Column("at", sa.Text, nullable=False),
)
rule_texts_table = sa.Table(
    "rule_texts",
    _metadata,
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("body", sa.Text, nullable=False),
)
_alembic_version = sa.Table(
    "alembic_version",
    sa.MetaData(),
    sa.Column("version_num", sa.String(32), nullable=False),
    sa.PrimaryKeyConstraint("version_num", name="alembic_version_pkc"),
)
"""Alembic's own table, as Alembic creates it, for a new store stamped without Alembic (`_create`)."""
# Short names for the queries below.
_runs, _obs, _probes, _findings = runs_table, observations_table, probes_table, findings_table
_notes, _texts = notifications_table, rule_texts_table

# The statements a scan runs once per probe, built once: building a Core statement costs more
# than SQLite takes to run it (a 1,500-system scan records about 3,000 probes).
_NEXT_SEQ: Final = sa.select(sa.func.coalesce(sa.func.max(_obs.c.seq), -1) + 1).where(
    _obs.c.run_id == sa.bindparam("run_id")
)
_INSERT_OBSERVATION: Final = _obs.insert()
_INSERT_PROBE: Final = _probes.insert()

MIGRATIONS: Final = Path(__file__).with_name("migrations")
SCHEMA_HEAD: Final = "0004"
"""The newest Alembic revision in MIGRATIONS (a test checks they agree): a store already there is
opened without loading Alembic at all."""
_LEGACY_REVISIONS: Final = {1: "0001", 2: "0002", 3: "0003"}
"""`PRAGMA user_version` of a SQLite store before Alembic -> the revision that built the same schema
(the first release set no version: 0 with a `runs` table is 1)."""
_ALEMBIC_ERA: Final = 4
"""The `user_version` every migrated SQLite store carries, so that an attt from before Alembic
(which reads up to 3) refuses it as newer instead of writing rows without their new columns."""
_MIGRATION_LOCK: Final = 0x61747474_6D696772
"""PostgreSQL advisory lock key ("atttmigr") held while a store is migrated."""
_LEASE_LOCK: Final = 0x61747474_6C656173
"""PostgreSQL advisory lock key ("atttleas") held while a run is created or claimed: the check
that no live scan holds the inventory and the insert of the new lease are one step for every
machine sharing the database, as SQLite's write lock makes them for every process on one."""

LEASE_SECONDS: Final = 60.0
"""A lease not renewed for this long is dead, whatever process it names."""
DEFAULT_BUSY_SECONDS: Final = 30.0
"""How long a write waits for another process's lock before the scan stops writing: long enough
for `attt history` or a backup copying the file, short enough that a stuck lock is reported."""
CONNECT_SECONDS: Final = 10
"""How long opening a PostgreSQL store waits for the server (unless the URL's connect_timeout
says otherwise): an address that drops packets is an error, not a hang."""


Warn = Callable[[str], None]
"""Told about each row that is skipped, once, as one line."""


@dataclass(frozen=True)
class Location:
    """Where a store lives: a SQLite file or a PostgreSQL database. `str()` is how it is shown,
    never with a password."""

    url: URL
    """The SQLAlchemy URL to connect with (a password given in `--db` is in it: never print it)."""

    @property
    def path(self) -> Path | None:
        """The SQLite file; None for PostgreSQL."""
        return Path(self.url.database or "") if self.url.get_backend_name() == "sqlite" else None

    def __str__(self) -> str:
        if (path := self.path) is not None:
            return str(path)
        shown = URL.create(
            "postgresql",
            self.url.username,
            None,
            self.url.host,
            self.url.port,
            self.url.database,
            {k: v for k, v in self.url.query.items() if k != "password"},
        )
        return shown.render_as_string(hide_password=False)


def default_db_path() -> Path:
    """`$XDG_DATA_HOME/attt/attt.db` (`~/.local/share/attt/attt.db`)."""
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "attt" / "attt.db"


def locate(db: str | Path | None) -> Location:
    """`--db` (else `$ATTT_DB`, else the default file): a path, `sqlite:///PATH`, or
    `postgresql://[USER[:PASSWORD]@][HOST][:PORT]/DBNAME[?...]` (libpq's PGPASSWORD, .pgpass and
    other environment apply to what the URL leaves out).

    An in-memory database is refused: a run kept there could never be resumed, re-rendered or
    compared, which is what the store is for."""
    if isinstance(db, Path):
        return _sqlite(db)
    value = db if db is not None else os.environ.get("ATTT_DB")
    if value is None:
        return _sqlite(default_db_path())
    scheme = value.split("://", 1)[0] if "://" in value else ""
    if scheme.startswith(("postgresql", "postgres")):
        return _postgresql(value, scheme)
    path = value.removeprefix("sqlite:///") if value.startswith("sqlite:///") else value
    if (scheme == "sqlite" and not value.startswith("sqlite:///")) or path in ("", ":memory:"):
        raise StoreError(f"--db {value!r} keeps nothing after attt exits: give a file path")
    if "://" in path or path.startswith("file:"):
        raise StoreError(
            f"unsupported store URL {_redacted(value)!r}: give a file path, sqlite:///PATH"
            " or postgresql://USER@HOST:PORT/DBNAME"
        )
    return _sqlite(Path(path))


def _sqlite(path: Path) -> Location:
    return Location(URL.create("sqlite+pysqlite", database=str(path)))


def _postgresql(value: str, scheme: str) -> Location:
    if scheme not in ("postgresql", "postgres", "postgresql+psycopg"):
        raise StoreError(
            f"unsupported store URL scheme {scheme!r}: attt reaches PostgreSQL through psycopg 3,"
            " write postgresql://USER@HOST:PORT/DBNAME"
        )
    try:
        url = make_url("postgresql+psycopg://" + value.split("://", 1)[1])
    except (sa.exc.ArgumentError, ValueError) as exc:
        raise StoreError(f"--db {_redacted(value)!r} is not a PostgreSQL URL: {exc}") from None
    if not url.database:
        raise StoreError(f"--db {Location(url)} names no database: end it with /DBNAME")
    return Location(url)


def _redacted(value: str) -> str:
    """A URL as the user wrote it, with anything that may be a password starred out."""
    value = re.sub(r"(://[^/?#@:]*):[^/?#@]*@", r"\1:***@", value)
    return re.sub(r"(?i)(password=)[^&]*", r"\1***", value)


def busy_seconds() -> float:
    """`$ATTT_DB_BUSY_TIMEOUT` (seconds), else DEFAULT_BUSY_SECONDS."""
    value = os.environ.get("ATTT_DB_BUSY_TIMEOUT", "")
    try:
        return max(0.0, float(value)) if value else DEFAULT_BUSY_SECONDS
    except ValueError:
        raise StoreError(f"$ATTT_DB_BUSY_TIMEOUT must be a number of seconds, not {value!r}") from None


@dataclass(frozen=True)
class NotificationRecord:
    """One message about one run: sent, or failed after every attempt (and why)."""

    channel: str
    recipient: str
    status: Literal["sent", "failed"]
    attempts: int
    detail: str
    at: datetime


@dataclass(frozen=True)
class Pruned:
    removed: tuple[RunInfo, ...]
    kept_as_baseline: tuple[str, ...]
    bytes_before: int
    bytes_after: int


class Store:
    """One SQLite file or PostgreSQL database. Safe to share between the runner's threads (one
    lock around every use).

    `create=False` (reading commands) never creates a store: a mistyped `--db` is an error, not a
    new empty store (a PostgreSQL database itself is never created by attt, only its tables)."""

    def __init__(
        self,
        where: Location | Path | str,
        data_models: Mapping[str, type[BaseModel]] | None = None,
        *,
        create: bool = True,
        warn: Warn | None = None,
    ) -> None:
        """`data_models` (`Registry.data_models`) types each stored observation's data as its
        check's model; data of a check not given is kept whole as `OpaqueData`."""
        self.location = where if isinstance(where, Location) else locate(where)
        self.path = self.location.path
        self.where = str(self.location)
        self._data_context = {DATA_MODELS: dict(data_models or {})}
        self._warn = warn or (lambda _line: None)
        self._warned: set[str] = set()
        self._lock = threading.Lock()
        self._postgres = self.path is None
        if self.path is not None and not create and not self.path.is_file():
            raise StoreError(f"no run store at {self.path} (nothing was scanned with this --db)")
        busy = busy_seconds()
        try:
            if self.path is not None and create:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self._engine = (
                _postgresql_engine(self.location, busy)
                if self._postgres
                else _sqlite_engine(self.location, busy)
            )
            self._migrate(create)
        except sa.exc.SQLAlchemyError as exc:
            raise StoreError(f"cannot open the run store {self.where}: {_cause(exc)}") from None
        except OSError as exc:
            raise StoreError(f"cannot open the run store {self.where}: {exc.strerror or exc}") from None

    def _migrate(self, create: bool) -> None:
        """Bring the store to SCHEMA_HEAD. A look without the lock first: a store at the head (the
        common case) costs a few small queries and never loads Alembic. Otherwise, under the
        migration lock, look again (another process may have just done it) and migrate in the same
        transaction."""
        with self._engine.connect() as conn:
            with conn.begin():
                if self._revision(conn, create) == SCHEMA_HEAD:
                    return
            conn.execution_options(attt_write=True)
            with conn.begin():
                if self._postgres:
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
                revision = self._revision(conn, create)
                if revision is None:
                    _create(conn)
                elif revision != SCHEMA_HEAD:
                    _upgrade(conn, revision, self._newer)
                if not self._postgres:
                    conn.exec_driver_sql(f"PRAGMA user_version={_ALEMBIC_ERA}")

    def _revision(self, conn: Connection, create: bool) -> str | None:
        """The store's revision: from Alembic's table, else from the scheme before it (SQLite); None
        for an empty store. Refuses a store of a newer attt, and an empty one when not creating."""
        tables = set(sa.inspect(conn).get_table_names())
        legacy = 0
        if not self._postgres:
            legacy = conn.exec_driver_sql("PRAGMA user_version").scalar_one()
            if legacy > _ALEMBIC_ERA:
                raise StoreError(self._newer(f"store schema {legacy}"))
        if "alembic_version" in tables:
            revision = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
            if revision is not None:
                return str(revision)
        if legacy == 0 and "runs" in tables:
            legacy = 1  # the first release set no version
        if legacy == 0 and not create:
            raise StoreError(f"no run store in {self.where} (nothing was scanned with this --db)")
        return _LEGACY_REVISIONS.get(legacy)

    def _newer(self, what: str) -> str:
        return (
            f"the run store {self.where} was written by a newer attt ({what}; this attt knows up to"
            f" revision {SCHEMA_HEAD}): upgrade attt or give another --db"
        )

    def close(self) -> None:
        self._engine.dispose()

    @contextmanager
    def _transaction(self, lease_lock: bool = False, checkpoint_later: bool = False) -> Iterator[Connection]:
        """One write transaction; a full disk, a lock held past the busy timeout or a lost server is
        a StoreWriteError naming the store, and the transaction leaves no trace. With `lease_lock`,
        every process sharing the store takes its turn (leases are checked and taken at once).
        With `checkpoint_later`, a SQLite commit leaves its write-ahead log to `_checkpoint_soon`."""
        with self._lock:
            try:
                with self._engine.connect() as conn:
                    conn.execution_options(attt_write=True, attt_checkpoint_later=checkpoint_later)
                    with conn.begin():
                        if lease_lock and self._postgres:
                            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LEASE_LOCK})
                        yield conn
            except sa.exc.SQLAlchemyError as exc:
                raise StoreWriteError(f"cannot write to the run store {self.where}: {_cause(exc)}") from None

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        """One read transaction: the queries inside see one state of the store."""
        with self._lock:
            try:
                with self._engine.connect() as conn, conn.begin():
                    yield conn
            except sa.exc.SQLAlchemyError as exc:
                raise StoreError(f"cannot read the run store {self.where}: {_cause(exc)}") from None

    def _insert(self, table: sa.Table) -> Any:
        """INSERT with the dialect's ON CONFLICT clause available (each dialect's module is loaded
        only by a store of its kind)."""
        if self._postgres:
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
        return insert(table)

    def create_run(
        self,
        info: RunInfo,
        systems: Iterable[SystemInfo],
        targets: Iterable[Target],
        lease: Lease | None = None,
        inventory: str | None = None,
    ) -> None:
        """Store a new run, leased to `lease`. With `inventory`, refuse (RunBusyError) while a
        live run of the same inventory holds its lease: two scans of one inventory at once
        would interleave and double the load on every host."""
        self.create_serialised(serialise_run(info, systems, targets), lease or Lease.mine(), inventory)

    def create_serialised(self, run: SerialisedRun, lease: Lease, inventory: str | None = None) -> None:
        """`create_run`, the run already in its stored form (`serialise_run`)."""
        with self._transaction(lease_lock=True) as db:
            _refuse_live_scan(db, inventory, run.id)
            db.execute(
                _runs.insert().values(
                    id=run.id,
                    started=run.started,
                    status=run.status,
                    info=run.info,
                    systems=run.systems,
                    targets=run.targets,
                    lease_pid=lease.pid,
                    lease_host=lease.host,
                    heartbeat=_now(),
                    inventory=inventory,
                )
            )

    def claim(
        self,
        run_id: str,
        redo: Iterable[ProbeKey] = (),
        lease: Lease | None = None,
        probed_from: Mapping[str, tuple[str, ...]] | None = None,
    ) -> None:
        """Take over an interrupted run for `--resume`: refuse (RunBusyError) while the process
        that runs it is alive, else mark it running under `lease`, forgetting the probes in
        `redo` (and what they saw) so that they run again. `probed_from` replaces the run's
        planned outside probes (`RunInfo.probed_from`) when given."""
        lease = lease or Lease.mine()
        with self._transaction(lease_lock=True) as db:
            row = db.execute(
                sa.select(
                    _runs.c.lease_pid,
                    _runs.c.lease_host,
                    _runs.c.heartbeat,
                    _runs.c.inventory,
                    _runs.c.targets,
                ).where(_runs.c.id == run_id)
            ).first()
            if row is None:
                raise StoreError(f"no run {run_id!r} in {self.where}")
            pid, host, beat, inventory, targets = row
            if (pid, host) != (lease.pid, lease.host) and _live(pid, host, beat):
                raise RunBusyError(
                    f"run {run_id} is still running (process {pid} on {host}, heartbeat {beat});"
                    " it cannot be resumed while it runs"
                )
            _refuse_live_scan(db, inventory, run_id)
            # The probe from an outside vantage (`tls@internet`) and the host's own probe observe
            # the same check: each forgets only its own observations.
            zones = {t.key: t.zone for t in TARGETS.validate_json(targets)}
            _forget(db, run_id, set(redo), zones, self._info(db, run_id).vantage)
            update: dict[str, Any] = {"status": "running", "finished": None}
            if probed_from is not None:
                update["probed_from"] = dict(probed_from)
            info = self._info(db, run_id).model_copy(update=update)
            db.execute(
                _runs.update()
                .where(_runs.c.id == run_id)
                .values(status=info.status, info=info.model_dump_json(), lease_pid=lease.pid,
                        lease_host=lease.host, heartbeat=_now())
            )  # fmt: skip

    def heartbeat(self, run_id: str, lease: Lease | None = None) -> None:
        """Renew the lease (only if it is still ours)."""
        lease = lease or Lease.mine()
        with self._transaction() as db:
            db.execute(
                _runs.update()
                .where(_runs.c.id == run_id, _runs.c.lease_pid == lease.pid, _runs.c.lease_host == lease.host)
                .values(heartbeat=_now())
            )

    def record_probe(
        self, run_id: str, check: str, target: Target, observations: Sequence[Observation]
    ) -> None:
        """Commit what one probe saw, and that it ended, at once: an interrupted scan keeps it
        and a resumed one does not repeat it."""
        self.record_probes(run_id, [(check, target, observations)])

    def record_probes(self, run_id: str, probes: Sequence[EndedProbe]) -> None:
        """Commit what several probes saw, and that each ended, in one transaction: each probe's
        observations and its end are kept or lost together, as with `record_probe`, for the cost
        of one commit (a scan commits the probes that ended while it wrote the previous ones)."""
        self.record_serialised(run_id, serialise_probes(probes))

    def record_serialised(self, run_id: str, probes: Sequence["SerialisedProbe"]) -> None:
        """`record_probes`, each observation already in its stored form (`serialise_probes`)."""
        if not probes:
            return
        with self._transaction() as db:
            seen = [o for _, _, _, observations in probes for o in observations]
            if seen:
                seq = db.execute(_NEXT_SEQ, {"run_id": run_id}).scalar_one()
                db.execute(
                    _INSERT_OBSERVATION,
                    [
                        {"run_id": run_id, "seq": seq + i, "system": system, "body": body}
                        for i, (system, body) in enumerate(seen)
                    ],
                )
            db.execute(
                _INSERT_PROBE,
                [
                    {"run_id": run_id, "check_name": check, "system": system, "host": host}
                    for check, system, host, _ in probes
                ],
            )

    def probes_done(self, run_ref: str) -> dict[ProbeKey, tuple[Observation, ...]]:
        """(check, system, host) -> observations, for every probe of the run that ended."""
        stored = self.load(run_ref)
        by_probe: dict[ProbeKey, list[Observation]] = {}
        zones = {t.key: t.zone for t in stored.targets}
        for obs in stored.observations:
            key = observed_by(obs.check, obs.zone, zones.get((obs.system, obs.host)), stored.info.vantage)
            by_probe.setdefault((key, obs.system, obs.host), []).append(obs)
        return {key: tuple(by_probe.get(key, ())) for key in stored.probes}

    def mark(self, run_id: str, status: RunStatus, finished: datetime) -> RunInfo:
        """Record how the run ended, keep its findings, and release its lease."""
        with self._transaction() as db:
            return self._end(db, run_id, status, finished)

    def finish_run(
        self,
        run_id: str,
        status: RunStatus,
        finished: datetime,
        findings: Iterable[Finding],
        codec: FindingCodec | None = None,
    ) -> RunInfo:
        """Replace the run's findings, record how it ended, and release its lease. `codec` holds
        the findings already serialised (the scan's judge encodes them as it goes)."""
        return self.finish_serialised(run_id, status, finished, *serialise_findings(findings, codec))

    def stage_findings(self, run_id: str, findings: Sequence[Finding], codec: FindingCodec) -> None:
        """Nothing: a store kept in the scan's own process takes a run's findings when it ends
        (`finish_run`); `StoreHost` sends them ahead to its process."""

    def finish_serialised(
        self,
        run_id: str,
        status: RunStatus,
        finished: datetime,
        rows: Sequence[tuple[str, str]],
        texts: Mapping[str, str],
    ) -> RunInfo:
        """`finish_run`, the findings already in their stored form (`serialise_findings`)."""
        with self._transaction(checkpoint_later=True) as db:
            info = self._end(db, run_id, status, finished)
            db.execute(_findings.delete().where(_findings.c.run_id == run_id))
            if texts:
                db.execute(
                    self._insert(_texts).on_conflict_do_nothing(index_elements=["key"]),
                    [{"key": key, "body": texts[key]} for key in sorted(texts)],
                )
            if rows:
                _insert_many(db, _findings, ("run_id", "seq", "body", "rule_text"),
                             [(run_id, i, row, text) for i, (row, text) in enumerate(rows)])  # fmt: skip
        self._checkpoint_soon()
        return info

    def _checkpoint_soon(self) -> None:
        """Copy a SQLite store's write-ahead log into its file on a thread of its own, while the
        report is written. A province's findings are megabytes of log: the checkpoint SQLite runs
        inside the commit that passes 1,000 pages took a fifth of the run's closing (0.05 s of
        0.22 at 1,000 hosts), and the report does not need it. The process waits for it before it
        exits (`_await_checkpoints`); one cut short by a kill leaves a consistent log, which the
        next write's own checkpoint copies."""
        if self._postgres:
            return
        thread = threading.Thread(target=self._checkpoint, name="attt-checkpoint", daemon=True)
        with _CHECKPOINTS_LOCK:
            _CHECKPOINTS.append(thread)
        thread.start()

    def _checkpoint(self) -> None:
        # The driver's own connection, outside any transaction (a checkpoint cannot run inside
        # one); PASSIVE never waits on, nor blocks, the readers and writers of the moment.
        with suppress(sa.exc.SQLAlchemyError, sqlite3.Error):
            raw = self._engine.raw_connection()
            try:
                raw.cursor().execute("PRAGMA wal_checkpoint(PASSIVE)")
            finally:
                raw.close()

    def _end(self, db: Connection, run_id: str, status: RunStatus, finished: datetime) -> RunInfo:
        info = self._info(db, run_id).model_copy(update={"status": status, "finished": finished})
        db.execute(
            _runs.update()
            .where(_runs.c.id == run_id)
            .values(status=status, info=info.model_dump_json(), lease_pid=None, heartbeat=None)
        )
        return info

    def load(self, run_ref: str) -> StoredRun:
        with self._reading() as db:
            run_id = self._resolve(db, run_ref)
            row = db.execute(
                sa.select(_runs.c.info, _runs.c.systems, _runs.c.targets, _runs.c.lease_pid,
                          _runs.c.lease_host, _runs.c.heartbeat).where(_runs.c.id == run_id)
            ).one()  # fmt: skip
            observations = (
                db.execute(sa.select(_obs.c.body).where(_obs.c.run_id == run_id).order_by(_obs.c.seq))
                .scalars()
                .all()
            )
            findings = db.execute(
                sa.select(_findings.c.body, _findings.c.rule_text)
                .where(_findings.c.run_id == run_id)
                .order_by(_findings.c.seq)
            ).all()
            used = sa.select(_findings.c.rule_text).where(_findings.c.run_id == run_id)
            text_rows = db.execute(sa.select(_texts.c.key, _texts.c.body).where(_texts.c.key.in_(used))).all()
            probes = db.execute(
                sa.select(_probes.c.check_name, _probes.c.system, _probes.c.host).where(
                    _probes.c.run_id == run_id
                )
            ).all()
        try:
            texts = {key: dict(SharedText.model_validate_json(body)) for key, body in text_rows}
            alike: dict[str, Finding] = {}
            return StoredRun(
                info=_as_seen(RunInfo.model_validate_json(row[0]), *row[3:]),
                systems=SYSTEMS.validate_json(row[1]),
                targets=TARGETS.validate_json(row[2]),
                observations=tuple(
                    Observation.model_validate_json(b, context=self._data_context) for b in observations
                ),
                findings=tuple(_expand(body, key, texts, alike) for body, key in findings),
                probes=frozenset((str(c), str(s), str(h)) for c, s, h in probes),
            )
        except ValidationError as exc:
            raise StoreError(self._unreadable(run_id, exc)) from None

    def runs(self, system: str | None = None, limit: int = 20) -> list[RunInfo]:
        """Newest first; with `system`, only runs that observed that system. Runs this version
        cannot read are skipped, each with one warning."""
        query = sa.select(_runs.c.id, _runs.c.info, _runs.c.lease_pid, _runs.c.lease_host, _runs.c.heartbeat)
        if system is not None:
            query = query.where(_runs.c.id.in_(sa.select(_obs.c.run_id).where(_obs.c.system == system)))
        with self._reading() as db:
            rows = db.execute(query.order_by(_runs.c.started.desc(), _runs.c.id.desc())).all()
        readable: list[RunInfo] = []
        for run_id, body, *lease in rows:
            if len(readable) == limit:
                break
            if (info := self._readable_info(run_id, body)) is not None:
                readable.append(_as_seen(info, *lease))
        return readable

    def earlier_runs(self, info: RunInfo, limit: int = 100) -> list[tuple[RunInfo, tuple[Target, ...]]]:
        """Runs started before `info`, newest first, with the targets each scanned: the
        candidates for the baseline a report compares itself with. Runs this version cannot
        read are skipped, each with one warning."""
        with self._reading() as db:
            rows = db.execute(
                sa.select(_runs.c.id, _runs.c.info, _runs.c.targets)
                .where(_runs.c.started < info.started.isoformat())
                .order_by(_runs.c.started.desc(), _runs.c.id.desc())
                .limit(limit)
            ).all()
        earlier: list[tuple[RunInfo, tuple[Target, ...]]] = []
        for run_id, body, targets in rows:
            readable = self._readable_info(run_id, body)
            if readable is None:
                continue
            try:
                earlier.append((readable, TARGETS.validate_json(targets)))
            except ValidationError as exc:
                self._skip(run_id, exc)
        return earlier

    def _readable_info(self, run_id: str, body: str) -> RunInfo | None:
        try:
            return RunInfo.model_validate_json(body)
        except ValidationError as exc:
            self._skip(run_id, exc)
            return None

    def _skip(self, run_id: str, exc: ValidationError) -> None:
        line = self._unreadable(run_id, exc) + ": skipped"
        if line not in self._warned:
            self._warned.add(line)
            self._warn(line)

    def _unreadable(self, run_id: str, exc: ValidationError) -> str:
        return (
            f"run {run_id} in {self.where} cannot be read by this version of attt: "
            f"{exc.error_count()} field(s) do not fit, first at {_where(exc)}"
        )

    def notifications(self, run_id: str) -> list[NotificationRecord]:
        with self._reading() as db:
            rows = db.execute(
                sa.select(_notes.c.channel, _notes.c.recipient, _notes.c.status, _notes.c.attempts,
                          _notes.c.detail, _notes.c.at)
                .where(_notes.c.run_id == run_id)
                .order_by(_notes.c.channel, _notes.c.recipient)
            ).all()  # fmt: skip
        return [NotificationRecord(c, r, s, a, d, datetime.fromisoformat(t)) for c, r, s, a, d, t in rows]

    def record_notification(self, run_id: str, record: NotificationRecord) -> None:
        values = {"status": record.status, "attempts": record.attempts, "detail": record.detail,
                  "at": record.at.isoformat()}  # fmt: skip
        with self._transaction() as db:
            db.execute(
                self._insert(_notes)
                .values(run_id=run_id, channel=record.channel, recipient=record.recipient, **values)
                .on_conflict_do_update(index_elements=["run_id", "channel", "recipient"], set_=values)
            )

    def prune(self, remove: Callable[[Sequence[RunInfo]], set[str]]) -> Pruned:
        """Delete the runs `remove` picks from all runs (newest first), except any run that a kept
        run uses as its baseline (`choose_baseline`, as its reports do) and any run still running;
        then give the space back (VACUUM)."""
        with self._reading() as db:
            rows = db.execute(
                sa.select(_runs.c.id, _runs.c.info, _runs.c.targets).order_by(
                    _runs.c.started.desc(), _runs.c.id.desc()
                )
            ).all()
        # A run this version cannot read is never pruned by it (it may be a newer attt's).
        runs = [
            (info, TARGETS.validate_json(t))
            for run_id, i, t in rows
            if (info := self._readable_info(run_id, i)) is not None
        ]
        everything = [info for info, _ in runs]
        chosen = remove(everything) - {r.id for r in everything if r.status == "running"}
        kept = [(info, targets) for info, targets in runs if info.id not in chosen]
        baselines = {
            b for info, targets in kept if (b := choose_baseline(info, targets, self.earlier_runs(info))[0])
        }
        spared = tuple(sorted(chosen & baselines))
        doomed = [r.id for r in everything if r.id in chosen and r.id not in baselines]
        before = self._size()
        with self._transaction() as db:
            for table in (_notes, _findings, _probes, _obs):
                db.execute(table.delete().where(table.c.run_id.in_(doomed)))
            db.execute(_runs.delete().where(_runs.c.id.in_(doomed)))
            in_use = sa.select(_findings.c.rule_text).where(_findings.c.rule_text.is_not(None))
            db.execute(_texts.delete().where(_texts.c.key.not_in(in_use)))
        self._vacuum()
        return Pruned(tuple(r for r in everything if r.id in doomed), spared, before, self._size())

    def _vacuum(self) -> None:
        """VACUUM runs outside any transaction, on both databases."""
        statements = (
            ["PRAGMA wal_checkpoint(TRUNCATE)", "VACUUM", "PRAGMA wal_checkpoint(TRUNCATE)"]
            if not self._postgres
            else ["VACUUM " + ", ".join(t.name for t in _metadata.sorted_tables)]
        )
        with self._lock:
            try:
                with self._engine.connect() as conn:
                    conn.execution_options(isolation_level="AUTOCOMMIT")
                    for statement in statements:
                        conn.exec_driver_sql(statement)
            except sa.exc.SQLAlchemyError as exc:
                raise StoreWriteError(f"cannot write to the run store {self.where}: {_cause(exc)}") from None

    def _size(self) -> int:
        if self.path is not None:
            return sum(p.stat().st_size for p in (self.path, Path(f"{self.path}-wal")) if p.exists())
        sizes = " + ".join(f"pg_total_relation_size('{t.name}')" for t in _metadata.sorted_tables)
        with self._reading() as db:
            return int(db.execute(sa.text(f"SELECT {sizes}")).scalar_one())

    def _resolve(self, db: Connection, run_ref: str) -> str:
        """A full run id, a unique prefix of one, or `latest`."""
        if run_ref == "latest":
            latest = db.execute(
                sa.select(_runs.c.id).order_by(_runs.c.started.desc(), _runs.c.id.desc()).limit(1)
            ).scalar()
            if latest is None:
                raise StoreError(f"the run store {self.where} holds no runs yet")
            return str(latest)
        ids = (
            db.execute(
                sa.select(_runs.c.id)
                .where(sa.or_(_runs.c.id == run_ref, _runs.c.id.startswith(run_ref, autoescape=True)))
                .limit(2)
            )
            .scalars()
            .all()
        )
        if run_ref in ids:
            return run_ref
        if len(ids) != 1:
            what = "no run" if not ids else "more than one run"
            raise StoreError(f"{what} matches {run_ref!r} in {self.where}")
        return str(ids[0])

    def _info(self, db: Connection, run_id: str) -> RunInfo:
        body = db.execute(sa.select(_runs.c.info).where(_runs.c.id == run_id)).scalar()
        if body is None:
            raise StoreError(f"no run {run_id!r} in {self.where}")
        try:
            return RunInfo.model_validate_json(body)
        except ValidationError as exc:
            raise StoreError(self._unreadable(run_id, exc)) from None


def _sqlite_engine(location: Location, busy: float) -> Engine:
    """One file, in WAL mode; attt says BEGIN itself, IMMEDIATE for a write (the file's write lock
    from the start, so a write never fails half-way on a lock) and deferred for a read."""
    engine = sa.create_engine(
        location.url,
        connect_args={"timeout": busy, "check_same_thread": False},
        hide_parameters=True,
    )

    @sa.event.listens_for(engine, "connect")
    def _connected(dbapi: Any, _record: object) -> None:
        dbapi.isolation_level = None  # no transactions begun by the driver behind attt's back
        dbapi.execute(f"PRAGMA busy_timeout={int(busy * 1000)}")
        _switch_to_wal(dbapi, busy)
        # Each probe commits as it ends; a sync per commit made the store the scan's bottleneck
        # (about 4 ms each, one at a time: 4 s per 1,000 hosts). In WAL mode a killed attt still
        # keeps every commit and the file stays consistent; only a power loss may drop the last
        # ones, and `attt scan --resume` probes those again.
        dbapi.execute("PRAGMA synchronous=NORMAL")

    @sa.event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        options = conn.get_execution_options()
        if options.get("isolation_level") != "AUTOCOMMIT":
            later = options.get("attt_checkpoint_later", False)
            conn.exec_driver_sql(f"PRAGMA wal_autocheckpoint={0 if later else _WAL_AUTOCHECKPOINT_PAGES}")
            conn.exec_driver_sql("BEGIN IMMEDIATE" if options.get("attt_write") else "BEGIN")

    return engine


_WAL_AUTOCHECKPOINT_PAGES: Final = 1000
"""SQLite's own default: a commit that leaves the log longer than this copies it into the file."""
_CHECKPOINTS: list[threading.Thread] = []
_CHECKPOINTS_LOCK = threading.Lock()
_CHECKPOINT_WAIT = 30.0
"""Seconds the process waits at exit for a checkpoint under way (a slow disk); then it leaves it
to the next write."""


@atexit.register
def _await_checkpoints() -> None:
    deadline = time.monotonic() + _CHECKPOINT_WAIT
    with _CHECKPOINTS_LOCK:
        pending, _CHECKPOINTS[:] = list(_CHECKPOINTS), []
    for thread in pending:
        thread.join(max(0.0, deadline - time.monotonic()))


def _switch_to_wal(dbapi: sqlite3.Connection, busy: float) -> None:
    """Put the file in WAL mode (it stays so). The switch needs the file to itself, and SQLite
    answers "database is locked" at once, without waiting out busy_timeout, while another process
    opens the same new file: two scans started together must both get in, so the switch is tried
    again until the busy budget is spent."""
    deadline = time.monotonic() + busy
    while True:
        try:
            dbapi.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.02)


def _postgresql_engine(location: Location, busy: float) -> Engine:
    """psycopg 3; what the URL leaves out comes from libpq's environment (PGPASSWORD, .pgpass,
    PGSSLMODE...). A lock (another scan's lease step, a migration) is waited for as long as
    `$ATTT_DB_BUSY_TIMEOUT`, as SQLite's file lock is."""
    args: dict[str, object] = {"application_name": "attt"}
    if "connect_timeout" not in location.url.query:
        args["connect_timeout"] = CONNECT_SECONDS
    engine = sa.create_engine(location.url, connect_args=args, hide_parameters=True, pool_size=2)

    @sa.event.listens_for(engine, "connect")
    def _connected(dbapi: Any, _record: object) -> None:
        with dbapi.cursor() as cursor:
            cursor.execute(f"SET lock_timeout = {int(busy * 1000)}")
        dbapi.commit()

    return engine


def _create(conn: Connection) -> None:
    """A new store: the schema the code declares, stamped at the head as Alembic stamps it. The
    migrations build the same from nothing (a test compares them); this way a scan with a new
    store does not load Alembic, a tenth of a second of its start."""
    _metadata.create_all(conn)
    _alembic_version.create(conn, checkfirst=True)
    conn.execute(_alembic_version.insert().values(version_num=SCHEMA_HEAD))


def _upgrade(conn: Connection, revision: str | None, newer: Callable[[str], str]) -> None:
    """Alembic, on the store's connection, inside its transaction: stamp a store from before
    Alembic at the revision of its schema, then upgrade to the head."""
    from alembic import command
    from alembic.config import Config
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = conn
    script = ScriptDirectory.from_config(config)
    if revision is not None:
        try:
            script.get_revision(revision)
        except CommandError:
            raise StoreError(newer(f"revision {revision}")) from None
        current = (
            conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
            if sa.inspect(conn).has_table("alembic_version")
            else None
        )
        if current is None:
            command.stamp(config, revision)
    command.upgrade(config, "head")


def _cause(exc: sa.exc.SQLAlchemyError) -> str:
    """What the database or its driver said, on one line (libpq's messages span several), without
    the statement or its parameters."""
    said = str(exc.orig) if isinstance(exc, sa.exc.DBAPIError) else str(exc)
    lines = [" ".join(line.split()) for line in said.splitlines() if line.strip()]
    return "; ".join(lines) or type(exc).__name__


def _refuse_live_scan(db: Connection, inventory: str | None, run_id: str) -> None:
    """RunBusyError when a live run other than `run_id` scans the same inventory file."""
    if inventory is None:
        return
    rows = db.execute(
        sa.select(_runs.c.id, _runs.c.lease_pid, _runs.c.lease_host, _runs.c.heartbeat).where(
            _runs.c.status == "running", _runs.c.inventory == inventory, _runs.c.id != run_id
        )
    ).all()
    for other, pid, host, beat in rows:
        if _live(pid, host, beat):
            raise RunBusyError(
                f"run {other} of {inventory} is still running (process {pid} on {host});"
                " wait for it, or stop it first"
            )


def _forget(
    db: Connection,
    run_id: str,
    redo: set[ProbeKey],
    zones: Mapping[tuple[str, str], str | None],
    local: str | None,
) -> None:
    """Delete the probes in `redo` and what they saw. The check and host of an observation live
    in its JSON body, read here rather than in SQL (the two databases spell JSON differently)."""
    if not redo:
        return
    for check, system, host in redo:
        db.execute(
            _probes.delete().where(
                _probes.c.run_id == run_id,
                _probes.c.check_name == check,
                _probes.c.system == system,
                _probes.c.host == host,
            )
        )
    systems = {system for _, system, _ in redo}
    rows = db.execute(
        sa.select(_obs.c.seq, _obs.c.system, _obs.c.body).where(
            _obs.c.run_id == run_id, _obs.c.system.in_(systems)
        )
    ).all()
    doomed = [seq for seq, system, body in rows if _probe_of(body, system, zones, local) in redo]
    if doomed:
        db.execute(_obs.delete().where(_obs.c.run_id == run_id, _obs.c.seq.in_(doomed)))


def _probe_of(
    body: str, system: str, zones: Mapping[tuple[str, str], str | None], local: str | None
) -> ProbeKey:
    """The probe an observation belongs to: the host's own, or an outside vantage's (`observed_by`)."""
    data = json.loads(body)
    host = str(data.get("host"))
    check = observed_by(str(data.get("check")), data.get("zone"), zones.get((system, host)), local)
    return (check, system, host)


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _as_seen(info: RunInfo, pid: int | None, host: str | None, heartbeat: str | None) -> RunInfo:
    """A run stored as running whose process is gone (killed, or stopped by a full disk before it
    could say so) is shown for what it is: incomplete, and free to resume."""
    if info.status == "running" and not _live(pid, host, heartbeat):
        return info.model_copy(update={"status": "incomplete"})
    return info


def _live(pid: int | None, host: str | None, heartbeat: str | None) -> bool:
    """Whether a lease still binds: renewed within LEASE_SECONDS and, on this host, its process
    exists. A process killed with -9 frees its runs at once; one on another host after a minute
    (whether a process lives can only be asked on its own host; clocks must agree, as NTP keeps
    them)."""
    if pid is None or heartbeat is None:
        return False
    try:
        age = datetime.now(UTC) - datetime.fromisoformat(heartbeat)
    except ValueError:
        return False
    if age > timedelta(seconds=LEASE_SECONDS):
        return False
    if host != socket.gethostname():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True


def _insert_many(
    db: Connection, table: sa.Table, columns: Sequence[str], rows: list[tuple[Any, ...]]
) -> None:
    """Rows of `columns` through the driver's own executemany, with the statement SQLAlchemy
    compiles for the table: its parameter handling, row by row, was a third of the time taken
    to store a province's findings."""
    compiled = table.insert().compile(dialect=db.dialect, column_keys=list(columns))
    if not compiled.positional:
        db.exec_driver_sql(str(compiled), [dict(zip(columns, row, strict=True)) for row in rows])
        return
    order = [list(columns).index(key) for key in compiled.positiontup or ()]
    if order != list(range(len(columns))):
        rows = [tuple(row[i] for i in order) for row in rows]
    statement = str(compiled)
    row = f" VALUES ({', '.join('?' * len(columns))})"
    if db.dialect.name != "sqlite" or not statement.endswith(row):
        db.exec_driver_sql(statement, rows)
        return
    # SQLite's driver binds and steps each row of an executemany on its own: many rows to a
    # statement stored a province's findings in two thirds of the time (0.06 s for 22,000, was
    # 0.1). At most 999 values each, the limit of SQLite before 3.32.
    per = max(1, 999 // len(columns))
    head = statement.removesuffix(row) + " VALUES "
    for first in range(0, len(rows), per):
        part = rows[first : first + per]
        values = tuple(itertools.chain.from_iterable(part))
        db.exec_driver_sql(head + ", ".join([row.removeprefix(" VALUES ")] * len(part)), values)


_SYSTEM_AND_HOST: Final = re.compile(r'"system":("(?:[^"\\]|\\.)*"),"host":("(?:[^"\\]|\\.)*")')
"""A stored finding's system and host, as its row spells them (the fields' order in `Finding`)."""


def _expand(
    body: str, key: str | None, texts: Mapping[str, dict[str, Any]], alike: dict[str, Finding]
) -> Finding:
    """A finding from its row and the run's rule texts (each validated once, not once per finding). A
    row of schema 0003 also names its key inside the body; a row written before rule texts were
    shared holds its text itself.

    Most of a province's findings are alike but for system and host (a rule not applying to the
    systems of a level, a port closed everywhere): `alike` keeps the first finding of each such
    shape, and the others are copies of it with their own system and host (validated one by one,
    reading a stored run of 1,000 systems took three times as long)."""
    slots = _SYSTEM_AND_HOST.search(body)
    shape = ""
    if slots is not None:
        shape = f"{key}\0{body[: slots.start(1)]}{body[slots.end(1) : slots.start(2)]}{body[slots.end(2) :]}"
        first = alike.get(shape)
        if first is not None:
            return first.placed(_json_text(slots[1]), _json_text(slots[2]))
    data = json.loads(body)
    data.pop("rule_text", None)
    if key is not None:
        if key not in texts:
            raise StoreError(f"a stored finding refers to rule text {key}, which the store does not hold")
        data.update(texts[key])
    finding = Finding.model_validate(data)
    if slots is not None:
        alike[shape] = finding
    return finding


def _json_text(spelled: str) -> str:
    """A JSON string's value: most spell it plainly, between their quotes."""
    return spelled[1:-1] if "\\" not in spelled else str(json.loads(spelled))


def _where(exc: ValidationError) -> str:
    first = exc.errors()[0]
    return ".".join(str(part) for part in first["loc"]) + f" ({first['msg']})"
