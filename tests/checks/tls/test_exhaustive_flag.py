"""`attt scan --tls-exhaustive`: sslyze's one-handshake-per-suite enumeration for the run, counted
on the wire against a real lab server, recorded with the run and kept by a resumed run."""

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from attt.scanner.cli import main
from attt.scanner.lifecycle import ResumeConflict, remember, resumed_options
from tests.checks.tls.test_elimination import FACTS, counted_connections
from tests.servers.tls import TlsLab


def _scan(tmp_path: Path, lab: TlsLab, *extra: str) -> tuple[dict[str, Any], int]:
    server = lab.servers["modern"]
    tmp_path.mkdir()
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        textwrap.dedent(f"""\
        province: Hà Tĩnh
        scope: [{server.ip}/32]
        systems:
          - id: cong
            name: Cổng
            owner: Sở Khoa học và Công nghệ
            level: 3
            hosts:
              - address: {server.ip}
                hostname: {server.hostname}
                services: [{{port: {server.port}, kind: tls}}]
        """),
        encoding="utf-8",
    )
    out = tmp_path / "out"
    args = ["scan", "-i", str(inventory), "-p", "baseline-tls", "--check", "tls", "--timeout", "20",
            "--db", str(tmp_path / "runs.db"), "--out", str(out), "--format", "json", *extra]  # fmt: skip
    with counted_connections() as connects:
        result = CliRunner().invoke(main, args, env={"CI": "true"})
    assert result.exit_code in (0, 1), result.output
    return json.loads((out / "report.json").read_text()), connects.by_ip[server.ip]


@pytest.mark.slow
def test_the_flag_enumerates_every_suite_and_is_recorded(tmp_path: Path, tls_lab_servers: TlsLab) -> None:
    fast, fast_connects = _scan(tmp_path / "fast", tls_lab_servers)
    full, full_connects = _scan(tmp_path / "full", tls_lab_servers, "--tls-exhaustive")
    # sslyze tries each of its ~580 suite and version pairs on its own connection
    assert full_connects > 400 > 100 > fast_connects, (fast_connects, full_connects)
    print(
        f"connections to one TLS 1.2+1.3 server: {fast_connects} by elimination, {full_connects} exhaustive"
    )
    assert fast["run"]["options"]["tls_exhaustive"] == "False"
    assert full["run"]["options"]["tls_exhaustive"] == "True"
    [seen_fast], [seen_full] = fast["observations"], full["observations"]
    assert seen_fast["status"] == seen_full["status"] == "ok", (seen_fast, seen_full)
    assert {f: seen_fast["data"][f] for f in FACTS} == {f: seen_full["data"][f] for f in FACTS}
    verdicts = [{(f["rule_id"], f["status"]) for f in r["findings"]} for r in (fast, full)]
    assert verdicts[0] == verdicts[1]


def test_a_resumed_run_keeps_the_choice_it_started_with() -> None:
    saved = remember({"tls_exhaustive": True, "timeout": 5.0})
    assert saved["tls_exhaustive"] == "True"
    assert resumed_options("run-1", saved, {})["tls_exhaustive"] == "True"
    with pytest.raises(ResumeConflict, match="--tls-exhaustive"):
        resumed_options("run-1", remember({"tls_exhaustive": False}), {"tls_exhaustive": True})
