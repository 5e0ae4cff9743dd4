"""How every report and rule book cites a policy reference: one wording, in the report's
language, so a clause nobody checked never reads as certain in any format."""

from attt.reports._i18n import strings
from attt.reports.base import Lang
from attt.scanner.models.policy import Reference


def reference_text(reference: Reference, lang: Lang, *, url: bool = False) -> str:
    """`standard clause`, then `(how sure the clause is)` unless it was verified in the primary
    text, then ` <url>` when asked for and present. The confidence wording is the interface
    string of the same name (`reports/i18n/<lang>.yaml`).

    Policy text, not sanitised here: each renderer escapes it for its format."""
    text = f"{reference.standard} {reference.clause or ''}".strip()
    if reference.levels:
        # TCVN clauses are numbered per security level: say which levels this one speaks for.
        levels = ", ".join(str(n) for n in reference.levels)
        text = f"{text} ({strings(lang)['level'].lower()} {levels})"
    if reference.confidence != "verified":
        text = f"{text} ({strings(lang)[reference.confidence]})"
    return f"{text} <{reference.url}>" if url and reference.url else text
