"""report.pdf: laid out by WeasyPrint, every page numbered and naming its run and record, passes
counted rather than printed; the first pages are kept as images in test-artifacts/ to look at."""

import hashlib
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from attt.reports.html import build_view
from attt.reports.json import JsonRenderer
from attt.reports.pdf import PdfRenderer
from attt.scanner.models.report import Report
from tests import factories as F
from tests.reports.test_browser import showcase

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
POPPLER = shutil.which("pdftotext") and shutil.which("pdftoppm")

pytestmark = pytest.mark.skipif(
    not POPPLER, reason="pdftotext/pdftoppm missing (Debian package poppler-utils)"
)


def pages(pdf: Path) -> list[str]:
    """The text of each page."""
    text = subprocess.run(
        ["pdftotext", "-layout", str(pdf), "-"], capture_output=True, check=True, timeout=60
    )
    return text.stdout.decode("utf-8").split("\f")[:-1]


def write(report: Report, lang: str, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    path.write_bytes(PdfRenderer().render(report, lang))  # type: ignore[arg-type]
    return path


@pytest.mark.parametrize("lang", ["vi", "en"])
def test_every_page_is_numbered_and_names_its_run_and_record(lang):
    report = showcase()
    pdf = write(report, lang, f"report-{lang}.pdf")
    record = hashlib.sha256(JsonRenderer().render(report, lang)).hexdigest()
    text = pages(pdf)
    assert 2 <= len(text) <= 12
    for number, page in enumerate(text, 1):
        flat = " ".join(page.split())
        assert report.run.id in flat, number
        assert record in flat.replace(" ", ""), number
        assert re.search(rf"(?<!\d){number} ?/", flat), number  # "3 / 7", in the corner
        assert flat.endswith(str(len(text))), number
    subprocess.run(
        [
            "pdftoppm",
            "-r",
            "70",
            "-png",
            "-f",
            "1",
            "-l",
            "2",
            str(pdf),
            str(ARTIFACTS / f"report-{lang}-pdf"),
        ],
        check=True,
        timeout=60,
    )


def test_the_filed_report_counts_passes_and_lists_what_needs_action():
    report = showcase()
    text = " ".join(" ".join(pages(write(report, "vi", "report-vi.pdf"))).split())
    assert text.index("Kết luận") < text.index("Thông tin lượt quét")  # verdict first, metadata last
    assert "Những gì đã kiểm tra" in text
    assert "Đạt: 1 · Không áp dụng: 1" in text  # counts, not rows
    assert "TLS-PROTO-LEGACY" in text and "SSH-WEAK-KEX" in text  # failures listed
    assert "Chỉ bật TLS 1.2 và TLS 1.3." in text  # remediation, once per rule
    # every factory rule shares this remediation text: it appears once per rule, not per host
    rules = build_view(report, "vi", medium="pdf").rules
    assert text.count("Chỉ bật TLS 1.2 và TLS 1.3.") == len(rules) < len(report.findings) // 2


@pytest.mark.slow
def test_a_100_system_province_fits_in_tens_of_pages():
    report = F.large_report(n_systems=100, n_findings=2500, n_owners=25)
    pdf = write(report, "vi", "report-100-systems.pdf")
    count = len(pages(pdf))
    print(f"100 systems, {len(report.findings)} findings: {count} PDF pages")
    assert count <= 100
