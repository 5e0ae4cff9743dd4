"""FindingCodec: each finding serialised once, for the store and for report.json alike."""

import hashlib
import json

from attt.reports.base import RenderContext
from attt.reports.json import JsonRenderer
from attt.scanner.models.finding import RULE_TEXT_FIELDS, Finding, FindingCodec
from attt.scanner.models.report import Report
from tests import factories


def _findings() -> list[Finding]:
    shared = factories.finding(rule_id="R-SHARED", host="127.0.0.1")
    same_text = {field: getattr(shared, field) for field in RULE_TEXT_FIELDS}
    return [
        shared,
        *(factories.finding(rule_id="R-SHARED", host=f"127.0.0.{i}", **same_text) for i in range(2, 6)),
        factories.finding(rule_id="R-OTHER", status="pass", port=None),
        factories.finding(rule_id="R-WAIVED", status="waived", message={"vi": "Đã miễn trừ", "en": "waived"}),
    ]


def test_report_json_is_the_models_own_json_with_each_rule_text_written_once_per_rule():
    findings = _findings()
    report = factories.report(findings)
    codec = FindingCodec()
    written = JsonRenderer().render(report, "vi", RenderContext(codec=codec))
    assert json.loads(written) == json.loads(report.model_dump_json())
    assert Report.model_validate_json(written) == report
    assert len(codec.texts) == 3  # five findings of one rule share its text


def test_a_finding_encoded_early_is_reused_and_another_object_is_encoded_afresh():
    findings = _findings()
    codec = FindingCodec()
    early = codec.encode(findings)
    assert codec.encode(findings) == early
    changed = findings[0].model_copy(update={"status": "waived"})
    (fresh,) = codec.encode([changed])
    assert json.loads(fresh.row)["status"] == "waived"
    assert json.loads(early[0].row)["status"] == "fail"


def test_rows_leave_the_rule_text_out_and_its_key_is_the_hash_earlier_stores_used():
    finding = _findings()[0]
    (encoded,) = FindingCodec().encode([finding])
    row = json.loads(encoded.row)
    assert not set(RULE_TEXT_FIELDS) & row.keys()
    assert row == json.loads(finding.model_dump_json(exclude=set(RULE_TEXT_FIELDS)))
    # The key a store already holds for the same text: runs of two versions share one copy.
    text = json.dumps(
        finding.model_dump(mode="json", include=set(RULE_TEXT_FIELDS)), ensure_ascii=False, sort_keys=True
    )
    assert encoded.text == hashlib.sha256(text.encode()).hexdigest()[:32]


def test_no_findings_is_an_empty_array():
    report = factories.report([])
    assert json.loads(JsonRenderer().render(report, "en"))["findings"] == []


def test_findings_alike_are_encoded_exactly_as_each_on_its_own():
    template = factories.finding(rule_id="R-SHARED", status="not_applicable", port=None)
    # Names that must be escaped, and some that look like the codec's own slots.
    names = ['sys "quoted"', "back\\slash", "tab\there", "\x00system\x00", "Hà Tĩnh\u2028", "\x7f\x01"]
    alike = [template, *(template.model_copy(update={"system": n, "host": n[::-1]}) for n in names)]
    codec = FindingCodec()
    codec.encode_alike(template, alike)
    assert codec.encode(alike) == FindingCodec().encode(alike)


def test_a_template_holding_a_slot_falls_back_to_encoding_each():
    template = factories.finding(rule_id="R-SHARED", message={"vi": "\x00host\x00", "en": "\x00host\x00"})
    alike = [template, template.model_copy(update={"system": "other", "host": "127.0.0.9"})]
    codec = FindingCodec()
    codec.encode_alike(template, alike)
    assert codec.encode(alike) == FindingCodec().encode(alike)


def test_a_finding_placed_elsewhere_is_its_copy_on_that_system_and_host_and_leaves_it_alone():
    original = factories.finding(rule_id="R-NA", status="not_applicable", host="127.0.0.1")
    placed = original.placed("other-system", "127.0.0.9")
    assert placed == original.model_copy(update={"system": "other-system", "host": "127.0.0.9"})
    assert (original.system, original.host) != ("other-system", "127.0.0.9")
    assert placed.title is original.title and placed.references is original.references
    assert placed.model_dump_json() == Finding.model_validate_json(placed.model_dump_json()).model_dump_json()
