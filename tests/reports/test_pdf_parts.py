"""A long report.pdf is laid out in parts and joined: every system's failures are there, in the
order of the report, every page is numbered out of the whole, and the bundle still verifies."""

import hashlib
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from attt.reports.bundle import RENDERERS, write_bundle
from attt.reports.html import SECTIONS, build_view, render_html
from attt.reports.json import JsonRenderer
from attt.reports.manifest import verify_bundle
from attt.reports.pdf import PdfLimitError, PdfRenderer, parts
from attt.scanner.models.report import Report
from tests import factories as F

LINES = 30
"""A part's budget small enough that eight systems of two owners (some 90 lines, errors and waivers
counted) take several parts, and an owner's systems are cut across two."""


def long_report() -> Report:
    return F.large_report(8, 8 * 25, n_owners=2)


def test_a_short_report_is_one_part_with_every_section():
    view = build_view(F.report(F.all_statuses()), "en", medium="pdf")
    [whole] = parts(view)
    assert whole.view is view and whole.sections == SECTIONS and whole.continued is None


def test_the_parts_keep_every_system_once_in_order_within_the_budget():
    view = build_view(long_report(), "en", medium="pdf")
    laid = parts(view, LINES)
    back = [{"rules"}, {"waivers"}, {"appendix"}]
    assert [p.sections for p in laid] == [{"front"}] + [{"details"}] * (len(laid) - 4) + back
    details = laid[1:-3]
    assert len(details) >= 3
    assert [(o.index, s.id) for p in details for o in p.view.owners for s in o.systems] == [
        (o.index, s.id) for o in view.owners for s in o.systems
    ]
    # the details begin in the first part; a later part says which owners carry on from before it
    assert details[0].continued is None
    seen = {o.index for o in details[0].view.owners}
    for part in details[1:]:
        assert part.continued is not None
        assert part.continued == {o.index for o in part.view.owners} & seen
        seen |= {o.index for o in part.view.owners}
    assert any(part.continued for part in details[1:]), "an owner is cut across parts"
    for part in details:
        systems = [s for o in part.view.owners for s in o.systems]
        assert len(systems) == 1 or sum(1 + sum(2 + len(h.shown) for h in s.hosts) for s in systems) <= LINES


def test_no_anchor_is_named_by_two_parts():
    view = build_view(long_report(), "en", medium="pdf")
    ids = Counter(
        name
        for p in parts(view, LINES)
        for name in re.findall(r' id="([^"]+)"', render_html(p.view, "", p.sections, p.continued).decode())
    )
    assert ids and max(ids.values()) == 1, [name for name, n in ids.items() if n > 1]
    whole = render_html(view).decode()
    assert set(ids) == set(re.findall(r' id="([^"]+)"', whole))


POPPLER = shutil.which("pdftotext") and shutil.which("pdfinfo")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not POPPLER:
        pytest.skip("pdftotext/pdfinfo missing (Debian package poppler-utils)")
    out = tmp_path_factory.mktemp("bundle")
    renderer = RENDERERS["pdf"]
    assert isinstance(renderer, PdfRenderer)
    renderer.part_lines, before = LINES, renderer.part_lines
    try:
        write_bundle(long_report(), ["json", "pdf"], out, "vi")
    finally:
        renderer.part_lines = before
    return out


def page_texts(pdf: Path) -> list[str]:
    done = subprocess.run(
        ["pdftotext", "-layout", str(pdf), "-"], capture_output=True, check=True, timeout=60
    )
    return done.stdout.decode("utf-8").split("\f")[:-1]


def test_every_page_of_the_joined_pdf_is_numbered_out_of_all_and_names_its_record(bundle: Path):
    report = long_report()
    record = hashlib.sha256((bundle / "report.json").read_bytes()).hexdigest()
    assert record == hashlib.sha256(JsonRenderer().render(report, "vi")).hexdigest()
    texts = page_texts(bundle / "report.pdf")
    assert len(texts) >= 6
    for number, page in enumerate(texts, 1):
        flat = " ".join(page.split())
        assert re.search(rf"(?<!\d){number} / {len(texts)}(?!\d)", flat), number
        assert report.run.id in flat and record in flat.replace(" ", ""), number
    info = subprocess.run(
        ["pdfinfo", str(bundle / "report.pdf")], capture_output=True, check=True, timeout=60
    )
    assert f"Title: Báo cáo đánh giá tuân thủ an toàn thông tin — Hà Tĩnh — {report.run.id}" in " ".join(
        info.stdout.decode().split()
    ).replace(" :", ":")
    assert verify_bundle(bundle).ok


def test_the_joined_pdf_has_every_systems_failures_in_the_order_of_the_report(bundle: Path):
    report = long_report()
    view = build_view(report, "vi", medium="pdf")
    text = "\n".join(page_texts(bundle / "report.pdf"))
    details = text[: text.rindex(view.t["rules_section"])]
    headings = list(re.finditer(r"^\s*Hệ thống thông tin số \d+ (sys-\d{4})\s*$", details, re.M))
    assert [h.group(1) for h in headings] == [s.id for o in view.owners for s in o.systems]
    for heading, following in zip(headings, [*headings[1:], None], strict=True):
        block = details[heading.end() : None if following is None else following.start()]
        failed = {f.rule_id for f in report.findings if f.system == heading.group(1) and f.status == "fail"}
        assert failed and set(re.findall(r"RULE-\d{3}", block)) == failed, heading.group(1)
    # a cut owner is headed again where its systems carry on, said so
    assert re.search(r"số \d+ \(tiếp theo\)", details)


def test_a_long_report_past_its_time_limit_is_still_one_line():
    with pytest.raises(PdfLimitError, match=r"^report\.pdf: the layout took longer than its limit of 1 s"):
        PdfRenderer(time_limit=1, part_lines=LINES).render(long_report(), "en")


def test_the_joined_pdfs_links_reach_their_anchors_across_parts(bundle: Path):
    from pypdf import PdfReader

    pdf = PdfReader(bundle / "report.pdf")
    anchors = pdf.named_destinations
    links = {
        str(note["/Dest"])
        for sheet in pdf.pages
        for ref in sheet.get("/Annots") or ()
        if "/Dest" in (note := ref.get_object())
    }
    # the summary (front) reaches each owner (details), a failure its rule (back); every link
    # has its anchor
    assert {"owner-0", "owner-1"} <= links
    assert any(name.startswith("rule-") for name in links)
    assert links <= anchors.keys()
    # and each anchor is where the part that has it put it, not where another stood in for it
    view = build_view(long_report(), "vi", medium="pdf")

    def page(name: str) -> int:
        number = pdf.get_destination_page_number(anchors[name])
        assert number is not None, name
        return number

    for name, heading in (("rules", "rules_section"), ("details", "details"), ("waivers", "waivers")):
        assert view.t[heading] in pdf.pages[page(name)].extract_text(), name
    # the front and the details only stood in for these: the names lead to the details and the back
    rule = min(name for name in links if name.startswith("rule-"))
    assert page("details") <= page("owner-0") < page("rules") <= page(rule) < page("waivers")
    assert rule.removeprefix("rule-") in pdf.pages[page(rule)].extract_text()
