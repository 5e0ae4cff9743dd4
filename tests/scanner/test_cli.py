"""`attt scan` end to end against real TCP listeners on 127.0.10.x: every exit code."""

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from attt.scanner.cli import main
from tests.servers.listeners import tcp_listeners

E2E = Path(__file__).parent / "e2e"
COMPLIANT, VIOLATING, WAIVED, OUTSIDE = "127.0.10.1", "127.0.10.2", "127.0.10.3", "127.0.11.9"
MENDED = "127.0.10.4"
"""Serves 8080 throughout, and telnet (2323) only while a test keeps it open."""


@pytest.fixture(scope="module")
def listeners() -> Iterator[None]:
    endpoints = [(COMPLIANT, 8080), (VIOLATING, 8080), (VIOLATING, 2323), (WAIVED, 2323), (MENDED, 8080)]
    with tcp_listeners(endpoints, banner=b"hello\r\n"):
        yield


def inventory(tmp_path: Path, *systems: tuple[str, str, str]) -> Path:
    """systems: (id, address, services yaml)."""
    body = "".join(
        textwrap.dedent(f"""\
          - id: {sid}
            name: System {sid}
            owner: Sở Khoa học và Công nghệ
            level: 3
            hosts:
              - address: {address}
                services: {services}
        """)
        for sid, address, services in systems
    )
    path = tmp_path / "inventory.yaml"
    path.write_text("province: Hà Tĩnh\nscope: [127.0.10.0/24]\nsystems:\n" + textwrap.indent(body, "  "))
    return path


def scan(
    tmp_path: Path, inv: Path, *extra: str, policy: str = str(E2E / "policy.yaml"), check: str = "ports"
):
    out = tmp_path / "out"
    args = ["scan", "-i", str(inv), "-p", policy, "--check", check, "--db", str(tmp_path / "runs.db"),
            "--out", str(out), "--format", "json", "--timeout", "20", *extra]  # fmt: skip
    result = CliRunner().invoke(main, args, env={"CI": "true"})
    report = json.loads((out / "report.json").read_text()) if (out / "report.json").exists() else None
    return result.exit_code, result.output, report


def statuses(report: dict[str, Any]) -> dict[tuple[str, str], str]:
    return {(f["system"], f["rule_id"]): f["status"] for f in report["findings"]}


def test_compliant_system_exits_0(tmp_path: Path, listeners: None) -> None:
    code, output, report = scan(tmp_path, inventory(tmp_path, ("ok", COMPLIANT, "[{port: 8080}]")))
    assert code == 0, output
    assert statuses(report) == {("ok", "E2E-TELNET"): "pass", ("ok", "E2E-DECLARED"): "pass"}
    assert report["run"]["status"] == "complete"
    assert report["observations"][0]["data"]["scanned"] == [2323, 8080]


def test_violation_exits_1_and_waiver_marks_without_hiding(tmp_path: Path, listeners: None) -> None:
    inv = inventory(tmp_path, ("bad", VIOLATING, "[{port: 8080}]"), ("waived", WAIVED, "[]"))
    code, output, report = scan(tmp_path, inv)
    assert code == 1, output
    found = statuses(report)
    assert found[("bad", "E2E-TELNET")] == "fail"
    assert found[("waived", "E2E-TELNET")] == "waived"
    [failed] = [f for f in report["findings"] if f["status"] == "fail"]
    assert failed["evidence"]["observed"]
    assert report["summary"]["systems"]["bad"]["by_status"]["fail"] == 1


def test_fail_on_threshold(tmp_path: Path, listeners: None) -> None:
    inv = inventory(tmp_path, ("bad", VIOLATING, "[{port: 8080}]"))
    assert scan(tmp_path, inv, "--fail-on", "critical")[0] == 0
    assert scan(tmp_path, inv, "--fail-on", "high")[0] == 1


