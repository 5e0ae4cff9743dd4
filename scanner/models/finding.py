"""Findings: the judgement of one rule on one host (and port)."""

import copy
import hashlib
import json
from collections.abc import Iterable
from datetime import date
from typing import Any, Final, Literal, NamedTuple

from pydantic import field_validator
from pydantic_core import to_json

from attt.scanner.models.base import Frozen, Severity, Text
from attt.scanner.models.policy import Reference

FindingStatus = Literal["pass", "fail", "error", "waived", "not_applicable"]
FindingKind = Literal["rule", "probe_error", "not_probed"]
"""`rule`: one rule judged on one endpoint. `probe_error`: the probe of an endpoint failed, and
the rules it would have judged are listed in `blocked` (one entry, counted once).
`not_probed`: the run ended before the probe ran (an interrupted or stopped scan)."""


class WaiverNote(Frozen):
    reason: str
    approved_by: str
    decision: str | None = None
    expires: date
    expired: bool
    """An expired waiver no longer applies; it is kept on the finding so the report says so."""


class Finding(Frozen):
    rule_id: str
    control: str
    check: str
    policy: str
    system: str
    host: str
    port: int | None = None
    status: FindingStatus
    severity: Severity
    title: Text
    message: Text
    """What the control saw, in both languages (a third-party check may give English only)."""

    @field_validator("message", mode="before")
    @classmethod
    def _one_text_for_both(cls, value: object) -> object:
        """Runs stored before messages were bilingual hold one string: it serves both languages."""
        return {"vi": value, "en": value} if isinstance(value, str) else value

    evidence: dict[str, Any]
    """`observed` and `expected` values, so a reader sees both side by side."""
    references: tuple[Reference, ...]
    remediation: Text
    waiver: WaiverNote | None = None
    kind: FindingKind = "rule"
    blocked: tuple[str, ...] = ()
    """For a `probe_error` or `not_probed` entry: the ids of the rules it kept from a verdict."""
    vantage: str | None = None
    """The zone the judged observations were made from; None: from where attt ran, without zones."""
    judged_from_inside: bool = False
    """The rule asks to be judged from outside (`vantage: internet`) but the run saw the host from
    no outside vantage, so it was judged on what was seen from inside, and says so."""

    def placed(self, system: str, host: str) -> "Finding":
        """The same finding on another system and host. Both are plain strings like the ones it
        holds, so nothing is validated again: `model_copy` took half as long again, for the twelve
        thousand not-applicable copies of a 1,000-host scan (`evaluate.Inapplicable`) and the
        findings alike but for system and host of a stored run read back (`store._expand`)."""
        placed = copy.copy(self)
        placed.__dict__.update(system=system, host=host)
        return placed


RULE_TEXT_FIELDS: Final = ("title", "remediation", "references")
"""A finding's copy of its rule's own text: the same in every finding of the rule, so the store
keeps one copy of it per rule (three quarters of a finding's bytes), and report.json writes it
once per rule before copying it into each row."""
_RULE_TEXT_SET: Final[set[str]] = set(RULE_TEXT_FIELDS)


class SharedText(Frozen):
    """A rule's text (`RULE_TEXT_FIELDS`) as the store keeps it once for all the rule's findings:
    read back, it is validated once and its objects shared by each of them (validated again in
    every finding, a stored 1,000-system run took a third longer to load)."""

    title: Text
    remediation: Text
    references: tuple[Reference, ...]


_SYSTEM_SLOT: Final = "\x00system\x00"
_HOST_SLOT: Final = "\x00host\x00"
# A string field's JSON is the same on its own as within the model (one serializer, pydantic-core).
_SYSTEM_JSON: Final = to_json(_SYSTEM_SLOT)
_HOST_JSON: Final = to_json(_HOST_SLOT)


class RuleText(NamedTuple):
    stored: str
    """The text as the store keeps it (keys sorted); its hash is the text's key."""
    fields: bytes
    """The same text's three fields as report.json writes them, without braces."""


