"""`report.sarif`: SARIF 2.1.0 for CI code-scanning views.

Every rule the run evaluated becomes a `reportingDescriptor` with its remediation as help text.
Results are the findings a CI must see: failures (`kind: fail`), rules that could not be
evaluated (`kind: open`, the tool could not decide) and waived failures (a `fail` with an
accepted external suppression). Passes and not-applicable rules stay in report.json.
Each result is located at a URI naming the service, such as `tls://host:443`, or
`host://system/host` when no port is involved.
"""

import hashlib
import ipaddress
import json
import re
from datetime import UTC, datetime
from typing import Any, ClassVar, Final
from urllib.parse import quote

from attt.reports._text import clean_json
from attt.reports.base import DEFAULT_CONTEXT, Lang, RenderContext
from attt.scanner.models.base import Severity
from attt.scanner.models.finding import Finding
from attt.scanner.models.report import Report
from attt.scanner.text import clean, clean_line

SARIF_SCHEMA: Final = "https://json.schemastore.org/sarif-2.1.0.json"
_BELOW: Final = {
    Severity.CRITICAL: "warning",
    Severity.HIGH: "warning",
    Severity.MEDIUM: "warning",
    Severity.LOW: "note",
    Severity.INFO: "note",
}
"""The level of a failure below `--fail-on`: shown, but not one a CI gate stops on."""


def level(severity: Severity, fail_on: Severity | None) -> str:
    """`error` from the `--fail-on` severity up, as the scan's exit code; below it, warning or note."""
    return "error" if fail_on is not None and severity.rank >= fail_on.rank else _BELOW[severity]


_SCHEME_UNSAFE: Final = re.compile(r"[^a-z0-9+.-]")
_LINK_SYNTAX: Final = re.compile(r"([\\\[\]])")
_REPORTED: Final = frozenset({"fail", "error", "waived"})


class SarifRenderer:
    format: ClassVar[str] = "sarif"
    filename: ClassVar[str] = "report.sarif"

    def render(self, report: Report, lang: Lang, context: RenderContext = DEFAULT_CONTEXT) -> bytes:
        rules: dict[str, Finding] = {}
        for f in sorted(report.findings, key=lambda f: f.rule_id):
            rules.setdefault(f.rule_id, f)
        index = {rule_id: i for i, rule_id in enumerate(rules)}
        owner = {s.id: s.owner for s in report.systems}
        results = [
            _result(f, index[f.rule_id], owner.get(f.system, ""), lang, context.fail_on)
            for f in sorted(report.findings, key=lambda f: (f.system, f.host, f.port or 0, f.rule_id))
            if f.status in _REPORTED
        ]
        log = {
            "$schema": SARIF_SCHEMA,
            "version": "2.1.0",
            "runs": [
                {
                    "tool": {
                        "driver": {
                            "name": "attt",
                            "version": report.tool_version,
                            "semanticVersion": report.tool_version,
                            "rules": [_rule(f, lang, context.fail_on) for f in rules.values()],
                        }
                    },
                    "automationDetails": {"id": f"attt/{clean_line(report.run.id)}"},
                    "invocations": [
                        {
                            "executionSuccessful": report.run.status == "complete",
                            "startTimeUtc": _utc(report.run.started),
                            **(
                                {"endTimeUtc": _utc(report.run.finished)}
                                if report.run.finished is not None
                                else {}
                            ),
                            "toolExecutionNotifications": [
                                {
                                    "level": "error",
                                    "message": _message(o.error or ""),
                                    "locations": [_location(o.check, o.system, o.host, o.port)],
                                    "descriptor": {"id": f"probe/{clean_line(o.check)}"},
                                }
                                for o in report.observations
                                if o.status == "error"
                            ],
                        }
                    ],
                    "results": results,
                    "properties": {
                        "province": clean(report.run.province),
                        "status": report.run.status,
                        "inventorySha256": report.run.inventory_sha256,
                        "policies": [
                            {"id": p.id, "version": clean(p.version), "sha256": p.sha256}
                            for p in report.run.policies
                        ],
                    },
                }
            ],
        }
        return json.dumps(log, ensure_ascii=False, indent=1).encode("utf-8") + b"\n"