def test_out_of_scope_host_exits_2_before_any_packet(tmp_path: Path) -> None:
    # A listener of our own at the out-of-scope address proves nothing was sent there.
    with socket.create_server((OUTSIDE, 8081)) as server:
        server.settimeout(0.5)
        inv = inventory(tmp_path, ("outside", OUTSIDE, "[{port: 8081}]"))
        code, output, report = scan(tmp_path, inv)
        assert code == 2
        assert "not in any scope network" in output
        assert len(output.strip().splitlines()) == 1
        assert report is None
        with pytest.raises(TimeoutError):
            server.accept()
    assert not (tmp_path / "runs.db").exists()


def test_bad_inventory_exits_2_with_file_and_line(tmp_path: Path) -> None:
    inv = tmp_path / "inventory.yaml"
    inv.write_text("province: x\nscope: [127.0.10.0/24]\nsystems:\n  - id: a\n    levle: 3\n")
    code, output, _ = scan(tmp_path, inv)
    assert code == 2
    assert f"{inv}:" in output
    assert "Traceback" not in output


def test_host_that_does_not_answer_gives_errors_and_exits_3(tmp_path: Path) -> None:
    # Nothing listens on the declared TLS port: every TLS rule is an error, none a pass.
    inv = inventory(tmp_path, ("silent", "127.0.10.4", "[{port: 8443, kind: tls}]"))
    code, output, report = scan(tmp_path, inv, policy="baseline-tls", check="tls")
    assert code == 3, output
    found = {f["status"] for f in report["findings"]}
    assert "error" in found
    assert "pass" not in found
    assert report["summary"]["overall"]["score"] is None


def test_bad_signing_key_exits_2_before_scanning(tmp_path: Path) -> None:
    key = tmp_path / "not-a-key.pem"
    key.write_text("hello")
    inv = inventory(tmp_path, ("ok", COMPLIANT, "[]"))
    code, output, report = scan(tmp_path, inv, "--sign-key", str(key))
    assert code == 2
    assert "not-a-key.pem" in output
    assert report is None
    assert not (tmp_path / "runs.db").exists()


def test_a_report_directory_that_is_a_file_is_refused_before_scanning(tmp_path: Path) -> None:
    blocker = tmp_path / "out"
    blocker.write_text("a file where the report directory should go")
    code, output, _ = scan(tmp_path, inventory(tmp_path, ("ok", COMPLIANT, "[{port: 8080}]")))
    assert code == 2
    assert "is not a directory" in output and "Traceback" not in output
    assert not (tmp_path / "runs.db").exists()


@pytest.mark.parametrize(
    ("system", "code"), [(("ok", COMPLIANT, "[{port: 8080}]"), 5), (("bad", VIOLATING, "[{port: 8080}]"), 1)]
)
def test_a_report_that_cannot_be_written_never_hides_the_outcome(
    tmp_path: Path, listeners: None, system: tuple[str, str, str], code: int
) -> None:
    # The report directory cannot be created (its parent is a file) only when the report is
    # written: the scan ran. A violation stays exit 1; otherwise exit 5 says "no report".
    (tmp_path / "blocker").write_text("a file")
    out = tmp_path / "blocker" / "out"
    args = ["scan", "-i", str(inventory(tmp_path, system)), "-p", str(E2E / "policy.yaml"), "--check",
            "ports", "--db", str(tmp_path / "runs.db"), "--out", str(out), "--format", "json"]  # fmt: skip
    result = CliRunner().invoke(main, args, env={"CI": "true"})
    assert result.exit_code == code, result.output
    [error] = [line for line in result.output.splitlines() if line.startswith("attt: error:")]
    assert "cannot write the report to" in error and "attt report" in error
    assert "report: " not in result.output
    history = CliRunner().invoke(main, ["history", "--db", str(tmp_path / "runs.db")])
    assert "complete" in history.output


def test_unknown_check_exits_2(tmp_path: Path) -> None:
    code, output, _ = scan(tmp_path, inventory(tmp_path, ("ok", COMPLIANT, "[]")), "--check", "nosuch")
    assert code == 2
    assert "unknown check 'nosuch'" in output


