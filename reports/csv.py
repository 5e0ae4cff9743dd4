"""`report.csv`: one row per finding for spreadsheets.

UTF-8 with a byte-order mark so spreadsheet programs read the Vietnamese text correctly, and
every cell neutralised so that nothing a target sent is evaluated as a formula. Headers and
values are in the report's language (statuses, severities, known evidence values, dates as
dd/mm/yyyy in Vietnamese); the rule, check and control ids stay as they are, for filtering.
"""

import csv
import io
import json
from collections.abc import Callable
from typing import ClassVar, Final

from attt.reports._i18n import evidence_value, strings, vantage_text
from attt.reports._locale import day
from attt.reports._reference import reference_text
from attt.reports._text import spreadsheet_cell
from attt.reports.base import DEFAULT_CONTEXT, Lang, RenderContext
from attt.scanner.models.finding import Finding
from attt.scanner.models.report import Report
from attt.scanner.models.target import SystemInfo

_Column = tuple[str, Callable[[Finding, SystemInfo | None, Lang], str]]


def _json(value: object) -> str:
    return (
        value
        if isinstance(value, str)
        else json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    )


COLUMNS: Final[tuple[_Column, ...]] = (
    ("owner", lambda f, s, lang: s.owner if s else ""),
    ("system", lambda f, s, lang: f.system),
    ("system_name", lambda f, s, lang: s.name if s else ""),
    ("level", lambda f, s, lang: str(s.level) if s else ""),
    ("host", lambda f, s, lang: f.host),
    ("port", lambda f, s, lang: "" if f.port is None else str(f.port)),
    ("vantage", lambda f, s, lang: vantage_text(f, lang)),
    ("rule", lambda f, s, lang: f.rule_id),
    ("title", lambda f, s, lang: f.title.get(lang)),
    ("status", lambda f, s, lang: strings(lang)["status_" + f.status]),
    ("severity", lambda f, s, lang: strings(lang)["severity_" + f.severity.value]),
    ("message", lambda f, s, lang: f.message.get(lang)),
    ("observed", lambda f, s, lang: _json(evidence_value(f.evidence.get("observed", ""), lang))),
    ("expected", lambda f, s, lang: _json(evidence_value(f.evidence.get("expected", ""), lang))),
    ("remediation", lambda f, s, lang: f.remediation.get(lang)),
    (
        "references",
        lambda f, s, lang: "; ".join(reference_text(r, lang) for r in f.references),
    ),
    ("waiver", lambda f, s, lang: "" if f.waiver is None else f.waiver.reason),
    ("approved_by", lambda f, s, lang: "" if f.waiver is None else f.waiver.approved_by),
    ("expires", lambda f, s, lang: "" if f.waiver is None else day(f.waiver.expires, lang)),
    (
        "expired",
        lambda f, s, lang: (
            "" if f.waiver is None else strings(lang)["answer_yes" if f.waiver.expired else "answer_no"]
        ),
    ),
    ("check", lambda f, s, lang: f.check),
    ("control", lambda f, s, lang: f.control),
    ("policy", lambda f, s, lang: f.policy),
    # A probe error or a probe that never ran is one row naming the rules it kept from a verdict.
    ("blocked", lambda f, s, lang: " ".join(f.blocked)),
)
"""Each column: its interface-string key (the header, in the report's language) and its value."""


class CsvRenderer:
    format: ClassVar[str] = "csv"
    filename: ClassVar[str] = "report.csv"

    def render(self, report: Report, lang: Lang, context: RenderContext = DEFAULT_CONTEXT) -> bytes:
        t = strings(lang)
        systems = {s.id: s for s in report.systems}
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
        writer.writerow([t[key] for key, _ in COLUMNS])
        for f in sorted(report.findings, key=lambda f: (f.system, f.host, f.port or 0, f.rule_id)):
            system = systems.get(f.system)
            writer.writerow([spreadsheet_cell(value(f, system, lang)) for _, value in COLUMNS])
        return out.getvalue().encode("utf-8-sig")
