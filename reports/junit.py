"""`report.junit.xml`: one test suite per system, one test case per rule on a host (and port).

CI shows failures and errors apart, so a rule that could not be evaluated is an `<error>`, never a
`<failure>` and never a pass; waived and not-applicable rules are `<skipped>` with the reason.
A failure below `--fail-on` is not a `<failure>` (the scan does not fail on it either): the case
passes and its `<system-out>` says what failed and at which severity.

Names are stable across runs and safe for CI servers that split `classname` at dots into
package and class: `classname` is the system id (which holds no dot) and `name` the rule and
the place, `RULE @ host:port`.
"""

from collections import defaultdict
from datetime import UTC, datetime
from typing import ClassVar
from xml.etree import ElementTree as ET

from attt.reports._i18n import evidence_value, strings, vantage_text
from attt.reports._reference import reference_text
from attt.reports._text import as_text
from attt.reports.base import DEFAULT_CONTEXT, Lang, RenderContext
from attt.scanner.models.base import Severity
from attt.scanner.models.finding import Finding
from attt.scanner.models.report import Report
from attt.scanner.text import clean, clean_line


class JunitRenderer:
    format: ClassVar[str] = "junit"
    filename: ClassVar[str] = "report.junit.xml"

    def render(self, report: Report, lang: Lang, context: RenderContext = DEFAULT_CONTEXT) -> bytes:
        by_system: dict[str, list[Finding]] = defaultdict(list)
        for f in report.findings:
            by_system[f.system].append(f)
        names = {s.id: s.name for s in report.systems}
        root = ET.Element("testsuites", name=f"attt {clean_line(report.run.id)}")
        totals = dict.fromkeys(("tests", "failures", "errors", "skipped"), 0)
        for system_id in sorted(by_system):
            findings = sorted(by_system[system_id], key=lambda f: (f.host, f.port or 0, f.rule_id))
            suite = ET.SubElement(root, "testsuite", name=system_id)
            counts = dict.fromkeys(totals, 0)
            counts["tests"] = len(findings)
            properties = ET.SubElement(suite, "properties")
            ET.SubElement(
                properties, "property", name="system.name", value=clean_line(names.get(system_id, ""))
            )
            for f in findings:
                outcome = _testcase(suite, f, lang, context.fail_on)
                if outcome:
                    counts[outcome] += 1
            for key, value in counts.items():
                suite.set(key, str(value))
                totals[key] += value
            suite.set("timestamp", _utc(report.run.started).strftime("%Y-%m-%dT%H:%M:%S"))
        for key, value in totals.items():
            root.set(key, str(value))
        ET.indent(root)
        body: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
        return body + b"\n"


def _utc(moment: datetime) -> datetime:
    """JUnit's timestamp carries no zone, so it is given in UTC (a naive time is taken as UTC)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _testcase(suite: ET.Element, f: Finding, lang: Lang, fail_on: Severity | None) -> str | None:
    """Add the case of one finding; return the counter it adds to, if any."""
    t = strings(lang)
    place = f.host if f.port is None else f"{f.host}:{f.port}"
    case = ET.SubElement(
        suite,
        "testcase",
        name=clean_line(f"{f.rule_id} @ {place}"),
        classname=clean_line(f.system),
    )
    message = clean_line(f"{f.title.get(lang)}: {f.message.get(lang)}")
    if f.status == "fail" and (fail_on is None or f.severity.rank < fail_on.rank):
        out = ET.SubElement(case, "system-out")
        threshold = t["severity_" + fail_on.value] if fail_on is not None else "—"
        out.text = (
            t["below_threshold"].format(severity=t["severity_" + f.severity.value], threshold=threshold)
            + "\n"
            + _details(f, lang)
        )
        return None
    if f.status == "fail":
        element = ET.SubElement(case, "failure", message=message, type=f.severity.value)
        element.text = _details(f, lang)
        return "failures"
    if f.status == "error":
        element = ET.SubElement(case, "error", message=message, type="cannot_evaluate")
        element.text = _details(f, lang)
        return "errors"
    if f.status in ("waived", "not_applicable"):
        reason = t["status_" + f.status]
        if f.waiver is not None:
            w = f.waiver
            reason += f": {w.reason} ({t['approved_by']}: {w.approved_by}, {t['expires']}: {w.expires})"
        ET.SubElement(case, "skipped", message=clean_line(reason))
        return "skipped"
    return None


def _details(f: Finding, lang: Lang) -> str:
    t = strings(lang)
    lines = [clean(f.message.get(lang))]
    if vantage := vantage_text(f, lang):
        lines.append(f"{t['vantage']}: {clean_line(vantage)}")
    lines.extend(
        f"{t.get(key, clean_line(key))}: {as_text(evidence_value(value, lang))}"
        for key, value in f.evidence.items()
    )
    lines.append(f"{t['remediation']}: {clean(f.remediation.get(lang))}")
    lines.extend(f"{t['references']}: {clean(reference_text(r, lang))}" for r in f.references)
    return "\n".join(lines)
