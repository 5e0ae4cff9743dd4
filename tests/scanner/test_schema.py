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


def test_schema_describes_each_checks_observation_data_field_by_field() -> None:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    items = schema["properties"]["observations"]["items"]
    assert items["discriminator"]["propertyName"] == "check"
    assert set(items["discriminator"]["mapping"]) == {"ports", "tls", "ssh", "web"}
    defs = schema["$defs"]
    assert {"protocols", "cipher_suites", "forward_secrecy", "certificate", "vulnerabilities", "hsts"} <= set(
        defs["TlsData"]["properties"]
    )
    assert {"not_before", "not_after", "key_type", "key_bits", "signature_hash", "self_signed", "trusted",
            "hostname_matches", "expired"} <= set(defs["Certificate"]["properties"])  # fmt: skip
    assert {"banner", "software", "kex", "host_key_algorithms", "ciphers", "macs", "compression",
            "auth_methods", "strict_kex", "host_keys"} <= set(defs["SshData"]["properties"])  # fmt: skip
    assert {"port", "protocol", "service", "product", "version"} <= set(defs["OpenPort"]["properties"])
    assert {"scheme", "answer", "redirects", "off_scope_location", "cookies", "disclosures", "paths",
            "requests", "site"} <= set(defs["WebData"]["properties"])  # fmt: skip
