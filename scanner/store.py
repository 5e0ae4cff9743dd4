"""The run store: runs, their observations (written as they arrive) and findings, in SQLite.

The file carries a schema version (`PRAGMA user_version`); an older store is migrated forward
when it is opened, a newer one is refused. A row this version cannot read (a run written by a
newer attt) is skipped with a warning wherever runs are listed, and is a one-line error only
when that very run is asked for.

A running scan holds a lease on its run (process id, host name, heartbeat), so that a second
process neither resumes a run that is still alive nor starts a scan of an inventory that another
live scan holds (SPEC exit code 4).
"""

import hashlib
import json
import os
import socket
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final, Literal

from pydantic import BaseModel, TypeAdapter, ValidationError

from attt.scanner.changes import choose_baseline
from attt.scanner.errors import RunBusyError, StoreError, StoreWriteError
from attt.scanner.models.finding import Finding
from attt.scanner.models.observation import DATA_MODELS, Observation, ProbeKey
from attt.scanner.models.report import RunInfo, RunStatus
from attt.scanner.models.target import SystemInfo, Target

_SCHEMA_V1: Final = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    started TEXT NOT NULL,
    status TEXT NOT NULL,
    info TEXT NOT NULL,
    systems TEXT NOT NULL,
    targets TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS observations (
    run_id TEXT NOT NULL REFERENCES runs(id),
    seq INTEGER NOT NULL,
    system TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
);
CREATE TABLE IF NOT EXISTS probes (
    run_id TEXT NOT NULL REFERENCES runs(id),
    check_name TEXT NOT NULL,
    system TEXT NOT NULL,
    host TEXT NOT NULL,
    PRIMARY KEY (run_id, check_name, system, host)
);
CREATE TABLE IF NOT EXISTS findings (
    run_id TEXT NOT NULL REFERENCES runs(id),
    seq INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
);
"""
"""The schema of the first release, which set no version: a store without one is version 1."""

_MIGRATIONS: Final[tuple[str, ...]] = (
    # 1 -> 2: the lease of the process running a run, and the inventory it scans (the lock).
    """
    ALTER TABLE runs ADD COLUMN lease_pid INTEGER;
    ALTER TABLE runs ADD COLUMN lease_host TEXT;
    ALTER TABLE runs ADD COLUMN heartbeat TEXT;
    ALTER TABLE runs ADD COLUMN inventory TEXT;
    """,
    # 2 -> 3: the weekly cycle's own tables: what was sent about each run, so a run notifies
    # once; each rule's text stored once and referred to by its findings.
    """
    CREATE TABLE IF NOT EXISTS notifications (
        run_id TEXT NOT NULL REFERENCES runs(id),
        channel TEXT NOT NULL,
        recipient TEXT NOT NULL,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        detail TEXT NOT NULL,
        at TEXT NOT NULL,
        PRIMARY KEY (run_id, channel, recipient)
    );
    CREATE TABLE IF NOT EXISTS rule_texts (
        key TEXT PRIMARY KEY,
        body TEXT NOT NULL
    );
    """,
)
"""Each entry migrates from version i + 1 to i + 2; never edit one, only append."""
SCHEMA_VERSION: Final = 1 + len(_MIGRATIONS)

HEARTBEAT_SECONDS: Final = 10.0
"""How often a running scan renews its lease."""
LEASE_SECONDS: Final = 60.0
"""A lease not renewed for this long is dead, whatever process it names."""
DEFAULT_BUSY_SECONDS: Final = 30.0
"""How long a write waits for another process's lock before the scan stops writing: long enough
for `attt history` or a backup copying the file, short enough that a stuck lock is reported."""

_RULE_TEXT_FIELDS = ("title", "remediation", "references")
"""A finding's copy of its rule's own text: the same in every finding of the rule, so a row keeps
only a key to one stored copy (three quarters of a finding's bytes)."""

_systems = TypeAdapter(tuple[SystemInfo, ...])
_targets = TypeAdapter(tuple[Target, ...])

Warn = Callable[[str], None]
"""Told about each row that is skipped, once, as one line."""


def default_db_path() -> Path:
    """`$ATTT_DB`, else `$XDG_DATA_HOME/attt/attt.db` (`~/.local/share/attt/attt.db`)."""
    if env := os.environ.get("ATTT_DB"):
        return Path(env)
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "attt" / "attt.db"


def db_path_from_url(url: str | None) -> Path:
    """`--db` takes a path or an SQLAlchemy-style URL: `sqlite:///relative.db`, `sqlite:////abs.db`.

    An in-memory database is refused: a run kept there could never be resumed, re-rendered or
    compared, which is what the store is for."""
    if url is None:
        return default_db_path()
    path = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else url
    if (url.startswith("sqlite://") and not url.startswith("sqlite:///")) or path in ("", ":memory:"):
        raise StoreError(f"--db {url!r} keeps nothing after attt exits: give a file path")
    if "://" in path or path.startswith("file:"):
        raise StoreError(f"unsupported store URL {url!r}: only sqlite:///PATH or a file path")
    return Path(path)


def busy_seconds() -> float:
    """`$ATTT_DB_BUSY_TIMEOUT` (seconds), else DEFAULT_BUSY_SECONDS."""
    value = os.environ.get("ATTT_DB_BUSY_TIMEOUT", "")
    try:
        return max(0.0, float(value)) if value else DEFAULT_BUSY_SECONDS
    except ValueError:
        raise StoreError(f"$ATTT_DB_BUSY_TIMEOUT must be a number of seconds, not {value!r}") from None


@dataclass(frozen=True)
class Lease:
    """Who runs a run: this process, on this host."""

    pid: int
    host: str

    @classmethod
    def mine(cls) -> "Lease":
        return cls(os.getpid(), socket.gethostname())


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


@dataclass(frozen=True)
class StoredRun:
    info: RunInfo
    systems: tuple[SystemInfo, ...]
    targets: tuple[Target, ...]
    observations: tuple[Observation, ...]
    findings: tuple[Finding, ...]
    probes: frozenset[ProbeKey] = frozenset()
    """(check, system, host) of every probe that ended: a planned probe missing here never ran."""


class Store:
    """One SQLite file. Safe to share between the runner's threads (one connection, one lock).

    `create=False` (reading commands) never creates a file or a folder: a mistyped `--db` is an
    error, not a new empty store."""

    def __init__(
        self,
        path: Path,
        data_models: Mapping[str, type[BaseModel]] | None = None,
        *,
        create: bool = True,
        warn: Warn | None = None,
    ) -> None:
        """`data_models` (`Registry.data_models`) types each stored observation's data as its
        check's model; data of a check not given is kept whole as `OpaqueData`."""
        self.path = path
        self._data_context = {DATA_MODELS: dict(data_models or {})}
        self._warn = warn or (lambda _line: None)
        self._warned: set[str] = set()
        if not create and not path.is_file():
            raise StoreError(f"no run store at {path} (nothing was scanned with this --db)")
        busy = busy_seconds()
        try:
            if create:
                path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, timeout=busy, check_same_thread=False, isolation_level=None)
            self._db.execute(f"PRAGMA busy_timeout={int(busy * 1000)}")
            self._db.execute("PRAGMA journal_mode=WAL")
            # Each probe commits as it ends; a sync per commit made the store the scan's
            # bottleneck (about 4 ms each, one at a time: 4 s per 1,000 hosts). In WAL mode a
            # killed attt still keeps every commit and the file stays consistent; only a power
            # loss may drop the last ones, and `attt scan --resume` probes those again.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._migrate()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the run store {path}: {exc}") from None
        except OSError as exc:
            raise StoreError(f"cannot open the run store {path}: {exc.strerror or exc}") from None
        self._lock = threading.Lock()

    def _migrate(self) -> None:
        """Bring the file to SCHEMA_VERSION in one transaction (another process opening the same
        old store at the same moment waits, then finds it migrated)."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            (version,) = self._db.execute("PRAGMA user_version").fetchone()
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"the run store {self.path} was written by a newer attt (store schema {version};"
                    f" this attt reads up to {SCHEMA_VERSION}): upgrade attt or give another --db"
                )
            if version < SCHEMA_VERSION:
                steps = (_SCHEMA_V1, *_MIGRATIONS[max(version, 1) - 1 :])
                for statement in (s for step in steps for s in step.split(";") if s.strip()):
                    self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; a full disk or a lock held past the busy timeout is a
        StoreWriteError naming the file, and the transaction leaves no trace."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise StoreWriteError(f"cannot write to the run store {self.path}: {exc}") from None

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
        lease = lease or Lease.mine()
        with self._transaction() as db:
            _refuse_live_scan(db, inventory, info.id)
            db.execute(
                "INSERT INTO runs (id, started, status, info, systems, targets, lease_pid, lease_host,"
                " heartbeat, inventory) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    info.id,
                    info.started.isoformat(),
                    info.status,
                    info.model_dump_json(),
                    _systems.dump_json(tuple(systems)).decode(),
                    _targets.dump_json(tuple(targets)).decode(),
                    lease.pid,
                    lease.host,
                    _now(),
                    inventory,
                ),
            )

    def claim(self, run_id: str, redo: Iterable[ProbeKey] = (), lease: Lease | None = None) -> None:
        """Take over an interrupted run for `--resume`: refuse (RunBusyError) while the process
        that runs it is alive, else mark it running under `lease`, forgetting the probes in
        `redo` (and what they saw) so that they run again."""
        lease = lease or Lease.mine()
        with self._transaction() as db:
            row = db.execute(
                "SELECT lease_pid, lease_host, heartbeat, inventory FROM runs WHERE id = ?", (run_id,)
            ).fetchone()
            if row is None:
                raise StoreError(f"no run {run_id!r} in {self.path}")
            pid, host, beat, inventory = row
            if (pid, host) != (lease.pid, lease.host) and _live(pid, host, beat):
                raise RunBusyError(
                    f"run {run_id} is still running (process {pid} on {host}, heartbeat {beat});"
                    " it cannot be resumed while it runs"
                )
            _refuse_live_scan(db, inventory, run_id)
            for check, system, host_address in redo:
                db.execute(
                    "DELETE FROM probes WHERE run_id = ? AND check_name = ? AND system = ? AND host = ?",
                    (run_id, check, system, host_address),
                )
                db.execute(
                    "DELETE FROM observations WHERE run_id = ? AND system = ?"
                    " AND json_extract(body, '$.check') = ? AND json_extract(body, '$.host') = ?",
                    (run_id, system, check, host_address),
                )
            info = self._info(db, run_id).model_copy(update={"status": "running", "finished": None})
            db.execute(
                "UPDATE runs SET status = ?, info = ?, lease_pid = ?, lease_host = ?, heartbeat = ?"
                " WHERE id = ?",
                (info.status, info.model_dump_json(), lease.pid, lease.host, _now(), run_id),
            )

    def heartbeat(self, run_id: str, lease: Lease | None = None) -> None:
        """Renew the lease (only if it is still ours)."""
        lease = lease or Lease.mine()
        with self._transaction() as db:
            db.execute(
                "UPDATE runs SET heartbeat = ? WHERE id = ? AND lease_pid = ? AND lease_host = ?",
                (_now(), run_id, lease.pid, lease.host),
            )

    def record_probe(
        self, run_id: str, check: str, target: Target, observations: Sequence[Observation]
    ) -> None:
        """Commit what one probe saw, and that it ended, at once: an interrupted scan keeps it
        and a resumed one does not repeat it."""
        with self._transaction() as db:
            (seq,) = db.execute(
                "SELECT COALESCE(MAX(seq), -1) + 1 FROM observations WHERE run_id = ?", (run_id,)
            ).fetchone()
            db.executemany(
                "INSERT INTO observations (run_id, seq, system, body) VALUES (?, ?, ?, ?)",
                ((run_id, seq + i, o.system, o.model_dump_json()) for i, o in enumerate(observations)),
            )
            db.execute(
                "INSERT INTO probes (run_id, check_name, system, host) VALUES (?, ?, ?, ?)",
                (run_id, check, target.system.id, target.address),
            )

    def probes_done(self, run_ref: str) -> dict[ProbeKey, tuple[Observation, ...]]:
        """(check, system, host) -> observations, for every probe of the run that ended."""
        stored = self.load(run_ref)
        with self._lock:
            rows = self._db.execute(
                "SELECT check_name, system, host FROM probes WHERE run_id = ?", (stored.info.id,)
            ).fetchall()
        by_probe: dict[ProbeKey, list[Observation]] = {}
        for obs in stored.observations:
            by_probe.setdefault((obs.check, obs.system, obs.host), []).append(obs)
        return {(c, s, h): tuple(by_probe.get((c, s, h), ())) for c, s, h in rows}

    def mark(self, run_id: str, status: RunStatus, finished: datetime) -> RunInfo:
        """Record how the run ended, keep its findings, and release its lease."""
        with self._transaction() as db:
            info = self._info(db, run_id).model_copy(update={"status": status, "finished": finished})
            db.execute(
                "UPDATE runs SET status = ?, info = ?, lease_pid = NULL, heartbeat = NULL WHERE id = ?",
                (status, info.model_dump_json(), run_id),
            )
        return info

    def finish_run(
        self, run_id: str, status: RunStatus, finished: datetime, findings: Iterable[Finding]
    ) -> RunInfo:
        """Replace the run's findings, record how it ended, and release its lease."""
        with self._transaction() as db:
            info = self._info(db, run_id).model_copy(update={"status": status, "finished": finished})
            db.execute(
                "UPDATE runs SET status = ?, info = ?, lease_pid = NULL, heartbeat = NULL WHERE id = ?",
                (status, info.model_dump_json(), run_id),
            )
            db.execute("DELETE FROM findings WHERE run_id = ?", (run_id,))
            rows, texts = _compact(findings)
            db.executemany("INSERT OR IGNORE INTO rule_texts (key, body) VALUES (?, ?)", texts.items())
            db.executemany(
                "INSERT INTO findings (run_id, seq, body) VALUES (?, ?, ?)",
                ((run_id, i, body) for i, body in enumerate(rows)),
            )
        return info

    def load(self, run_ref: str) -> StoredRun:
        with self._reading():
            run_id = self._resolve(run_ref)
            row = self._db.execute(
                "SELECT info, systems, targets, lease_pid, lease_host, heartbeat FROM runs WHERE id = ?",
                (run_id,),
            ).fetchone()
            observations = self._db.execute(
                "SELECT body FROM observations WHERE run_id = ? ORDER BY seq", (run_id,)
            ).fetchall()
            findings = self._db.execute(
                "SELECT body FROM findings WHERE run_id = ? ORDER BY seq", (run_id,)
            ).fetchall()
            texts = dict(
                self._db.execute(
                    "SELECT key, body FROM rule_texts WHERE key IN (SELECT json_extract(body, '$.rule_text')"
                    " FROM findings WHERE run_id = ?)",
                    (run_id,),
                ).fetchall()
            )
            probes = self._db.execute(
                "SELECT check_name, system, host FROM probes WHERE run_id = ?", (run_id,)
            ).fetchall()
        try:
            return StoredRun(
                info=_as_seen(RunInfo.model_validate_json(row[0]), *row[3:]),
                systems=_systems.validate_json(row[1]),
                targets=_targets.validate_json(row[2]),
                observations=tuple(
                    Observation.model_validate_json(b, context=self._data_context) for (b,) in observations
                ),
                findings=tuple(_expand(b, texts) for (b,) in findings),
                probes=frozenset((str(c), str(s), str(h)) for c, s, h in probes),
            )
        except ValidationError as exc:
            raise StoreError(self._unreadable(run_id, exc)) from None

    def runs(self, system: str | None = None, limit: int = 20) -> list[RunInfo]:
        """Newest first; with `system`, only runs that observed that system. Runs this version
        cannot read are skipped, each with one warning."""
        query = "SELECT id, info, lease_pid, lease_host, heartbeat FROM runs"
        args: tuple[object, ...] = ()
        if system is not None:
            query += " WHERE id IN (SELECT run_id FROM observations WHERE system = ?)"
            args = (system,)
        query += " ORDER BY started DESC, id DESC"
        with self._reading():
            rows = self._db.execute(query, args).fetchall()
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
        with self._reading():
            rows = self._db.execute(
                "SELECT id, info, targets FROM runs WHERE started < ? ORDER BY started DESC, id DESC LIMIT ?",
                (info.started.isoformat(), limit),
            ).fetchall()
        earlier: list[tuple[RunInfo, tuple[Target, ...]]] = []
        for run_id, body, targets in rows:
            readable = self._readable_info(run_id, body)
            if readable is None:
                continue
            try:
                earlier.append((readable, _targets.validate_json(targets)))
            except ValidationError as exc:
                self._skip(run_id, exc)
        return earlier

    @contextmanager
    def _reading(self) -> Iterator[None]:
        with self._lock:
            try:
                yield
            except sqlite3.Error as exc:
                raise StoreError(f"cannot read the run store {self.path}: {exc}") from None

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
            f"run {run_id} in {self.path} cannot be read by this version of attt: "
            f"{exc.error_count()} field(s) do not fit, first at {_where(exc)}"
        )

    def notifications(self, run_id: str) -> list[NotificationRecord]:
        with self._lock:
            rows = self._db.execute(
                "SELECT channel, recipient, status, attempts, detail, at FROM notifications"
                " WHERE run_id = ? ORDER BY channel, recipient",
                (run_id,),
            ).fetchall()
        return [NotificationRecord(c, r, s, a, d, datetime.fromisoformat(t)) for c, r, s, a, d, t in rows]

    def record_notification(self, run_id: str, record: NotificationRecord) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO notifications"
                " (run_id, channel, recipient, status, attempts, detail, at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (run_id, record.channel, record.recipient, record.status, record.attempts,
                 record.detail, record.at.isoformat()),
            )  # fmt: skip

    def prune(self, remove: Callable[[Sequence[RunInfo]], set[str]]) -> Pruned:
        """Delete the runs `remove` picks from all runs (newest first), except any run that a kept
        run uses as its baseline (`choose_baseline`, as its reports do) and any run still running;
        then VACUUM."""
        with self._reading():
            rows = self._db.execute(
                "SELECT id, info, targets FROM runs ORDER BY started DESC, id DESC"
            ).fetchall()
        # A run this version cannot read is never pruned by it (it may be a newer attt's).
        runs = [
            (info, _targets.validate_json(t))
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
        doomed = [r for r in everything if r.id in chosen and r.id not in baselines]
        before = self._size()
        with self._transaction() as db:
            for table in ("notifications", "findings", "probes", "observations"):
                db.executemany(f"DELETE FROM {table} WHERE run_id = ?", ((r.id,) for r in doomed))  # noqa: S608
            db.executemany("DELETE FROM runs WHERE id = ?", ((r.id,) for r in doomed))
            db.execute(
                "DELETE FROM rule_texts WHERE key NOT IN"
                " (SELECT json_extract(body, '$.rule_text') FROM findings WHERE body LIKE '%rule_text%')"
            )
        with self._lock:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._db.execute("VACUUM")
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return Pruned(tuple(doomed), spared, before, self._size())

    def _size(self) -> int:
        return sum(p.stat().st_size for p in (self.path, Path(f"{self.path}-wal")) if p.exists())

    def _resolve(self, run_ref: str) -> str:
        """A full run id, a unique prefix of one, or `latest`."""
        if run_ref == "latest":
            row = self._db.execute("SELECT id FROM runs ORDER BY started DESC, id DESC LIMIT 1").fetchone()
            if row is None:
                raise StoreError(f"the run store {self.path} holds no runs yet")
            return str(row[0])
        rows = self._db.execute(
            "SELECT id FROM runs WHERE id = ? OR id LIKE ? ESCAPE '\\' LIMIT 2",
            (run_ref, run_ref.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"),
        ).fetchall()
        exact = [r[0] for r in rows if r[0] == run_ref]
        if exact:
            return str(exact[0])
        if len(rows) != 1:
            what = "no run" if not rows else "more than one run"
            raise StoreError(f"{what} matches {run_ref!r} in {self.path}")
        return str(rows[0][0])

    def _info(self, db: sqlite3.Connection, run_id: str) -> RunInfo:
        row = db.execute("SELECT info FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise StoreError(f"no run {run_id!r} in {self.path}")
        try:
            return RunInfo.model_validate_json(row[0])
        except ValidationError as exc:
            raise StoreError(self._unreadable(run_id, exc)) from None


def _refuse_live_scan(db: sqlite3.Connection, inventory: str | None, run_id: str) -> None:
    """RunBusyError when a live run other than `run_id` scans the same inventory file."""
    if inventory is None:
        return
    rows = db.execute(
        "SELECT id, lease_pid, lease_host, heartbeat FROM runs WHERE status = 'running' AND inventory = ?"
        " AND id != ?",
        (inventory, run_id),
    ).fetchall()
    for other, pid, host, beat in rows:
        if _live(pid, host, beat):
            raise RunBusyError(
                f"run {other} of {inventory} is still running (process {pid} on {host});"
                " wait for it, or stop it first"
            )


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
    exists. A process killed with -9 frees its runs at once; one on another host after a minute."""
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


def _compact(findings: Iterable[Finding]) -> tuple[list[str], dict[str, str]]:
    """Each finding's row without its rule's text, and the texts by key (a hash of the text)."""
    rows: list[str] = []
    texts: dict[str, str] = {}
    # A province's findings share a few hundred rule texts: each is dumped and hashed once.
    keys: dict[tuple[object, ...], str] = {}
    for finding in findings:
        own = tuple(getattr(finding, k) for k in _RULE_TEXT_FIELDS)
        key = keys.get(own)
        if key is None:
            text = json.dumps(
                finding.model_dump(mode="json", include=set(_RULE_TEXT_FIELDS)),
                ensure_ascii=False,
                sort_keys=True,
            )
            key = keys[own] = hashlib.sha256(text.encode()).hexdigest()[:32]
            texts[key] = text
        data = finding.model_dump(mode="json", exclude=set(_RULE_TEXT_FIELDS))
        rows.append(json.dumps({**data, "rule_text": key}, ensure_ascii=False))
    return rows, texts


def _expand(body: str, texts: Mapping[str, str]) -> Finding:
    """A finding from its row; a row written before rule texts were shared holds its text itself."""
    data = json.loads(body)
    key = data.pop("rule_text", None)
    if key is not None:
        if key not in texts:
            raise StoreError(f"a stored finding refers to rule text {key}, which the store does not hold")
        data.update(json.loads(texts[key]))
    return Finding.model_validate(data)


def _where(exc: ValidationError) -> str:
    first = exc.errors()[0]
    return ".".join(str(part) for part in first["loc"]) + f" ({first['msg']})"
