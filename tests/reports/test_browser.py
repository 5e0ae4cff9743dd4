"""The HTML report in real headless Chromium: offline, no errors, working filters, screenshots."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from attt.reports.html import LARGE_REPORT, HtmlRenderer, build_view
from attt.scanner.models.base import Severity
from attt.scanner.models.report import Report
from tests import factories as F

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="/usr/bin/chromium is missing (Debian package chromium)"
    ),
]


def showcase() -> Report:
    """Two agencies, three systems, every status, hostile text, an expired waiver, a probe error."""
    portal = F.system()
    docs = F.system(
        "qlvb", name="Hệ thống quản lý văn bản và điều hành", owner="UBND phường Thành Sen", level=2
    )
    mail = F.system(
        "thudientu",
        name="Hệ thống thư điện tử công vụ của Ủy ban nhân dân tỉnh và các sở, ban, ngành",
        owner="Sở Khoa học và Công nghệ",
        level=3,
    )
    hostile = F.hostile_report()
    findings = [
        *F.all_statuses(),
        *hostile.findings,
        *F.all_statuses("qlvb", "127.0.0.2"),
        F.finding(
            "TLS-CERT-EXPIRY", "fail", "qlvb", "127.0.0.2", severity=Severity.MEDIUM, waiver=F.waiver(True)
        ),
        F.finding("SSH-WEAK-KEX", "fail", "thudientu", "127.0.0.3", 22, Severity.LOW, check="ssh"),
        F.finding("TLS-PROTO-LEGACY", "pass", "thudientu", "127.0.0.3"),
    ]
    observations = [*hostile.observations, F.observation("tls", "qlvb", "127.0.0.2")]
    targets = [
        F.target(portal, hostname="dichvucong.hatinh.gov.vn"),
        F.target(docs, "127.0.0.2"),
        F.target(mail, "127.0.0.3"),
    ]
    return F.report(findings, [portal, docs, mail], observations, targets)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
            timeout=30_000,
        )
        yield chromium
        chromium.close()


ROWS = "#details [data-sev]"
"""What the filter shows and hides: a row per failure or waiver, a block per error group, and one
line per pass or not-applicable rule; each carries its severity."""


class Opened:
    """A report page, with every request and every console or page error it produced."""

    def __init__(self, browser: Any, path: Path, width: int = 1280) -> None:
        self.url = path.as_uri()
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.context = browser.new_context(viewport={"width": width, "height": 900}, locale="vi-VN")
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.set_default_timeout(10_000)
        self.page.on("request", lambda request: self.requests.append(request.url))
        self.page.on(
            "console", lambda msg: self.errors.append(msg.text) if msg.type in ("error", "warning") else None
        )
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.on("dialog", self._dialog)
        self.page.goto(self.url, wait_until="load")

    def _dialog(self, dialog: Any) -> None:
        self.errors.append(f"dialog: {dialog.message}")
        dialog.dismiss()

    def _route(self, route: Any) -> None:
        if route.request.url == self.url:
            route.continue_()
        else:
            route.abort()

    def visible(self, selector: str = ROWS) -> list[dict[str, str]]:
        """The facets of each visible row: its own, its group's (the status of a table body or a
        list of passes) and its system section's (owner and system)."""
        return list(
            self.page.eval_on_selector_all(
                selector,
                "rows => rows.filter(r => r.checkVisibility()).map(r =>"
                " ({...r.closest('.system').dataset, ...r.parentNode.dataset, ...r.dataset}))",
            )
        )


@pytest.fixture
def opened(browser: Any, tmp_path: Path) -> Iterator[Opened]:
    path = tmp_path / "report.html"
    path.write_bytes(HtmlRenderer().render(showcase(), "vi"))
    page = Opened(browser, path)
    yield page
    page.context.close()


def test_page_loads_offline_without_errors_or_requests(opened: Opened) -> None:
    opened.page.wait_for_timeout(300)  # let anything lazy try to load
    assert opened.requests == [opened.url]
    assert opened.errors == []
    assert opened.page.title().startswith("Báo cáo đánh giá tuân thủ an toàn thông tin")
    assert opened.page.evaluate("() => document.images.length") == 0


def test_hostile_text_is_shown_as_text(opened: Opened) -> None:
    message = opened.page.locator("#details tbody.st-fail td:nth-child(3)").first.inner_text()
    assert "<script>alert('x')</script>" in message
    assert '"><img src=x onerror=alert(1)>' in message


def test_filters_hide_and_show_rows(opened: Opened) -> None:
    page = opened.page
    report = showcase()
    shown_by_default = {
        (f.rule_id, f.system) for f in report.findings if f.status in ("fail", "error", "waived")
    }
    assert {(r["rule"], r["system"]) for r in _rules(opened)} == shown_by_default

    page.select_option("#f-status", "fail")
    rows = opened.visible()
    assert rows and {r["status"] for r in rows} == {"fail"}
    assert len(rows) == sum(f.status == "fail" for f in report.findings)
    assert page.locator("#f-count").inner_text() == f"{len(rows)} / {build_view(report, 'vi').finding_count}"

    page.select_option("#f-sev", "low")
    assert [(r["system"], r["sev"]) for r in opened.visible()] == [("thudientu", "low")]
    assert page.locator("#system-qlvb").is_hidden()

    page.select_option("#f-sev", "")
    page.select_option("#f-system", "qlvb")
    assert {r["system"] for r in opened.visible()} == {"qlvb"}
    assert page.locator("#system-dichvucong").is_hidden()

    page.select_option("#f-system", "")
    page.select_option("#f-status", "pass")  # passes live folded away; the filter unfolds them
    assert {r["status"] for r in opened.visible()} == {"pass"}
    assert len(opened.visible()) == sum(f.status == "pass" for f in report.findings)

    page.select_option("#f-status", "")
    page.select_option("#f-owner", "1")  # UBND phường Thành Sen
    assert {r["system"] for r in opened.visible()} == {"qlvb"}

    page.select_option("#f-owner", "")
    page.fill("#f-text", "SSH-WEAK")
    assert [r["system"] for r in opened.visible()] == ["thudientu"]
    page.fill("#f-text", "không có dòng nào khớp")
    assert opened.visible() == []
    assert page.locator("#f-empty").is_visible()

    page.fill("#f-text", "")
    assert {(r["rule"], r["system"]) for r in _rules(opened)} == shown_by_default
    assert page.locator("#unscanned").is_visible()  # errors are never filtered away
    assert opened.errors == []


