"""`attt scan` end to end against real TCP listeners on 127.0.10.x: every exit code."""

import json
import socket
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from scanner.cli import main
from tests.servers.listeners import tcp_listeners

E2E = Path(__file__).parent / "e2e"
COMPLIANT, VIOLATING, WAIVED, OUTSIDE = "127.0.10.1", "127.0.10.2", "127.0.10.3", "127.0.11.9"


@pytest.fixture(scope="module")
def listeners() -> Iterator[None]:
    endpoints = [(COMPLIANT, 8080), (VIOLATING, 8080), (VIOLATING, 2323), (WAIVED, 2323)]
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


def test_unknown_check_exits_2(tmp_path: Path) -> None:
    code, output, _ = scan(tmp_path, inventory(tmp_path, ("ok", COMPLIANT, "[]")), "--check", "nosuch")
    assert code == 2
    assert "unknown check 'nosuch'" in output


def test_history_report_and_diff_use_the_store(tmp_path: Path, listeners: None) -> None:
    db = str(tmp_path / "runs.db")
    scan(tmp_path, inventory(tmp_path, ("bad", VIOLATING, "[{port: 8080}]")))
    scan(tmp_path, inventory(tmp_path, ("bad", COMPLIANT, "[{port: 8080}]")))
    runner = CliRunner()
    history = runner.invoke(main, ["history", "--db", db])
    newer, older = (line.split()[0] for line in history.output.splitlines()[:2])
    diff = runner.invoke(main, ["diff", older, newer, "--db", db])
    assert diff.exit_code == 0
    assert "new: 0" in diff.output
    assert "fixed: 1" in diff.output
    assert "E2E-TELNET" in diff.output
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
