"""The run store: runs, their observations (written as they arrive) and findings, in SQLite."""

import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, TypeAdapter, ValidationError

from attt.scanner.errors import StoreError
from attt.scanner.models.finding import Finding
from attt.scanner.models.observation import DATA_MODELS, Observation, ProbeKey
from attt.scanner.models.report import RunInfo, RunStatus
from attt.scanner.models.target import SystemInfo, Target

_SCHEMA = """
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

_systems = TypeAdapter(tuple[SystemInfo, ...])
_targets = TypeAdapter(tuple[Target, ...])


def default_db_path() -> Path:
    """`$ATTT_DB`, else `$XDG_DATA_HOME/attt/attt.db` (`~/.local/share/attt/attt.db`)."""
    if env := os.environ.get("ATTT_DB"):
        return Path(env)
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "attt" / "attt.db"


def db_path_from_url(url: str | None) -> Path:
    """`--db` takes a path or an SQLAlchemy-style URL: `sqlite:///relative.db`, `sqlite:////abs.db`."""
    if url is None:
        return default_db_path()
    if url.startswith("sqlite:///"):
        return Path(url.removeprefix("sqlite:///"))
    if "://" in url:
        raise StoreError(f"unsupported store URL {url!r}: only sqlite:///PATH or a file path")
    return Path(url)


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
    """One SQLite file. Safe to share between the runner's threads (one connection, one lock)."""

    def __init__(self, path: Path, data_models: Mapping[str, type[BaseModel]] | None = None) -> None:
        """`data_models` (`Registry.data_models`) types each stored observation's data as its
        check's model; data of a check not given is kept whole as `OpaqueData`."""
        self.path = path
        self._data_context = {DATA_MODELS: dict(data_models or {})}
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the run store {path}: {exc}") from exc
        self._lock = threading.Lock()

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def create_run(self, info: RunInfo, systems: Iterable[SystemInfo], targets: Iterable[Target]) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO runs (id, started, status, info, systems, targets) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    info.id,
                    info.started.isoformat(),
                    info.status,
                    info.model_dump_json(),
                    _systems.dump_json(tuple(systems)).decode(),
                    _targets.dump_json(tuple(targets)).decode(),
                ),
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

    def reopen(self, run_id: str) -> None:
        """Mark an interrupted run as running again, for `--resume`."""
        with self._transaction() as db:
            info = self._info(db, run_id).model_copy(update={"status": "running", "finished": None})
            db.execute(
                "UPDATE runs SET status = ?, info = ? WHERE id = ?",
                (info.status, info.model_dump_json(), run_id),
            )

    def finish_run(
        self, run_id: str, status: RunStatus, finished: datetime, findings: Iterable[Finding]
    ) -> RunInfo:
        """Replace the run's findings and record how it ended."""
        with self._transaction() as db:
            info = self._info(db, run_id).model_copy(update={"status": status, "finished": finished})
            db.execute(
                "UPDATE runs SET status = ?, info = ? WHERE id = ?", (status, info.model_dump_json(), run_id)
            )
            db.execute("DELETE FROM findings WHERE run_id = ?", (run_id,))
            db.executemany(
                "INSERT INTO findings (run_id, seq, body) VALUES (?, ?, ?)",
                ((run_id, i, f.model_dump_json()) for i, f in enumerate(findings)),
            )
        return info

    def load(self, run_ref: str) -> StoredRun:
        with self._lock:
            run_id = self._resolve(run_ref)
            row = self._db.execute(
                "SELECT info, systems, targets FROM runs WHERE id = ?", (run_id,)
            ).fetchone()
            observations = self._db.execute(
                "SELECT body FROM observations WHERE run_id = ? ORDER BY seq", (run_id,)
            ).fetchall()
            findings = self._db.execute(
                "SELECT body FROM findings WHERE run_id = ? ORDER BY seq", (run_id,)
            ).fetchall()
            probes = self._db.execute(
                "SELECT check_name, system, host FROM probes WHERE run_id = ?", (run_id,)
            ).fetchall()
        try:
            return StoredRun(
                info=RunInfo.model_validate_json(row[0]),
                systems=_systems.validate_json(row[1]),
                targets=_targets.validate_json(row[2]),
                observations=tuple(
                    Observation.model_validate_json(b, context=self._data_context) for (b,) in observations
                ),
                findings=tuple(Finding.model_validate_json(b) for (b,) in findings),
                probes=frozenset((str(c), str(s), str(h)) for c, s, h in probes),
            )
        except ValidationError as exc:
            raise StoreError(
                f"run {run_id} in {self.path} cannot be read by this version of attt: "
                f"{exc.error_count()} field(s) do not fit, first at {_where(exc)}"
            ) from None

    def runs(self, system: str | None = None, limit: int = 20) -> list[RunInfo]:
        """Newest first; with `system`, only runs that observed that system."""
        query = "SELECT info FROM runs"
        args: tuple[object, ...] = ()
        if system is not None:
            query += " WHERE id IN (SELECT run_id FROM observations WHERE system = ?)"
            args = (system,)
        query += " ORDER BY started DESC, id DESC LIMIT ?"
        with self._lock:
            rows = self._db.execute(query, (*args, limit)).fetchall()
        return [RunInfo.model_validate_json(r[0]) for r in rows]

    def earlier_runs(self, info: RunInfo, limit: int = 100) -> list[tuple[RunInfo, tuple[Target, ...]]]:
        """Runs started before `info`, newest first, with the targets each scanned: the
        candidates for the baseline a report compares itself with."""
        with self._lock:
            rows = self._db.execute(
                "SELECT info, targets FROM runs WHERE started < ? ORDER BY started DESC, id DESC LIMIT ?",
                (info.started.isoformat(), limit),
            ).fetchall()
        return [
            (RunInfo.model_validate_json(body), _targets.validate_json(targets)) for body, targets in rows
        ]

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
        return RunInfo.model_validate_json(row[0])


def _where(exc: ValidationError) -> str:
    first = exc.errors()[0]
    return ".".join(str(part) for part in first["loc"]) + f" ({first['msg']})"
