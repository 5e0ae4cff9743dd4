"""Fail closed: what attt could not observe is never reported as compliant.

- A scan in which no target can be reached (the whole scan runs in a fresh network namespace
  whose loopback is down, so every connection fails and no packet goes anywhere) exits 3, judges
  nothing as passed, and its report says that nothing could be checked.
- Without nmap on PATH, the ports check gives `error` findings and exit 3.
- In evaluation, a missing observation, an error observation, an observation that does not fit
  its model and a crashing control each give `not_applicable` or `error`, never `pass`.
"""

import json
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml
from pydantic import BaseModel

from attt.scanner.evaluate import evaluate, exit_code
from attt.scanner.exitcodes import ExitCode
from attt.scanner.models.base import Severity, Text
from attt.scanner.models.observation import Observation
from attt.scanner.models.policy import AppliesTo, ResolvedPolicy, ResolvedRule
from attt.scanner.models.target import Host, SystemInfo, Target
from attt.scanner.plugin import API_VERSION, Control, NoSettings, ProbeContext
from attt.scanner.registry import RegisteredCheck, Registry
from tests.robustness.conftest import run_attt
from tests.scanner import plugins
from tests.servers.hostile import NET

UNREACHABLE_HOSTS = [f"{NET}.20", f"{NET}.7", f"{NET}.99"]


def _inventory(path: Path, addresses: list[str]) -> Path:
    hosts = [
        {"address": a, "services": [{"port": 443, "kind": "tls"}, {"port": 22, "kind": "ssh"}]}
        for a in addresses
    ]
    system = {"id": "portal", "name": "Portal", "owner": "Sở KH&CN", "level": 3, "hosts": hosts}
    path.write_text(yaml.safe_dump({"province": "Hà Tĩnh", "scope": [f"{NET}.0/24"], "systems": [system]}))
    return path


def _can_unshare_network() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True, timeout=10)
    return probe.returncode == 0


@pytest.mark.skipif(not _can_unshare_network(), reason="needs `unshare -n` (root, util-linux)")
def test_a_scan_that_reaches_nothing_exits_3_and_says_so(tmp_path: Path) -> None:
    inventory = _inventory(tmp_path / "inventory.yaml", UNREACHABLE_HOSTS)
    out = tmp_path / "out"
    run = run_attt(
        [
            "scan",
            "-i",
            str(inventory),
            "--timeout",
            "5",
            "--out",
            str(out),
            "--format",
            "html,json",
            "--lang",
            "en",
            "--db",
            str(tmp_path / "store.sqlite"),
        ],
        wrapper=["unshare", "-n"],
        timeout=90,
    )
    assert run.returncode == ExitCode.INCOMPLETE, run.terminal[-2000:]
    report: dict[str, Any] = json.loads((out / "report.json").read_text(encoding="utf-8"))
    statuses = {f["status"] for f in report["findings"]}
    assert "pass" not in statuses and "waived" not in statuses, statuses
    assert "error" in statuses
    assert all(o["status"] == "error" for o in report["observations"]), report["observations"]
    assert report["summary"]["overall"]["score"] is None, report["summary"]["overall"]
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "could not be checked" in html
    assert "Every planned check could be run" not in html
    assert "100%" not in run.stdout


def test_without_nmap_the_ports_check_errors_and_exits_3(tmp_path: Path) -> None:
    inventory = _inventory(tmp_path / "inventory.yaml", [f"{NET}.20"])
    empty_path = tmp_path / "bin"
    empty_path.mkdir()
    out = tmp_path / "out"
    run = run_attt(
        [
            "scan",
            "-i",
            str(inventory),
            "--check",
            "ports",
            "--timeout",
            "5",
            "--out",
            str(out),
            "--format",
            "json",
            "--db",
            str(tmp_path / "store.sqlite"),
        ],
        env={"PATH": str(empty_path)},
        timeout=60,
    )
    assert run.returncode == ExitCode.INCOMPLETE, run.terminal[-2000:]
    assert "Traceback" not in run.terminal
    report: dict[str, Any] = json.loads((out / "report.json").read_text(encoding="utf-8"))
    (observation,) = report["observations"]
    assert observation["status"] == "error" and "nmap" in observation["error"]
    statuses = {f["status"] for f in report["findings"]}
    assert statuses and statuses <= {"error", "not_applicable"} and "error" in statuses


