"""The shared store end to end: the real `attt` in child processes, scanning a small loopback fleet
(127.0.178.0/24) into a real PostgreSQL (tests/servers/postgres.py), then reading it back with
`history`, `report` and `diff`; another machine's live scan of the same inventory (exit 4); and a
server that cannot be reached, a wrong password or a missing database (exit 2, one line, never the
password)."""

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from attt.scanner.store import Store
from attt.scanner.stored import Lease
from tests.factories import STARTED, target
from tests.factories import system as system_info
from tests.robustness.conftest import AtttRun, run_attt
from tests.servers import postgres as postgres_server
from tests.servers.listeners import tcp_listeners
from tests.servers.postgres import Postgres, running_postgres

NET = "127.0.178"
HOSTS = {f"{NET}.1": (8080,), f"{NET}.2": (8080, 2323)}
POLICY = Path(__file__).parent / "e2e" / "policy.yaml"


@pytest.fixture(scope="module")
def fleet() -> Iterator[None]:
    with tcp_listeners([(host, port) for host, ports in HOSTS.items() for port in ports]):
        yield


def inventory(tmp_path: Path) -> Path:
    hosts = "".join(f"      - {{address: {h}, services: [{{port: 8080, kind: tcp}}]}}\n" for h in HOSTS)
    path = tmp_path / "inventory.yaml"
    path.write_text(
        textwrap.dedent(f"""\
            province: Hà Tĩnh
            scope: [{NET}.0/24]
            systems:
              - id: cong-thong-tin
                name: Cổng thông tin
                owner: Sở Khoa học và Công nghệ
                level: 3
                hosts:
            """)
        + hosts,
        encoding="utf-8",
    )
    return path


def scan(tmp_path: Path, db: str, out: str) -> AtttRun:
    return run_attt(
        ["scan", "-i", str(inventory(tmp_path)), "-p", str(POLICY), "--check", "ports", "--db", db,
         "--out", str(tmp_path / out), "--format", "json", "--lang", "en"],
        env={"CI": "true"},
    )  # fmt: skip


def one_line_error(run: AtttRun, secret: str) -> str:
    assert run.returncode == 2, run.terminal
    assert "Traceback" not in run.terminal and secret not in run.terminal
    [line] = run.stderr.strip().splitlines()
    return line


def test_scan_report_diff_and_history_through_postgresql(
    tmp_path: Path, fleet: None, postgres: Postgres
) -> None:
    db = postgres.url(postgres.database())
    first, second = scan(tmp_path, db, "first"), scan(tmp_path, db, "second")
    assert (first.returncode, second.returncode) == (1, 1), first.terminal + second.terminal
    runs = [json.loads((tmp_path / out / "report.json").read_text())["run"] for out in ("first", "second")]
    assert [r["status"] for r in runs] == ["complete", "complete"]

    listed = run_attt(["history", "--db", db])
    assert listed.returncode == 0, listed.terminal
    assert [line.split()[0] for line in listed.stdout.splitlines()[:2]] == [runs[1]["id"], runs[0]["id"]]

    again = run_attt(
        ["report", runs[0]["id"], "--db", db, "--out", str(tmp_path / "again"), "--format", "json"]
    )
    assert again.returncode in (0, 1), again.terminal
    report = json.loads((tmp_path / "again" / "report.json").read_text())
    assert report["run"]["id"] == runs[0]["id"]
    telnet = [f for f in report["findings"] if f["rule_id"] == "E2E-TELNET" and f["host"] == f"{NET}.2"]
    assert [f["status"] for f in telnet] == ["fail"]
    assert {o["host"] for o in report["observations"]} == set(HOSTS)

    diff = run_attt(["diff", runs[0]["id"], runs[1]["id"], "--db", db])
    assert diff.returncode == 0, diff.terminal
    every_output = "".join(r.terminal for r in (first, second, listed, again, diff))
    every_output += "".join(p.read_text() for p in tmp_path.rglob("*.json"))
    assert postgres.password not in every_output


def test_a_live_scan_on_another_machine_holds_the_inventory(
    tmp_path: Path, fleet: None, postgres: Postgres
) -> None:
    db = postgres.url(postgres.database())
    path = inventory(tmp_path)
    elsewhere = Store(db)
    t = target(system_info("cong-thong-tin"), f"{NET}.1")
    run = scan(tmp_path, db, "warm-up")  # the run info of a real scan, to copy for machine B
    assert run.returncode == 1, run.terminal
    [info] = elsewhere.runs()
    busy = info.model_copy(update={"id": "20261201T000000Z-machnb", "started": STARTED, "status": "running"})
    elsewhere.create_run(busy, [t.system], [t], lease=Lease(4242, "machine-b"), inventory=str(path.resolve()))
    refused = scan(tmp_path, db, "refused")
    assert refused.returncode == 4, refused.terminal
    assert "machine-b" in refused.stderr and "Traceback" not in refused.terminal
    assert not (tmp_path / "refused").exists()
    elsewhere.mark(busy.id, "incomplete", STARTED)  # machine B's scan ends: the lock is free
    assert scan(tmp_path, db, "after").returncode == 1


def test_a_wrong_password_is_one_line_that_never_shows_a_password(postgres: Postgres) -> None:
    db = postgres.url(postgres.database()).replace(postgres.password, "Wr0ng-s3cret")
    line = one_line_error(run_attt(["history", "--db", db]), "Wr0ng-s3cret")
    assert f"postgresql://attt@127.0.0.1:{postgres.port}/" in line
    assert "password authentication failed" in line


def test_a_missing_database_and_an_unreachable_server_are_one_line(postgres: Postgres) -> None:
    missing = one_line_error(run_attt(["history", "--db", postgres.url("no_such_db")]), postgres.password)
    assert 'database "no_such_db" does not exist' in missing
    closed = f"postgresql://attt:{postgres.password}@127.0.0.1:9/attt"
    refused = one_line_error(run_attt(["history", "--db", closed]), postgres.password)
    assert "postgresql://attt@127.0.0.1:9/attt" in refused and "Connection refused" in refused


def test_libpq_supplies_the_password_from_pgpassword_or_pgpass(tmp_path: Path, postgres: Postgres) -> None:
    name = postgres.database()
    bare = postgres.url(name, password=False)
    created = run_attt(["history", "--db", bare], env={"PGPASSWORD": postgres.password})
    assert "no run store in" in one_line_error(created, postgres.password)  # logged in; no tables yet
    Store(postgres.url(name)).close()
    passfile = tmp_path / "pgpass"
    passfile.write_text(f"127.0.0.1:{postgres.port}:{name}:attt:{postgres.password}\n", encoding="utf-8")
    passfile.chmod(0o600)
    listed = run_attt(["history", "--db", bare], env={"PGPASSFILE": str(passfile)})
    assert listed.returncode == 0, listed.terminal


def test_without_postgresql_the_tests_fail_under_ci_and_skip_elsewhere(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(postgres_server, "postgres_bin", lambda: None)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="PostgreSQL is not installed"), running_postgres():
        pass
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="PostgreSQL is not installed"), running_postgres():
        pass