class EncodedFinding(NamedTuple):
    row: str
    """The finding's JSON without its rule's text: the store's row."""
    text: str
    """The key of its rule's text (`FindingCodec.texts`)."""
    head: bytes
    """The row as report.json starts it, open for the text's fields."""


class FindingCodec:
    """Findings serialised once for both the store and report.json.

    A 1,000-host scan has tens of thousands of findings sharing a few hundred rule texts:
    serialising every finding whole for report.json and again for the store was a fifth of the
    scan's own time. Each finding is serialised once here without its rule's text, and each text
    once; the scan's judge does it while probes still run. Findings are looked up by identity
    (each is kept alive here, so that an identity is never reused); one not seen before is
    encoded when asked for. Encoding is one thread's at a time; findings encoded already may be
    read from several at once."""

    def __init__(self) -> None:
        self.texts: dict[str, RuleText] = {}
        self._encoded: dict[int, tuple[Finding, EncodedFinding]] = {}
        # The evaluator hands every finding of a rule the same text objects: most texts are
        # known by identity (the finding kept beside the key holds those objects alive) before
        # being compared field by field.
        self._by_identity: dict[tuple[int, ...], tuple[Finding, str]] = {}
        self._by_value: dict[tuple[object, ...], str] = {}

    def encode(self, findings: Iterable[Finding]) -> list[EncodedFinding]:
        return [self._one(finding) for finding in findings]

    def encode_alike(self, template: Finding, findings: Iterable[Finding]) -> None:
        """Serialise `findings`, each the same as `template` but for its system and host, from
        the template's own row with their two values put in (a province's not-applicable
        findings, more than half of them, cost a quarter as much this way)."""
        slotted = template.model_copy(update={"system": _SYSTEM_SLOT, "host": _HOST_SLOT})
        row = slotted.__pydantic_serializer__.to_json(slotted, exclude=_RULE_TEXT_SET)
        head, _, rest = row.partition(_SYSTEM_JSON)
        middle, _, tail = rest.partition(_HOST_JSON)
        if row.count(_SYSTEM_JSON) != 1 or row.count(_HOST_JSON) != 1:  # never seen: a slot in a text
            self.encode(findings)
            return
        text = self._text_key(template)
        for finding in findings:
            alike = b"".join((head, to_json(finding.system), middle, to_json(finding.host), tail))
            self._encoded[id(finding)] = (finding, EncodedFinding(alike.decode(), text, alike[:-1] + b","))

    def report_json(self, findings: Iterable[Finding]) -> list[bytes]:
        """The findings as report.json's array, in pieces (joined, tens of MB copied once more):
        each row with its rule's text spliced back in (the same object as `Finding`'s own JSON,
        with the text's three fields last)."""
        pieces = [b"["]
        for finding in findings:
            encoded = self._one(finding)
            pieces += (encoded.head, self.texts[encoded.text].fields, b",")
        if len(pieces) == 1:
            return [b"[]"]
        pieces[-1] = b"]"
        return pieces

    def _one(self, finding: Finding) -> EncodedFinding:
        known = self._encoded.get(id(finding))
        if known is not None and known[0] is finding:
            return known[1]
        row = finding.__pydantic_serializer__.to_json(finding, exclude=_RULE_TEXT_SET)
        encoded = EncodedFinding(row.decode(), self._text_key(finding), row[:-1] + b",")
        self._encoded[id(finding)] = (finding, encoded)
        return encoded

    def _text_key(self, finding: Finding) -> str:
        same = (id(finding.title), id(finding.remediation), *map(id, finding.references))
        known = self._by_identity.get(same)
        if known is not None:
            return known[1]
        own = tuple(getattr(finding, field) for field in RULE_TEXT_FIELDS)
        key = self._by_value.get(own)
        if key is None:
            fragment = finding.__pydantic_serializer__.to_json(finding, include=_RULE_TEXT_SET)
            stored = json.dumps(json.loads(fragment), ensure_ascii=False, sort_keys=True)
            key = hashlib.sha256(stored.encode()).hexdigest()[:32]
            self.texts[key] = RuleText(stored, fragment[1:])  # kept before its key can be found
            self._by_value[own] = key
        self._by_identity[same] = (finding, key)
        return key
