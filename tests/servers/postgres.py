"""Session fixture: a real PostgreSQL from Debian's package, for the shared run store.

initdb and postgres run from the newest /usr/lib/postgresql/*/bin (they are not on PATH), in a
temporary folder, as `nobody` when the tests run as root (PostgreSQL refuses to run as root),
listening on 127.0.0.1 at a free port and on a unix socket inside the folder. The superuser
`postgres` logs in only through that socket (trust); attt's role `attt` logs in over TCP with a
password (scram-sha-256), as a real deployment would. Each test that wants a store gets a new
database owned by `attt`. Without the binaries the tests skip, except under CI=true, where that
is a failure: CI must prove the PostgreSQL store.

`store_location` parametrizes a test over both kinds of store (a SQLite file, a new database of
this server); `raw` runs one SQL statement on either, as another process would.
"""

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa

from attt.scanner.store import Store, locate

START_TIMEOUT = 30.0
ROLE = "attt"


def postgres_bin() -> Path | None:
    """The bin folder of the newest PostgreSQL installed (Debian keeps one per major version)."""
    found = [b for b in Path("/usr/lib/postgresql").glob("*/bin") if (b / "postgres").is_file()]
    return max(found, key=lambda b: int(b.parent.name) if b.parent.name.isdigit() else 0, default=None)


@dataclass
class Postgres:
    """A running server: URLs for attt (with and without the password) and admin statements."""

    port: int
    socket_dir: Path
    password: str
    server: subprocess.Popen[bytes]
    _names: Iterator[int] = field(default_factory=count)

    def stop(self) -> None:
        """Stop the server now (fast shutdown: clients are disconnected), as a crash or a
        maintenance window would."""
        if self.server.poll() is None:
            self.server.terminate()
            try:
                self.server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait()

    def url(self, database: str, *, password: bool = True, host: str = "127.0.0.1") -> str:
        secret = f":{self.password}" if password else ""
        return f"postgresql://{ROLE}{secret}@{host}:{self.port}/{database}"

    def admin(self, statement: str) -> None:
        """One statement as the superuser, outside a transaction (CREATE/DROP DATABASE need that)."""
        with psycopg.connect(host=str(self.socket_dir), port=self.port, user="postgres", dbname="postgres",
                             autocommit=True) as conn:  # fmt: skip
            conn.execute(statement.encode())

    def database(self, prefix: str = "store") -> str:
        """A new, empty database owned by attt's role; its name."""
        name = f"{prefix}_{os.getpid()}_{next(self._names)}"
        self.admin(f'CREATE DATABASE "{name}" OWNER {ROLE}')
        return name


def _as_server_user() -> list[str]:
    return ["runuser", "-u", "nobody", "--"] if os.geteuid() == 0 else []


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def running_postgres(durable: bool = False) -> Iterator[Postgres]:
    """Start a server; stop it and remove its files on exit. Tests run it without fsync (a crash
    of the test machine loses nothing of value); `durable` keeps PostgreSQL's defaults, for
    benchmarks that compare it with SQLite's synchronous commits."""
    bin_dir = postgres_bin()
    if bin_dir is None:
        message = "PostgreSQL is not installed (make install brings Debian's postgresql package)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    root = Path(tempfile.mkdtemp(prefix="attt-pg-"))
    data, socket_dir, password = root / "data", root / "run", secrets.token_urlsafe(18)
    socket_dir.mkdir()
    (root / "pwfile").write_text(password + "\n", encoding="utf-8")
    if os.geteuid() == 0:
        for path in (root, socket_dir, root / "pwfile"):
            shutil.chown(path, "nobody", "nogroup")
    user = _as_server_user()
    subprocess.run(
        [*user, str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth-local=trust",
         "--auth-host=scram-sha-256", "--no-sync", "-E", "UTF8", "--locale=C"],
        check=True, capture_output=True, cwd=root,
    )  # fmt: skip
    port = _free_port()
    settings = ["-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={socket_dir}"]
    if not durable:
        settings += ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
    log = (root / "postgres.log").open("wb")
    server = subprocess.Popen(
        [*user, str(bin_dir / "postgres"), "-D", str(data), "-p", str(port), *settings],
        stdout=log, stderr=subprocess.STDOUT, cwd=root,
    )  # fmt: skip
    pg = Postgres(port, socket_dir, password, server)
    try:
        _wait_until_ready(pg, root / "postgres.log")
        pg.admin(f"CREATE ROLE {ROLE} LOGIN PASSWORD '{password}'")
        yield pg
    finally:
        pg.stop()
        log.close()
        shutil.rmtree(root, ignore_errors=True)


def _wait_until_ready(pg: Postgres, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if pg.server.poll() is not None:
            raise RuntimeError(f"postgres exited: {_tail(log)}")
        try:
            pg.admin("SELECT 1")
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"postgres did not start: {_tail(log)}") from None
            time.sleep(0.2)


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-2000:]


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    with running_postgres() as pg:
        yield pg


@pytest.fixture(params=["sqlite", "postgresql"])
def store_location(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """Where a new, empty store goes: a SQLite file, or a new PostgreSQL database's URL."""
    if request.param == "sqlite":
        return tmp_path / "runs.db"
    pg: Postgres = request.getfixturevalue("postgres")
    return pg.url(pg.database())


def raw(where: Store | Path | str, statement: str, **params: Any) -> list[Any]:
    """One SQL statement through a connection of its own, as another process would run it."""
    engine = sa.create_engine((where.location if isinstance(where, Store) else locate(where)).url)
    try:
        with engine.begin() as conn:
            result = conn.execute(sa.text(statement), params)
            return list(result) if result.returns_rows else []
    finally:
        engine.dispose()
