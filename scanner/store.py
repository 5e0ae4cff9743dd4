"""The run store: runs, their observations (written as they arrive) and findings, in SQLite."""

import hashlib
import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, TypeAdapter, ValidationError

from attt.scanner.changes import choose_baseline
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

# The weekly cycle's own table: what was sent about each run, so a run notifies once.
_CYCLE_SCHEMA = """
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
"""
_RULE_TEXT_FIELDS = ("title", "remediation", "references")
"""A finding's copy of its rule's own text: the same in every finding of the rule, so a row keeps
only a key to one stored copy (three quarters of a finding's bytes)."""

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
            self._db.executescript(_CYCLE_SCHEMA)
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
            rows, texts = _compact(findings)
            db.executemany("INSERT OR IGNORE INTO rule_texts (key, body) VALUES (?, ?)", texts.items())
            db.executemany(
                "INSERT INTO findings (run_id, seq, body) VALUES (?, ?, ?)",
                ((run_id, i, body) for i, body in enumerate(rows)),
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
                info=RunInfo.model_validate_json(row[0]),
                systems=_systems.validate_json(row[1]),
                targets=_targets.validate_json(row[2]),
                observations=tuple(
                    Observation.model_validate_json(b, context=self._data_context) for (b,) in observations
                ),
                findings=tuple(_expand(b, texts) for (b,) in findings),
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
        with self._lock:
            rows = self._db.execute(
                "SELECT info, targets FROM runs ORDER BY started DESC, id DESC"
            ).fetchall()
        runs = [(RunInfo.model_validate_json(i), _targets.validate_json(t)) for i, t in rows]
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
        return RunInfo.model_validate_json(row[0])


def _compact(findings: Iterable[Finding]) -> tuple[list[str], dict[str, str]]:
    """Each finding's row without its rule's text, and the texts by key (a hash of the text)."""
    rows: list[str] = []
    texts: dict[str, str] = {}
    for finding in findings:
        data = finding.model_dump(mode="json")
        text = json.dumps({k: data.pop(k) for k in _RULE_TEXT_FIELDS}, ensure_ascii=False, sort_keys=True)
        key = hashlib.sha256(text.encode()).hexdigest()[:32]
        texts[key] = text
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
