"""A rogue worker (rogue.py) answers the coordinator's tasks with observations it never made,
each altered in one way: of another host, of another check, from another zone, of a newer data
model. Each zone holds one host, so each alteration is one batch of its own. Real redis-server,
the rogue as a process of its own; hosts on 127.0.206.0/24, never reached (nothing is probed)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from attt.scanner.cli import main
from attt.scanner.exitcodes import ExitCode
from tests.distributed.harness import ROOT, can_run, redis_server, stop_process, wait_for_worker

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(can_run() is not None and os.environ.get("CI") != "true", reason=str(can_run())),
]

POLICY = Path(__file__).parents[1] / "scanner" / "e2e" / "policy.yaml"
HOSTS = {f"r{n}": f"127.0.206.{n}" for n in (1, 2, 3, 4, 5)}


def inventory(path: Path) -> Path:
    zones = "".join(f"  - {{id: {z}, name: Zone {z}, cidrs: [{h}/32]}}\n" for z, h in HOSTS.items())
    hosts = "".join(f"      - {{address: {h}, services: [{{port: 8080}}]}}\n" for h in HOSTS.values())
    path.write_text(
        "province: Test\nscope: [127.0.206.0/24]\nzones:\n"
        + zones
        + "systems:\n  - id: sys-r\n    name: System r\n    owner: Agency\n    level: 2\n    hosts:\n"
        + hosts
    )
    return path


def test_a_rogue_workers_answers_become_errors_never_verdicts(tmp_path: Path) -> None:
    with redis_server(tmp_path / "redis") as broker:
        log = (tmp_path / "rogue.log").open("ab")
        rogue = subprocess.Popen(
            [sys.executable, "-m", "tests.distributed.rogue", broker.url, *HOSTS],
            stdout=log, stderr=subprocess.STDOUT, env=broker.env, cwd=ROOT, start_new_session=True,
        )  # fmt: skip
        try:
            wait_for_worker(broker, "r5")  # one worker: once it serves one zone, it serves them all
            inv = inventory(tmp_path / "inventory.yaml")
            args = ["scan", "-i", str(inv), "-p", str(POLICY), "--check", "ports", "--timeout", "3",
                    "--engine", "celery", "--broker", broker.url, "--db", str(tmp_path / "attt.db"),
                    "--format", "json", "--out", str(tmp_path / "out")]  # fmt: skip
            env = {"ATTT_BROKER_PASSWORD": broker.password, "ATTT_LANG": "en", "CI": "1"}
            result = CliRunner().invoke(main, args, env=env)
        finally:
            stop_process(rogue)
    assert result.exit_code == ExitCode.INCOMPLETE, result.output
    (report,) = (tmp_path / "out").rglob("report.json")
    findings = json.loads(report.read_text())["findings"]
    verdicts = {h: {f["status"] for f in findings if f["host"] == h} for h in HOSTS.values()}
    assert verdicts == {h: {"pass"} if zone == "r5" else {"error"} for zone, h in HOSTS.items()}
    for host, why in (
        (HOSTS["r1"], "the batched probe returned nothing for this host"),
        (HOSTS["r2"], "the batched probe returned nothing for this host"),
        (HOSTS["r3"], "the answer of zone r3's worker claims another vantage"),
        (HOSTS["r4"], "the answer of zone r4's worker is malformed"),
    ):
        (finding,) = (f for f in findings if f["host"] == host)
        assert (finding["evidence"]["observed"], finding["blocked"]) == (why, ["E2E-TELNET", "E2E-DECLARED"])
