"""The committed JSON Schema of report.json is what `attt schema` prints."""

import json
from pathlib import Path

from click.testing import CliRunner

from attt.scanner.cli import main

SCHEMA = Path(__file__).resolve().parents[2] / "docs" / "report.schema.json"


def test_committed_schema_is_current() -> None:
    result = CliRunner().invoke(main, ["schema"])
    assert result.exit_code == 0
    assert json.loads(result.output) == json.loads(SCHEMA.read_text(encoding="utf-8")), (
        "docs/report.schema.json is stale: run `make schema`"
    )


def test_schema_names_the_stable_fields() -> None:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    assert {"schema_version", "tool_version", "run", "observations", "findings", "summary"} <= set(
        schema["properties"]
    )
    finding = schema["$defs"]["Finding"]["properties"]
    assert {"rule_id", "control", "check", "system", "host", "port", "status", "severity", "title",
            "message", "evidence", "references", "remediation", "waiver"} <= set(finding)  # fmt: skip