def _rules(opened: Opened) -> list[dict[str, str]]:
    return list(
        opened.page.eval_on_selector_all(
            "#details tr[data-sev], #details .err",
            "rows => rows.filter(r => r.checkVisibility()).flatMap(r =>"
            " (r.matches('.err') ? (r.querySelector('.rules')?.textContent.split(', ') ?? [])"
            " : [r.querySelector('a').textContent])"
            ".map(rule => ({rule, system: r.closest('.system').dataset.system})))",
        )
    )


# Text wrapped a few characters per line: three lines or more, and a line per 6 characters or less.
NARROW = """() => Array.from(document.querySelectorAll(
    'h1, h2, h3, h4, p, td, th, dt, dd, li, figcaption, summary'))
  .filter(e => e.checkVisibility() && e.textContent.trim().length >= 8)
  .filter(e => {
    const range = document.createRange();
    range.selectNodeContents(e);
    const lines = new Set(Array.from(range.getClientRects()).map(r => Math.round(r.top))).size;
    return lines >= 3 && e.textContent.trim().length / lines <= 6;
  })
  .map(e => e.tagName + ': ' + e.textContent.trim().slice(0, 40))"""


@pytest.mark.parametrize("width", [1400, 400])
@pytest.mark.parametrize("lang", ["vi", "en"])
def test_screenshots_at_desk_and_phone_width(browser: Any, tmp_path: Path, lang: str, width: int) -> None:
    """Full-page screenshots kept in test-artifacts/ for a person to look at; at 400 px the page
    does not overflow sideways (wide tables scroll in their own box) and no text wraps a few
    characters per line."""
    path = tmp_path / f"report-{lang}.html"
    path.write_bytes(HtmlRenderer().render(showcase(), lang))  # type: ignore[arg-type]
    opened = Opened(browser, path, width)
    try:
        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / f"report-{lang}-{width}.png"
        opened.page.screenshot(path=str(shot), full_page=True)
        assert opened.page.evaluate("() => document.documentElement.scrollWidth") <= width
        narrow = opened.page.evaluate(NARROW)
        assert narrow == []
        boxes = opened.page.evaluate(
            "() => Array.from(document.querySelectorAll('.scroll')).map(e => e.getBoundingClientRect().right)"
        )
        assert max(boxes) <= width
        if width == 1400:
            opened.page.emulate_media(media="print")
            opened.page.screenshot(path=str(ARTIFACTS / f"report-{lang}-print.png"), full_page=True)
            # paper shows passes and raw observations as counts, not pages
            assert opened.page.locator("details.passes").first.is_hidden()
            assert opened.page.locator("#checked").is_visible()
        assert shot.stat().st_size > 10_000
        assert opened.requests == [opened.url]
        assert opened.errors == []
    finally:
        opened.context.close()


def test_a_province_page_leads_from_a_finding_to_its_waiver_and_its_remediation(
    browser: Any, tmp_path: Path
) -> None:
    """On a page laid out near the screen only, following a row's links shows the waiver's reason
    and approver and the rule's remediation, however far down the page they are."""
    report = F.large_report(n_systems=LARGE_REPORT, n_findings=40 * LARGE_REPORT, n_owners=10)
    path = tmp_path / "province.html"
    path.write_bytes(HtmlRenderer().render(report, "en"))
    opened = Opened(browser, path)
    try:
        page = opened.page
        # on the screen, and not under the sticky filter: what is at its middle is part of it
        in_view = (
            "e => { const r = e.getBoundingClientRect();"
            " return r.top >= 0 && r.bottom <= innerHeight"
            " && e.contains(document.elementFromPoint(r.left + 8, (r.top + r.bottom) / 2)) }"
        )
        waived = page.locator("#details tbody.st-waived a[href^='#w']").first
        waived.scroll_into_view_if_needed()
        waived.click()
        target = page.locator(waived.get_attribute("href") or "")
        assert target.evaluate(in_view)
        waiver = next(f.waiver for f in report.findings if f.waiver is not None)
        assert waiver.reason in target.inner_text() and waiver.approved_by in target.inner_text()
        page.go_back()
        rule = page.locator("#details tbody.st-fail a[href^='#rule-']").first
        rule.scroll_into_view_if_needed()
        rule.click()
        target = page.locator(rule.get_attribute("href") or "")
        assert target.evaluate(in_view)
        assert report.findings[0].remediation.en in target.inner_text()
        assert opened.errors == []
    finally:
        opened.context.close()