def _message(text: str) -> dict[str, str]:
    """A plain-text SARIF message. In one, `[text](target)` is an embedded link that a viewer
    renders and follows (SARIF 2.1.0 §3.11.6): every `[`, `]` and `\\` is escaped with a
    backslash, as the standard asks of literal ones, so no text a target sent becomes a link."""
    return {"text": _LINK_SYNTAX.sub(r"\\\1", clean(text))}


def _utc(moment: datetime) -> str:
    """SARIF times are UTC with a `Z`; a naive time is taken as UTC."""
    utc = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return utc.isoformat().replace("+00:00", "Z")


def _rule(f: Finding, lang: Lang, fail_on: Severity | None) -> dict[str, Any]:
    references = [
        {"standard": clean(r.standard), "clause": clean(r.clause or ""), "confidence": r.confidence}
        for r in f.references
    ]
    return {
        "id": f.rule_id,
        "name": f.rule_id,
        "shortDescription": _message(f.title.get(lang)),
        "fullDescription": _message(f.title.get(lang)),
        "help": _message(f.remediation.get(lang)),
        "defaultConfiguration": {"level": level(f.severity, fail_on)},
        "properties": {
            "control": f.control,
            "check": f.check,
            "policy": f.policy,
            "severity": f.severity.value,
            "tags": ["security", "compliance", f.check],
            "references": references,
        },
    }


def _result(f: Finding, rule_index: int, owner: str, lang: Lang, fail_on: Severity | None) -> dict[str, Any]:
    message = f"{f.title.get(lang)}: {f.message.get(lang)}"
    result: dict[str, Any] = {
        "ruleId": f.rule_id,
        "ruleIndex": rule_index,
        # SARIF: a result whose kind is not "fail" carries level "none".
        "kind": "open" if f.status == "error" else "fail",
        "level": "none" if f.status == "error" else level(f.severity, fail_on),
        "message": _message(message),
        "locations": [_location(f.check, f.system, f.host, f.port)],
        "partialFingerprints": {"attt/finding/v1": _fingerprint(f)},
        "properties": {
            "status": f.status,
            "severity": f.severity.value,
            "system": f.system,
            "owner": clean(owner),
            "evidence": clean_json(f.evidence),
            "kind": f.kind,
            "blocked": list(f.blocked),
            # Where the verdict was seen from, once a run has zones or a rule asks for the Internet.
            **({"vantage": f.vantage} if f.vantage is not None else {}),
            **({"judgedFromInside": True} if f.judged_from_inside else {}),
        },
    }
    if f.waiver is not None:
        result["suppressions"] = [
            {
                "kind": "external",
                "status": "rejected" if f.waiver.expired else "accepted",
                "justification": clean(
                    f"{f.waiver.reason} — {f.waiver.approved_by}"
                    + (f", {f.waiver.decision}" if f.waiver.decision else "")
                    + f", {f.waiver.expires.isoformat()}"
                ),
            }
        ]
    return result


def _location(check: str, system: str, host: str, port: int | None) -> dict[str, Any]:
    if port is None:
        uri = f"host://{system}/{_uri_host(host)}"
    else:
        uri = f"{_scheme(check)}://{_uri_host(host)}:{port}"
    return {
        "physicalLocation": {"artifactLocation": {"uri": uri}},
        "logicalLocations": [
            {"name": clean_line(host), "fullyQualifiedName": f"{system}/{clean_line(host)}", "kind": "module"}
        ],
    }


def _scheme(check: str) -> str:
    """The check's name as a URI scheme; the ports check finds plain TCP services."""
    if check == "ports":
        return "tcp"
    scheme = _SCHEME_UNSAFE.sub("-", check.lower())
    return scheme if scheme[:1].isalpha() else "x-" + scheme


def _uri_host(host: str) -> str:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return quote(host, safe=".-")
    # A scope id (`%zone`, from a run stored before they were refused) is free text: encoded.
    return f"[{quote(str(address), safe=':')}]" if address.version == 6 else str(address)


def _fingerprint(f: Finding) -> str:
    key = "\x1f".join((f.rule_id, f.system, f.host, str(f.port)))
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]