def test_history_report_and_diff_use_the_store(tmp_path: Path, listeners: None) -> None:
    db = str(tmp_path / "runs.db")
    inv = inventory(tmp_path, ("bad", MENDED, "[{port: 8080}]"))
    with tcp_listeners([(MENDED, 2323)], banner=b"login: "):
        scan(tmp_path, inv)
    scan(tmp_path, inv)  # telnet closed since: the rule passes now
    runner = CliRunner()
    history = runner.invoke(main, ["history", "--db", db])
    newer, older = (line.split()[0] for line in history.output.splitlines()[:2])
    diff = runner.invoke(main, ["diff", older, newer, "--db", db])
    assert diff.exit_code == 0
    assert "new: 0" in diff.output
    assert "fixed: 1\n  E2E-TELNET" in diff.output
    # The documented names: `previous` is the run `latest` is compared with.
    named = runner.invoke(main, ["diff", "previous", "latest", "--db", db])
    assert named.output == diff.output
    # The user's language, as for every other command.
    vietnamese = runner.invoke(main, ["--lang", "vi", "diff", older, newer, "--db", db])
    assert "mới: 0" in vietnamese.output and "đã khắc phục: 1\n  E2E-TELNET" in vietnamese.output
    # The same system moved to another host: its old failure was not re-checked, not fixed.
    scan(tmp_path, inventory(tmp_path, ("bad", VIOLATING, "[{port: 8080}]")))
    scan(tmp_path, inventory(tmp_path, ("bad", COMPLIANT, "[{port: 8080}]")))
    history = runner.invoke(main, ["history", "--db", db])
    newer, older = (line.split()[0] for line in history.output.splitlines()[:2])
    moved = runner.invoke(main, ["diff", older, newer, "--db", db])
    assert "fixed: 0" in moved.output and "not re-checked: 1\n  E2E-TELNET" in moved.output
    assert (
        "! the runs are not alike (other hosts): a failure on what only one of them scanned" in moved.output
    )
    vi_moved = runner.invoke(main, ["--lang", "vi", "diff", older, newer, "--db", db])
    assert "! hai lượt quét không tương đồng (quét tập máy chủ khác)" in vi_moved.output
    # Asked the wrong way round: said, not silently read as the reverse.
    backwards = runner.invoke(main, ["diff", newer, older, "--db", db])
    assert f"! {newer} started after {older}: the changes read from the later run back" in backwards.output
    again_dir = tmp_path / "again"
    args = ["report", older, "--db", db, "--out", str(again_dir), "--format", "json"]
    rerendered = runner.invoke(main, args)
    assert rerendered.exit_code == 0, rerendered.output
    again = json.loads((again_dir / "report.json").read_text())
    assert statuses(again)[("bad", "E2E-TELNET")] == "fail"


def test_signed_bundle_verifies_and_a_changed_byte_is_caught(tmp_path: Path, listeners: None) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    private, public = tmp_path / "sign.pem", tmp_path / "sign.pub"
    pem = serialization.Encoding.PEM
    private.write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    private.chmod(0o600)
    public.write_bytes(key.public_key().public_bytes(pem, serialization.PublicFormat.SubjectPublicKeyInfo))
    inv = inventory(tmp_path, ("ok", COMPLIANT, "[{port: 8080}]"))
    assert scan(tmp_path, inv, "--format", "html,json,csv", "--sign-key", str(private))[0] == 0
    out = tmp_path / "out"
    runner = CliRunner()
    assert runner.invoke(main, ["verify", str(out), "--public-key", str(public)]).exit_code == 0
    html = out / "report.html"
    html.write_bytes(html.read_bytes().replace(b"<html", b"<HTML", 1))
    tampered = runner.invoke(main, ["verify", str(out), "--public-key", str(public)])
    assert tampered.exit_code == 1
    assert "changed: report.html" in tampered.output


