"""docs/ci.md: the GitLab CI and GitHub Actions jobs parse, and their `attt scan` lines are valid."""

import re
import shlex
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from attt.scanner.cli import scan

DOC = Path(__file__).resolve().parents[1] / "docs" / "ci.md"


def blocks() -> dict[str, Any]:
    """Each ```yaml block, by the `##` heading it follows."""
    found: dict[str, Any] = {}
    heading = ""
    for part in re.split(r"^(## .*)$", DOC.read_text("utf-8"), flags=re.M):
        if part.startswith("## "):
            heading = part[3:].strip()
        for body in re.findall(r"```yaml\n(.*?)```", part, flags=re.S):
            found[heading] = yaml.safe_load(body)
    return found


def scan_arguments(command: str) -> list[str]:
    """The arguments after `attt scan` in a shell line, with the shell's quoting removed."""
    words = shlex.split(command.replace("\n", " "))
    start = next(i for i, w in enumerate(words) if w.endswith("/attt") or w == "attt")
    assert words[start + 1] == "scan", command
    return words[start + 2 :]


def parse_scan(arguments: list[str]) -> dict[str, Any]:
    context = scan.make_context("scan", list(arguments), resilient_parsing=False)
    return dict(context.params)


def test_both_jobs_are_there_and_parse():
    assert set(blocks()) == {"GitLab CI", "GitHub Actions"}


def test_gitlab_job_fails_on_high_and_publishes_junit():
    job = blocks()["GitLab CI"]["attt-staging-scan"]
    (command,) = [line for line in job["script"] if " scan " in line]
    params = parse_scan(scan_arguments(command))
    assert params["fail_on"] == "high"
    assert {"junit", "sarif"} <= set(params["formats"].split(","))
    assert job["artifacts"]["reports"]["junit"] == f"{params['out']}/report.junit.xml"
    assert job["artifacts"]["when"] == "always"


def test_github_job_fails_on_high_and_publishes_junit_and_sarif():
    workflow = blocks()["GitHub Actions"]
    steps = workflow["jobs"]["attt-staging-scan"]["steps"]
    (command,) = [s["run"] for s in steps if " scan " in s.get("run", "")]
    params = parse_scan(scan_arguments(command))
    assert params["fail_on"] == "high"
    out = str(params["out"])
    uses = {s["uses"].split("@")[0]: s for s in steps if "uses" in s}
    assert uses["github/codeql-action/upload-sarif"]["with"]["sarif_file"] == f"{out}/report.sarif"
    assert uses["github/codeql-action/upload-sarif"]["if"] == "always()"
    assert uses["mikepenz/action-junit-report"]["with"]["report_paths"] == f"{out}/report.junit.xml"
    assert workflow["permissions"]["security-events"] == "write"


def test_a_wrong_option_in_the_docs_would_be_caught():
    with pytest.raises(click.BadParameter):
        parse_scan(["-i", "x.yaml", "--fail-on", "severe"])