# --- evaluation never invents a pass ---------------------------------------------------------------

SYSTEM = SystemInfo(id="portal", name="Portal", owner="Sở KH&CN", level=3)
TARGET = Target(system=SYSTEM, host=Host(address=f"{NET}.20"), ip=f"{NET}.20")
NOW = datetime(2026, 11, 27, tzinfo=UTC)


def _rule(control: str = "count.at_most") -> ResolvedRule:
    return ResolvedRule(
        id="COUNT-SMALL",
        control=control,
        check=control.split(".")[0],
        params=plugins.AtMost(limit=1000),
        severity=Severity.HIGH,
        applies_to=AppliesTo(),
        title=Text(vi="t", en="t"),
        remediation=Text(vi="r", en="r"),
        references=(),
        policy="fuzz",
    )


def _policy(rule: ResolvedRule) -> dict[str, tuple[ResolvedPolicy, ...]]:
    policy = ResolvedPolicy(
        id="fuzz", title="t", version="1", sha256="0" * 64, sources=(), rules=(rule,), waivers=(), settings={}
    )
    return {SYSTEM.id: (policy,)}


def _exploding(data: plugins.CountData, params: plugins.AtMost, target: Target) -> Any:
    """Raises instead of judging."""
    raise RuntimeError("control bug")


class _ExplodingCheck:
    """Observes like `count`, but its control raises: a plugin bug must not become a pass."""

    name: ClassVar[str] = "boom"
    api_version: ClassVar[int] = API_VERSION
    data_model: ClassVar[type[BaseModel]] = plugins.CountData
    settings_model: ClassVar[type[BaseModel]] = NoSettings
    after: ClassVar[tuple[str, ...]] = ()
    controls: ClassVar[Mapping[str, Control[Any, Any]]] = {
        "boom.at_most": Control("boom.at_most", plugins.AtMost, _exploding)
    }

    def probe(self, target: Target, ctx: ProbeContext[Any]) -> Iterable[Observation]:
        return []


def _registry() -> Registry:
    return Registry.of({**plugins.registry().checks, "boom": RegisteredCheck(_ExplodingCheck(), "tests")})


def _ok(check: str, data: dict[str, Any]) -> Observation:
    return Observation(
        check=check, system=SYSTEM.id, host=TARGET.address, ip=TARGET.ip, status="ok", data=data
    )


CASES: dict[str, tuple[str, list[Observation], str]] = {
    "no observation": ("count.at_most", [], "not_applicable"),
    "error observation": ("count.at_most", [Observation.failed("count", TARGET, "refused", 1)], "error"),
    "observation without data": ("count.at_most", [_ok("count", {})], "error"),
    "observation of the wrong shape": ("count.at_most", [_ok("count", {"count": "many"})], "error"),
    "observation with extra fields": ("count.at_most", [_ok("count", {"count": 1, "extra": True})], "error"),
    "crashing control": ("boom.at_most", [_ok("boom", {"count": 1})], "error"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_missing_or_broken_observation_is_never_a_pass(case: str) -> None:
    control, observations, expected = CASES[case]
    rule = _rule(control)
    findings = evaluate([TARGET], observations, _policy(rule), _registry(), [rule.check], NOW)
    assert [f.status for f in findings] == [expected]
    assert exit_code(findings, Severity.LOW, complete=True) == ExitCode.INCOMPLETE


def test_findings_of_only_not_applicable_rules_are_not_compliance() -> None:
    rule = _rule()
    findings = evaluate([TARGET], [], _policy(rule), _registry(), [rule.check], NOW)
    assert exit_code(findings, None, complete=True) == ExitCode.INCOMPLETE
    assert exit_code([], Severity.LOW, complete=True) == ExitCode.INCOMPLETE