def wait_for_probe(db: Path, check: str, deadline: float) -> None:
    while time.monotonic() < deadline:
        if db.exists():
            with sqlite3.connect(db) as conn:
                try:
                    if conn.execute("SELECT 1 FROM probes WHERE check_name = ?", (check,)).fetchone():
                        return
                except sqlite3.OperationalError:
                    pass  # the schema is being created
        time.sleep(0.1)
    pytest.fail(f"no {check} probe was recorded in time")


def test_sigterm_keeps_what_was_observed_and_resume_finishes_the_run(tmp_path: Path) -> None:
    silent = ("127.0.10.6", 8443)
    inv = inventory(tmp_path, ("slow", silent[0], f"[{{port: {silent[1]}, kind: tls}}]"))
    db = tmp_path / "runs.db"
    attt = str(Path(sys.executable).with_name("attt"))
    args = ["-p", "baseline", "--check", "ports", "--check", "tls", "--db", str(db), "--format", "json",
            "--timeout", "60", "--concurrency", "1"]  # fmt: skip
    with tcp_listeners([silent]):  # accepts and never answers: the TLS probe hangs
        scan_process = subprocess.Popen(
            [attt, "scan", "-i", str(inv), "--out", str(tmp_path / "first"), *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "CI": "true"},
        )  # fmt: skip
        try:
            wait_for_probe(db, "ports", time.monotonic() + 30)
            time.sleep(0.5)  # the TLS probe is under way now
            scan_process.send_signal(signal.SIGTERM)
            _, stderr = scan_process.communicate(timeout=20)
        finally:
            scan_process.kill()
    assert scan_process.returncode == 130, stderr
    assert "Traceback" not in stderr
    first = json.loads((tmp_path / "first" / "report.json").read_text())
    assert first["run"]["status"] == "incomplete"
    assert [o["check"] for o in first["observations"]] == ["ports"]
    assert "pass" not in {f["status"] for f in first["findings"] if f["check"] == "tls"}
    # The silent port is gone now: resuming probes TLS only (refused at once), not ports again.
    resumed = subprocess.run(
        [attt, "scan", "--resume", first["run"]["id"], "--out", str(tmp_path / "second"), *args],
        capture_output=True, text=True, timeout=120, env={**os.environ, "CI": "true"}, check=False,
    )  # fmt: skip
    assert resumed.returncode in (1, 3), resumed.stderr
    second = json.loads((tmp_path / "second" / "report.json").read_text())
    assert second["run"]["id"] == first["run"]["id"]
    assert second["run"]["status"] == "complete"
    assert [o["check"] for o in second["observations"]] == ["ports", "tls"]
    assert second["observations"][0] == first["observations"][0]
    assert second["observations"][1]["status"] == "error"


def test_resume_refuses_a_complete_run(tmp_path: Path, listeners: None) -> None:
    scan(tmp_path, inventory(tmp_path, ("ok", COMPLIANT, "[{port: 8080}]")))
    run_id = json.loads((tmp_path / "out" / "report.json").read_text())["run"]["id"]
    result = CliRunner().invoke(main, ["scan", "--resume", run_id, "--db", str(tmp_path / "runs.db")])
    assert result.exit_code == 2
    assert "nothing to resume" in result.output


