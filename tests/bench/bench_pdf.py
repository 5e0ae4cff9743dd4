"""Render `report.pdf` for province-sized reports and print what each cost.

    python -m tests.bench.bench_pdf [--systems 150 500 1500] [--lang vi]

Each size renders in a fresh process, so its peak memory is its own: wall and CPU seconds (the
WeasyPrint children included), the peak resident memory of the largest process (a long report is
laid out in parts, one child each: the peak is the largest part's), the parts, the pages (by
`pdfinfo`, poppler-utils) and the size of the PDF. No network: the reports come from
`tests.factories.large_report`, 25 findings a system, as `bench_report` builds them.
"""

import argparse
import json
import re
import resource
import subprocess
import sys
import tempfile
import time

FINDINGS_PER_SYSTEM = 25


def _one(systems: int, lang: str) -> None:
    """In the measured process: render one PDF and print its pages and bytes as JSON."""
    from attt.reports.html import build_view
    from attt.reports.pdf import PdfRenderer, parts
    from tests.factories import large_report

    report = large_report(systems, systems * FINDINGS_PER_SYSTEM)
    laid_out = len(parts(build_view(report, lang, medium="pdf")))  # type: ignore[arg-type]
    try:
        body = PdfRenderer().render(report, lang)  # type: ignore[arg-type]
    except Exception as exc:  # the benchmark reports the error as its result
        print(json.dumps({"error": str(exc)}))
        return
    with tempfile.NamedTemporaryFile(suffix=".pdf") as pdf:
        pdf.write(body)
        pdf.flush()
        info = subprocess.run(["pdfinfo", pdf.name], capture_output=True, check=True, timeout=120).stdout
    pages = int(re.search(rb"^Pages:\s+(\d+)", info, re.M).group(1))  # type: ignore[union-attr]
    print(json.dumps({"parts": laid_out, "pages": pages, "mb": len(body) / 1e6}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--systems", type=int, nargs="+", default=[150, 500, 1500])
    parser.add_argument("--lang", choices=("vi", "en"), default="vi")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        _one(args.one, args.lang)
        return 0
    columns = (("systems", 8), ("findings", 10), ("wall s", 9), ("cpu s", 8), ("peak MB", 9), ("parts", 7))
    print("".join(f"{name:>{width}}" for name, width in (*columns, ("pages", 7), ("PDF MB", 8))))
    for systems in args.systems:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "tests.bench.bench_pdf", "--one", str(systems), "--lang", args.lang],
            capture_output=True,
            check=True,
        )
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
        # ru_maxrss of the children is the largest of any process waited for so far: sizes ascend
        result = json.loads(done.stdout.decode().strip().splitlines()[-1])
        shown = (
            f"  {result['error']}"
            if "error" in result
            else f"{result['parts']:>7}{result['pages']:>7}{result['mb']:>8.1f}"
        )
        peak = after.ru_maxrss / 1024
        print(f"{systems:>8}{systems * FINDINGS_PER_SYSTEM:>10}{wall:>9.1f}{cpu:>8.1f}{peak:>9.0f}{shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
