"""The HTML report: structure, languages, escaping, purity."""

import json
import re
from html.parser import HTMLParser
from typing import Any, Final, cast

import pytest

from attt.reports._i18n import strings
from attt.reports.base import Lang, RenderContext
from attt.reports.html import LARGE_REPORT, HtmlRenderer, build_view, render_html
from attt.reports.json import JsonRenderer
from attt.scanner.changes import Comparison
from attt.scanner.models.base import Severity, Text
from attt.scanner.models.finding import Finding, FindingStatus
from attt.scanner.models.report import PolicyRef, Report
from tests import factories as F

RENDERER = HtmlRenderer()


class _Collector(HTMLParser):
    """Collects tags, attributes and script/style bodies as a browser's tokenizer sees them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def parse(page: bytes) -> _Collector:
    collector = _Collector()
    collector.feed(page.decode("utf-8"))
    return collector


def full_report(**run: Any) -> Report:
    hostile = F.hostile_report()
    other = F.system("qlvb", name="Quản lý văn bản", owner="UBND phường Thạch Quý", level=2)
    findings = F.all_statuses() + list(hostile.findings) + F.all_statuses("qlvb", "127.0.0.2")
    findings.append(F.finding("TLS-CERT-EXPIRY", "fail", "qlvb", "127.0.0.2", waiver=F.waiver(expired=True)))
    return F.report(
        findings,
        systems=[F.system(), other],
        observations=[*hostile.observations, F.observation("tls", "qlvb", "127.0.0.2")],
        targets=[F.target(), F.target(other, "127.0.0.2", hostname="qlvb.hatinh.gov.vn")],
        **run,
    )


def test_interface_strings_have_the_same_keys_in_both_languages():
    assert strings("vi").keys() == strings("en").keys()


def test_render_is_pure():
    report = full_report()
    assert RENDERER.render(report, "vi") == RENDERER.render(report, "vi")


def test_hostile_text_is_inert():
    page = RENDERER.render(full_report(), "vi")
    parsed = parse(page)
    # Our one script, our one stylesheet, our images: nothing a target sent became markup.
    assert [tag for tag, _ in parsed.tags].count("script") == 1
    assert not [tag for tag, _ in parsed.tags if tag in ("img", "iframe", "object", "embed", "link")]
    assert not [a for _, attrs in parsed.tags for a in attrs if a.startswith("on")]
    text = "".join(parsed.text)
    assert "<script>alert('x')</script>" in text  # shown, as text
    assert '"><img src=x onerror=alert(1)>' in text
    for raw in ("\x1b", "\x07", "\x00", "\u202e"):
        assert raw not in page.decode("utf-8")
    assert "\\x1b[31mRED" in text
    assert "abc\\u202egnp.exe" in text


def test_csp_allows_only_the_pages_own_style_and_script():
    page = RENDERER.render(full_report(), "en").decode("utf-8")
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page)
    assert csp is not None
    policy = csp.group(1).replace("&#39;", "'")
    assert policy.startswith("default-src 'none';")
    assert "unsafe-inline" not in policy
    assert policy.count("'sha256-") == 2


@pytest.mark.parametrize("lang", ["vi", "en"])
def test_interface_and_rule_texts_follow_the_language(lang):
    page = RENDERER.render(full_report(), lang).decode("utf-8")
    t = strings(lang)
    assert f'<html lang="{lang}">' in page
    assert t["report_title"] in page
    assert t["unscanned"] in page
    if lang == "vi":
        assert "Tắt các phiên bản TLS cũ" in page
        assert "Chỉ bật TLS 1.2 và TLS 1.3." in page
        assert "Legacy TLS protocol versions are disabled" not in page
    else:
        assert "Legacy TLS protocol versions are disabled" in page
        assert "Tắt các phiên bản TLS cũ" not in page


def test_appendix_shows_run_status_hashes_and_policies():
    page = RENDERER.render(full_report(status="incomplete"), "en").decode("utf-8")
    assert "rs-incomplete" in page
    assert strings("en")["status_incomplete"] in page
    assert "a" * 64 in page  # inventory
    assert "b" * 64 in page and "c" * 64 in page  # policy and its source file
    assert "vn-level-3" in page and "2026.1" in page
    assert "127.0.0.0/8" in page


def test_errors_are_listed_prominently_and_never_hidden():
    report = full_report()
    view = build_view(report, "en")
    probe = [e for e in view.error_groups if e.tool_said is not None]
    assert [(e.system, e.check, e.rules) for e in probe] == [
        ("dichvucong", "ssh", ("SSH-BANNER", "SSH-PASSWORD-AUTH"))
    ]
    assert {r for e in view.error_groups for r in e.rules} == {"SSH-PASSWORD-AUTH", "SSH-BANNER"}
    page = RENDERER.render(report, "en").decode("utf-8")
    unscanned = page.index('id="unscanned"')
    assert unscanned < page.index('id="details"')
    assert 'class="unscanned has-errors"' in page


def test_unscanned_section_says_so_when_everything_ran():
    page = RENDERER.render(F.report([F.finding(status="pass")]), "en").decode("utf-8")
    assert strings("en")["unscanned_none"] in page


def test_findings_show_evidence_remediation_references_and_waivers():
    view = build_view(full_report(), "en")
    host = next(h for o in view.owners for s in o.systems if s.id == "dichvucong" for h in s.hosts)
    failed = next(f for f in host.shown if f.rule_id == "TLS-PROTO-LEGACY")
    assert failed.evidence[0] == ("observed", '["TLSv1.0", "TLSv1.2"]')
    assert failed.evidence[1][0] == "expected"
    assert {r.confidence for r in failed.references} == {"unverified", "verified"}
    assert {f.status for f in host.shown} == {"fail", "waived"}
    assert [e.rules for e in host.errors] == [("SSH-BANNER", "SSH-PASSWORD-AUTH")]
    assert {f.status for f in host.folded} == {"pass", "not_applicable"}
    assert [(w.rule_id, w.expired) for w in view.waivers][-1] == ("TLS-CERT-EXPIRY", True)
    page = RENDERER.render(full_report(), "en").decode("utf-8")
    assert f"({strings('en')['unverified']})" in page
    assert "Giám đốc Trung tâm CNTT tỉnh" in page and "2027-03-31" in page
    assert "31/03/2027" in RENDERER.render(full_report(), "vi").decode("utf-8")
    assert strings("en")["waiver_expired"] in page


def test_scores_per_owner_and_overall():
    findings = [F.finding(status="pass"), F.finding("B-RULE", "fail")]
    other = F.system("qlvb", owner="UBND xã Cẩm Xuyên")
    findings.append(F.finding("C-RULE", "error", "qlvb"))
    view = build_view(F.report(findings, systems=[F.system(), other]), "vi")
    assert view.overall.score == "33,3 %"  # the rule that could not be evaluated counts against
    scores = {o.name: o.counts.score for o in view.owners}
    assert scores == {"Sở Khoa học và Công nghệ": "50,0 %", "UBND xã Cẩm Xuyên": "chưa đánh giá được"}


def test_chart_counts_failed_rules_by_severity():
    findings = [
        F.finding("A-R", "fail", severity=Severity.CRITICAL),
        F.finding("B-R", "fail"),
        F.finding("C-R"),
    ]
    chart = {sev: (n, width) for sev, n, width in build_view(F.report(findings), "en").chart}
    assert chart["critical"] == (1, 50)
    assert chart["high"] == (2, 100)
    assert chart["low"] == (0, 0)


def test_change_since_previous_run():
    previous = F.report(
        [F.finding("OLD-FIXED", "fail"), F.finding("STILL", "fail"), F.finding("DOWN-NOW", "fail")],
        id="run-1",
    )
    current = F.report(
        [
            F.finding("OLD-FIXED", "pass"),
            F.finding("STILL", "fail"),
            F.finding("NEW", "fail"),
            F.finding("DOWN-NOW", "error"),
        ]
    )
    why = Text(vi="lượt gần nhất", en="the latest comparable run")
    view = build_view(current, "en", RenderContext(baseline=Comparison(previous, why)))
    assert view.changes is not None
    assert [c.rule_id for c in view.changes.new] == ["NEW"]
    assert [c.rule_id for c in view.changes.fixed] == ["OLD-FIXED"]
    # Failing before and unknown now is not a fix.
    assert [c.rule_id for c in view.changes.not_rechecked] == ["DOWN-NOW"]
    assert view.changes.still == 1
    page = render_html(view).decode("utf-8")
    assert 'id="changes"' in page and "run-1" in page and "the latest comparable run" in page
    assert 'id="changes"' not in RENDERER.render(current, "en").decode("utf-8")


def test_no_comparable_run_is_said_not_silently_dropped():
    why = Text(vi="không có", en="no earlier complete run over the same 2 host(s) with the same checks")
    page = render_html(
        build_view(F.report([F.finding()]), "en", RenderContext(baseline=Comparison(None, why)))
    ).decode("utf-8")
    assert 'id="changes"' in page and "No earlier run to compare with" in page and "same 2 host(s)" in page


def test_raw_observations_stay_in_report_json_and_the_page_says_where():
    report = full_report()
    page = RENDERER.render(report, "en").decode("utf-8")
    appendix = page[page.index('id="appendix"') :]
    assert f"{strings('en')['appendix']} ({len(report.observations)})" in appendix
    assert "report.json" in appendix
    assert "subject" not in page  # the TLS observation's raw data is not on the page...
    stored = json.loads(JsonRenderer().render(report, "en"))
    assert any("subject" in json.dumps(o["data"]) for o in stored["observations"])  # ...but in JSON


def test_each_rules_remediation_and_references_are_printed_once_and_linked():
    findings = [F.finding(status="fail"), F.finding(status="fail", host="127.0.0.2")]
    page = RENDERER.render(F.report(findings), "en").decode("utf-8")
    rule = findings[0]
    assert page.count(rule.remediation.en) == 1
    assert page.count(f'id="rule-{rule.rule_id}"') == 1
    assert page.count(f'href="#rule-{rule.rule_id}"') == 2


def test_passes_are_a_count_and_one_line_each_without_evidence():
    passed = F.finding(status="pass", evidence={"observed": "OBSERVED-VALUE"}, message="PASS-MESSAGE")
    page = RENDERER.render(F.report([passed]), "en").decode("utf-8")
    parsed = parse(page.encode())
    lines = [attrs for tag, attrs in parsed.tags if tag == "li" and "data-sev" in attrs]
    assert len(lines) == 1 and passed.rule_id in page and passed.title.en in page
    assert "OBSERVED-VALUE" not in page and "PASS-MESSAGE" not in page
    assert f"{strings('en')['status_pass']}: 1" in page  # the system's count


def test_filter_rows_carry_their_facets():
    parsed = parse(RENDERER.render(full_report(), "en"))
    rows = [attrs for _, attrs in parsed.tags if "data-sev" in attrs]
    # a row's status is its own (an error group) or its group's (a table body, a list of passes)
    groups = [attrs for tag, attrs in parsed.tags if tag in ("tbody", "ul") and "data-status" in attrs]
    sections = [attrs for tag, attrs in parsed.tags if tag == "section" and attrs.get("class") == "system"]
    report = full_report()
    # each error group is one row: the two ssh rules of dichvucong share one failed probe
    assert len(rows) == len(report.findings) - 1
    assert {r["data-status"] for r in rows + groups if "data-status" in r} == {
        "pass",
        "fail",
        "error",
        "waived",
        "not_applicable",
    }
    # a row's owner and system are its section's
    assert {s["data-system"] for s in sections} == {"dichvucong", "qlvb"}
    assert {s["data-owner"] for s in sections} == {"0", "1"}


def test_a_finding_of_an_unregistered_system_is_still_shown():
    findings = [F.finding(), F.finding("GHOST-RULE", sys="ghost")]
    report = F.report(findings, systems=[F.system()])
    view = build_view(report, "en")
    ghost = [s for o in view.owners for s in o.systems if s.id == "ghost"]
    assert len(ghost) == 1 and ghost[0].level is None
    assert ghost[0].owner == strings("en")["owner_unknown"]
    assert "GHOST-RULE" in RENDERER.render(report, "en").decode("utf-8")


def test_cover_gives_the_verdict_and_every_critical_and_high_failure_worst_first():
    systems = [F.system("a", name="Cổng A", owner="Sở A"), F.system("b", name="Cổng B", owner="Sở B")]
    findings = [
        F.finding("LOW-R", "fail", "a", severity=Severity.LOW),
        F.finding("HIGH-R", "fail", "a", severity=Severity.HIGH),
        F.finding("CRIT-R", "fail", "b", severity=Severity.CRITICAL),
        F.finding("WAIVED-R", "waived", "b", severity=Severity.CRITICAL),
    ]
    view = build_view(F.report(findings, systems), "vi")
    assert view.verdict.key == "fail"
    assert [(f.rule_id, f.system_name, f.owner) for f in view.verdict.top] == [
        ("CRIT-R", "Cổng B", "Sở B"),
        ("HIGH-R", "Cổng A", "Sở A"),
    ]
    page = RENDERER.render(F.report(findings, systems), "vi").decode("utf-8")
    assert page.index('id="verdict"') < page.index('id="top-failures"') < page.index('id="summary"')
    assert page.index('id="summary"') < page.index('id="appendix"') < page.index("b" * 64)
    assert F.report(findings, systems).summary.score_formula.vi in page


def test_verdict_follows_fail_on_like_the_exit_code():
    findings = [F.finding(severity=Severity.MEDIUM), F.finding("P", "pass")]
    assert build_view(F.report(findings), "en", RenderContext(fail_on=Severity.HIGH)).verdict.key == "pass"
    assert build_view(F.report(findings), "en", RenderContext(fail_on=Severity.MEDIUM)).verdict.key == "fail"
    errors = [F.finding("P", "pass"), F.finding("E", "error")]
    assert build_view(F.report(errors), "en").verdict.key == "incomplete"


def test_owners_and_systems_sort_worst_first_then_in_vietnamese_order():
    names = ["Vũ Quang", "Đức Thọ", "Can Lộc 15", "Can Lộc 5", "Dung Lư", "Ân Phú"]
    systems = [F.system(f"s{i}", name=f"Hệ thống {n}", owner=n) for i, n in enumerate(names)]
    findings = [F.finding(status="pass", sys=s.id) for s in systems]
    findings.append(F.finding("BAD", "fail", "s0", severity=Severity.CRITICAL))  # Vũ Quang is the worst
    view = build_view(F.report(findings, systems), "vi")
    assert [o.name for o in view.owners] == [
        "Vũ Quang",
        "Ân Phú",
        "Can Lộc 5",
        "Can Lộc 15",
        "Dung Lư",
        "Đức Thọ",
    ]


def test_score_bars_take_their_colour_from_thresholds():
    def band(passes: int, fails: int) -> str:
        findings = [F.finding(f"P{i}", "pass") for i in range(passes)]
        findings += [F.finding(f"F{i}", "fail") for i in range(fails)]
        return build_view(F.report(findings), "en").overall.band

    assert (band(9, 1), band(52, 48), band(7, 3), band(0, 0)) == ("good", "poor", "fair", "none")


def test_times_are_vietnam_time_and_dates_dd_mm_yyyy_in_vietnamese():
    vi = build_view(full_report(), "vi")
    assert vi.run.started == "20/11/2026 08:00 (giờ Việt Nam)"  # 01:00 UTC
    assert build_view(full_report(), "en").run.started == "2026-11-20 08:00 (UTC+07:00)"
    assert next(w.expires for w in vi.waivers) == "31/03/2027"


def test_trends_and_failing_since_come_from_earlier_runs():
    from datetime import timedelta

    def run(day: int, statuses: dict[str, FindingStatus]) -> Report:
        findings = [F.finding(rule, status) for rule, status in statuses.items()]
        return F.report(findings, id=f"run-{day}", started=F.STARTED + timedelta(days=day))

    history = (
        run(-60, {"OLD": "fail", "BACK": "fail", "NEW": "pass"}),
        run(-45, {"OLD": "fail", "BACK": "pass", "NEW": "pass"}),
        run(-30, {"BACK": "fail", "NEW": "pass"}),  # OLD not judged: its streak goes on
    )
    current = run(0, {"OLD": "fail", "BACK": "fail", "NEW": "fail"})
    view = build_view(current, "vi", RenderContext(history=history))
    since = {f.rule_id: f.open_days for o in view.owners for s in o.systems for h in s.hosts for f in h.shown}
    assert since == {
        "OLD": "21/09/2026 (60 ngày)",
        "BACK": "21/10/2026 (30 ngày)",
        "NEW": "20/11/2026 (0 ngày)",
    }
    (trend,) = view.trends_systems
    assert trend.runs == 4 and trend.open_serious == 3 and trend.line.count(",") == 4
    page = render_html(view).decode("utf-8")
    assert 'id="trends"' in page and "<polyline" in page
    assert 'id="trends"' not in RENDERER.render(current, "vi").decode("utf-8")


def test_a_host_in_two_systems_says_each_judges_it_by_its_own_rules():
    other = F.system("qlvb", name="Quản lý văn bản", owner="UBND phường Thạch Quý", level=2)
    findings = F.all_statuses() + F.all_statuses("qlvb", "127.0.0.1")
    report = F.report(findings, systems=[F.system(), other], targets=[F.target(), F.target(other)])
    text = "".join(parse(RENDERER.render(report, "en")).text)
    # Levels 3 and 2: two policies, so two probes; the page never claims one served both.
    assert text.count("each judges it by its own rules, on one shared probe where") == 2
    view = build_view(report, "en")
    shared = {s.id: h.shared_with for o in view.owners for s in o.systems for h in s.hosts}
    assert shared == {"dichvucong": ("qlvb",), "qlvb": ("dichvucong",)}


def test_a_pinned_address_with_a_scope_id_from_an_older_run_is_shown_inert():
    # Stored before scope ids were refused: the model is built as the store would read it.
    hostile = "::1%\x1b]0;pwned\x07\u202e"
    target = F.target().model_copy(update={"ip": hostile})
    page = RENDERER.render(F.report(F.all_statuses(), targets=[target]), "vi").decode("utf-8")
    for raw in ("\x1b", "\x07", "\u202e"):
        assert raw not in page
    assert "::1%\\x1b]0;pwned\\x07\\u202e" in page


def test_a_province_sized_page_is_laid_out_near_the_screen_only_and_a_small_one_whole():
    small = RENDERER.render(full_report(), "en").decode("utf-8")
    assert "<body>" in small
    systems = [F.system(f"s{i:03d}") for i in range(LARGE_REPORT)]
    large = RENDERER.render(F.report([F.finding(sys=s.id) for s in systems], systems=systems), "en")
    assert '<body class="large">' in large.decode("utf-8")
    assert "body.large .system { content-visibility: auto;" in large.decode("utf-8")


PAGE_BYTES_PER_FINDING: Final = 190
ROW_BYTES: Final[dict[FindingStatus, int]] = {"fail": 250, "waived": 450, "pass": 45}
"""Bounds on what the Vietnamese page costs, measured on a 300-system province with about 25 %
margin: 154 bytes a finding over the whole page; for one more finding, 197 bytes a failure, 365 a
waiver (its row and its line in the waivers table), 34 a pass. Before the page referred to rule and
waiver texts instead of copying them, the same were 348, 623, 1,054 and 106: a province's page
grew past 20 MB, which a browser takes seconds to open."""


def test_a_province_page_stays_small_per_finding():
    base = F.large_report(n_systems=300, n_findings=12_000)

    def size(extra: list[Finding]) -> int:
        report = F.report([*base.findings, *extra], base.systems, base.observations, base.targets)
        return len(RENDERER.render(report, "vi"))

    whole = size([])
    assert whole / len(base.findings) <= PAGE_BYTES_PER_FINDING
    # One more finding of each kind on every system's first host, on a port of its own: what the
    # page grows by, rule and waiver texts included, divided by the findings added.
    for status, bound in ROW_BYTES.items():
        extra = [
            F.finding(f"RULE-{j:03d}", status, s.id, f"127.{i // 250}.{i % 250}.1", 8443)
            for i, s in enumerate(base.systems)
            for j in range(0, 40, 8)
        ]
        assert (size(extra) - whole) / len(extra) <= bound, status


def test_every_finding_reaches_its_rule_and_its_waiver_on_the_page():
    report = full_report()
    parsed = parse(RENDERER.render(report, "en"))
    ids = {attrs["id"] for _, attrs in parsed.tags if attrs.get("id")}
    hrefs = [attrs.get("href") or "" for tag, attrs in parsed.tags if tag == "a"]
    links = {href[1:] for href in hrefs if href.startswith("#")}
    assert links <= ids  # no link leads nowhere
    # each failure or waiver links to its rule (title, remediation, references) and, waived or
    # with an expired waiver, to that waiver (reason, approver, decision, expiry)
    for f in report.findings:
        if f.status in ("fail", "waived"):
            assert f"rule-{f.rule_id}" in links, f.rule_id
    view = build_view(report, "en")
    assert {w.anchor for w in view.waivers} <= links
    assert len(view.waivers) == sum(f.waiver is not None for f in report.findings)
    # a rule only passed still has its title on the page, under its id
    assert "rule-SSH-CBC" in ids


def test_a_waiver_is_listed_once_with_every_place_it_covers():
    findings = [
        F.finding("PORT-TELNET", "waived", host="127.0.0.1", port=23, waiver=F.waiver()),
        F.finding("PORT-TELNET", "waived", host="127.0.0.2", port=23, waiver=F.waiver()),
        F.finding("PORT-TELNET", "fail", host="127.0.0.3", port=23, waiver=F.waiver(True, reason="Cũ")),
    ]
    view = build_view(F.report(findings), "en")
    assert [(w.places, w.expired) for w in view.waivers] == [
        (("127.0.0.1:23", "127.0.0.2:23"), False),
        (("127.0.0.3:23",), True),
    ]
    page = render_html(view).decode("utf-8")
    active, expired = view.waivers
    assert page.count(f'href="#{active.anchor}"') == 2 and page.count(f'href="#{expired.anchor}"') == 1
    assert page.count(active.reason) == 1  # the reason once, in the waivers section


def test_change_section_names_a_changed_policy_and_counts_nothing_it_moved_as_fixed():
    def run(sha: str, run_id: str, *findings: Finding) -> Report:
        policy = PolicyRef(id="vn-level-3", version="2026.1", sha256=sha * 64)
        return F.report(list(findings), id=run_id, policies=(policy,), judged_by={"dichvucong": "vn-level-3"})

    previous = run("1", "run-1", F.finding("LOOSENED", "fail"), F.finding("DARK", "pass"))
    current = run("2", "run-2", F.finding("LOOSENED", "pass"), F.finding("DARK", "error"))
    why = Text(vi="lượt gần nhất", en="the latest comparable run")
    for lang, policy_note, verdicts, unverified in (
        (
            "en",
            "policy vn-level-3 changed between the runs",
            "fail → pass",
            "Passed before, could not be re-checked",
        ),
        (
            "vi",
            "chính sách vn-level-3 đã thay đổi nội dung",
            "không đạt → đạt",
            "Đạt trước đó, nay chưa kiểm tra lại được",
        ),
    ):
        view = build_view(current, cast(Lang, lang), RenderContext(baseline=Comparison(previous, why)))
        assert view.changes is not None and view.changes.fixed == ()
        assert [(c.rule_id, c.verdicts) for c in view.changes.rejudged] == [("LOOSENED", verdicts)]
        assert view.changes.unverified == 1  # DARK: passed before, not judged now
        page = render_html(view).decode("utf-8")
        section = page[page.index('id="changes"') : page.index("</section>", page.index('id="changes"'))]
        assert policy_note in section and verdicts in section and unverified in section