def test_a_policy_loosened_between_runs_fixes_nothing_and_diff_says_why(
    tmp_path: Path, listeners: None
) -> None:
    # The server does not change (telnet stays open); the rule is loosened to another port.
    db, runner = str(tmp_path / "runs.db"), CliRunner()
    strict = (E2E / "policy.yaml").read_text()
    policy = tmp_path / "e2e.yaml"
    policy.write_text(strict)
    inv = inventory(tmp_path, ("bad", VIOLATING, "[{port: 8080}]"))
    assert scan(tmp_path, inv, policy=str(policy))[0] == 1
    policy.write_text(strict.replace("params: {ports: [2323]}", "params: {ports: [23]}"))
    code, output, _ = scan(tmp_path, inv, "--format", "json,html", policy=str(policy))
    assert code == 0, output
    diff = runner.invoke(main, ["diff", "previous", "latest", "--db", db])
    assert diff.exit_code == 0, diff.output
    assert "fixed: 0" in diff.output and "new: 0" in diff.output
    assert "! policy e2e changed between the runs (sha256 " in diff.output
    assert "the server may not have): 1\n  E2E-TELNET" in diff.output
    assert "fail -> pass" in diff.output
    vietnamese = runner.invoke(main, ["--lang", "vi", "diff", "previous", "latest", "--db", db])
    assert "đã khắc phục: 0" in vietnamese.output
    assert "! chính sách e2e đã thay đổi nội dung giữa hai lượt quét" in vietnamese.output
    assert "không đạt -> đạt" in vietnamese.output
    # The report's change section: nothing fixed, the change of policy named.
    html = (tmp_path / "out" / "report.html").read_text()
    changes = html[html.index('<section id="changes">') :]
    changes = changes[: changes.index("</section>")]
    assert "policy e2e changed between the runs" in changes or "chính sách e2e đã thay đổi" in changes
    assert "Đã khắc phục: <strong>0</strong>" in changes or "Fixed: <strong>0</strong>" in changes
    assert "E2E-TELNET" in changes
    # History shows each run's policy with its content's hash: the two runs' differ.
    history = runner.invoke(main, ["history", "--db", db]).output.splitlines()
    judged_by = [line.split()[-1] for line in history]
    assert all(p.startswith("e2e@") for p in judged_by) and judged_by[0] != judged_by[1]
    # The latest run judged again by the strict policy (`attt report -p`): the same content as its
    # baseline's, so the comparison is like for like again: still failing, nothing to note.
    policy.write_text(strict)
    again = tmp_path / "again"
    args = ["--lang", "en", "report", "latest", "-p", str(policy), "--db", db, "--out", str(again)]
    assert runner.invoke(main, [*args, "--format", "html"]).exit_code == 0
    rejudged = (again / "report.html").read_text()
    section = rejudged[rejudged.index('<section id="changes">') :]
    section = section[: section.index("</section>")]
    assert "Fixed: <strong>0</strong>" in section and "Still failing: <strong>1</strong>" in section
    assert "changed between the runs" not in section


def test_diff_of_a_latest_run_cut_short_says_so_and_fixes_nothing(tmp_path: Path, listeners: None) -> None:
    from datetime import timedelta

    from attt.scanner.store import Store, locate

    db = tmp_path / "runs.db"
    inv = inventory(tmp_path, ("bad", VIOLATING, "[{port: 8080}]"))
    assert scan(tmp_path, inv)[0] == 1
    # The next run was killed before its first probe ended: stored, never judged.
    store = Store(locate(db))
    first = store.load("latest")
    info = first.info.model_copy(
        update={
            "id": "20991231T000000Z-cut",
            "started": first.info.started + timedelta(hours=1),
            "status": "running",
        }
    )
    store.create_run(info, first.systems, first.targets)
    store.mark(info.id, "incomplete", info.started + timedelta(minutes=1))
    store.close()
    for lang, unfinished, fixed, not_rechecked in (
        ("en", "! run 20991231T000000Z-cut is incomplete: a rule it did not reach", "fixed: 0",
         "not re-checked: 1\n  E2E-TELNET"),
        ("vi", "! lượt quét 20991231T000000Z-cut chưa hoàn tất", "đã khắc phục: 0",
         "chưa kiểm tra lại được: 1\n  E2E-TELNET"),
    ):  # fmt: skip
        result = CliRunner().invoke(main, ["--lang", lang, "diff", "previous", "latest", "--db", str(db)])
        assert result.exit_code == 0, result.output
        assert result.output.startswith(f"{first.info.id} -> 20991231T000000Z-cut\n")
        assert unfinished in result.output and fixed in result.output and not_rechecked in result.output
