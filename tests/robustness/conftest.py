"""Shared state of the robustness suite: how many fuzz examples each loader saw, reported at
the end of the session and written to test-artifacts/ for the closing note."""

import json
from collections import Counter
from pathlib import Path

import pytest

FUZZ_COUNTS: Counter[str] = Counter()
"""Documents fed to each loader (and CLI samples) during this session."""
ARTIFACTS = Path("test-artifacts")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not FUZZ_COUNTS:
        return
    terminalreporter.section("robustness: fuzz examples per loader")
    for kind, count in sorted(FUZZ_COUNTS.items()):
        terminalreporter.write_line(f"{kind:<16} {count}")
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "fuzz-counts.json").write_text(json.dumps(dict(FUZZ_COUNTS), indent=2, sort_keys=True))
