"""report.pdf stays bounded: the page it lays out carries what an auditor signs and no more, and
a PDF past its memory or time limit ends as one line while the rest of the bundle is written."""

import re

import pytest

from attt.reports.base import RenderLimitError
from attt.reports.bundle import RENDERERS, write_bundle
from attt.reports.html import build_view, render_html
from attt.reports.manifest import verify_bundle
from attt.reports.pdf import PdfLimitError, PdfRenderer
from attt.scanner.errors import ConfigError
from attt.scanner.models.base import Severity
from attt.scanner.models.report import Report
from tests import factories as F

HOSTS = 40


def many_passing_hosts() -> Report:
    """40 hosts of one system: each passes two rules, one host fails one, one host's probe failed."""
    findings = []
    for i in range(HOSTS):
        host = f"127.0.9.{i + 1}"
        findings.append(F.finding("TLS-CERT-EXPIRY", "pass", host=host))
        findings.append(F.finding("TLS-HSTS", "not_applicable", host=host))
    findings.append(F.finding("TLS-PROTO-LEGACY", "fail", host="127.0.9.7", message="TLSv1.0 accepted"))
    findings.append(
        F.finding(
            "SSH-CBC", "error", host="127.0.9.9", port=22, severity=Severity.HIGH, check="ssh", message="x"
        )
    )
    observations = [F.observation("ssh", host="127.0.9.9", port=22, error="timed out after 10 s")]
    return F.report(findings, observations=observations)


def details(page: str) -> str:
    return page[page.index('<section id="details">') : page.index('<section id="rules">')]


def rules(page: str) -> str:
    return page[page.index('<section id="rules">') : page.index('<section id="waivers">')]


def test_the_pdf_page_counts_passes_and_prints_each_failure_and_error_once():
    report = many_passing_hosts()
    pdf = render_html(build_view(report, "en", medium="pdf")).decode()
    screen = render_html(build_view(report, "en")).decode()
    # passes and not-applicable: a count per host, never a row or an id per host
    assert details(pdf).count("TLS-CERT-EXPIRY") == 0 and details(pdf).count("TLS-HSTS") == 0
    assert details(pdf).count("Passed: 1 · Not applicable: 1") == HOSTS
    assert "TLS-CERT-EXPIRY" not in pdf.replace(rules(pdf), "")  # named only where its title is
    # the failure in full, its rule's title once (the rules section), not on the row as well
    assert details(pdf).count("TLSv1.0 accepted") == 1
    assert report.findings[-2].title.en not in details(pdf)
    # the error in full once, in its section; the host counts it and says where it is
    assert pdf.count("timed out after 10 s") == 1
    assert "Could not be checked: 1 (see Could not be scanned or evaluated)" in details(pdf)
    # never more than the screen carries; and the page says where everything else is
    assert len(pdf) < len(screen)
    assert "Every finding with its evidence is in report.json, whose SHA-256" in pdf


def test_a_pdf_over_its_memory_limit_is_one_line_and_the_rest_of_the_bundle_is_written(tmp_path, monkeypatch):
    report = F.report(F.all_statuses())
    (tmp_path / "report.pdf").write_bytes(b"%PDF an earlier run's")
    monkeypatch.setenv("ATTT_PDF_MEMORY_MB", "48")
    with pytest.raises(RenderLimitError) as raised:
        write_bundle(report, ["html", "json", "pdf"], tmp_path, "en")
    message = str(raised.value)
    assert "\n" not in message
    assert re.match(r"report\.pdf: the layout (needed more than|stopped).* 48 MB", message), message
    assert message.endswith(
        "not written, the rest of the bundle is (report.html, report.json, manifest.json)"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json", "report.html", "report.json"]
    assert verify_bundle(tmp_path).ok


def test_a_pdf_over_its_time_limit_is_one_line():
    with pytest.raises(
        PdfLimitError,
        match=r"^report\.pdf: the layout took longer than its limit of 0\.05 s \(\$ATTT_PDF_SECONDS\)$",
    ):
        PdfRenderer(time_limit=0.05).render(F.report(F.all_statuses()), "vi")


def test_a_limit_that_is_not_a_number_is_a_config_error(monkeypatch):
    monkeypatch.setenv("ATTT_PDF_SECONDS", "ten")
    with pytest.raises(ConfigError, match=r"^\$ATTT_PDF_SECONDS must be a positive whole number, not 'ten'$"):
        PdfRenderer().render(F.report(F.all_statuses()), "en")


def test_a_bundle_of_the_pdf_alone_over_its_limit_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(RENDERERS["pdf"], "time_limit", 0.05)
    with pytest.raises(PdfLimitError):
        write_bundle(F.report(F.all_statuses()), ["pdf"], tmp_path / "out", "en")
    assert not (tmp_path / "out").exists()
