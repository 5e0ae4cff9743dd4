"""Render a province-sized report in every format and print how long each took.

    python -m tests.bench.bench_report [--systems 500] [--findings 20000] [--strict]

`--strict` exits 1 when the HTML takes longer than its target (3 s), for `make bench` in CI.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

from attt.reports.bundle import RENDERERS, write_bundle
from attt.reports.manifest import verify_bundle
from tests.factories import large_report

HTML_TARGET_SECONDS = 3.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--systems", type=int, default=500)
    parser.add_argument("--findings", type=int, default=20_000)
    parser.add_argument("--lang", choices=("vi", "en"), default="vi")
    parser.add_argument("--strict", action="store_true")
    args = parser.parse_args()

    started = time.perf_counter()
    report = large_report(args.systems, args.findings)
    print(
        f"report: {len(report.systems)} systems, {len(report.findings)} findings, "
        f"{len(report.observations)} observations (built in {time.perf_counter() - started:.2f} s)"
    )
    print(f"{'format':<10}{'seconds':>10}{'MB':>10}")
    seconds: dict[str, float] = {}
    for name, renderer in RENDERERS.items():
        started = time.perf_counter()
        body = renderer.render(report, args.lang)
        seconds[name] = time.perf_counter() - started
        print(f"{name:<10}{seconds[name]:>10.2f}{len(body) / 1e6:>10.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        write_bundle(report, list(RENDERERS), Path(tmp), args.lang)
        written = time.perf_counter() - started
        started = time.perf_counter()
        ok = verify_bundle(Path(tmp)).ok
        verified = time.perf_counter() - started
    print(f"{'bundle':<10}{written:>10.2f}{'':>10}  (every format + manifest)")
    print(f"{'verify':<10}{verified:>10.2f}{'':>10}  ({'ok' if ok else 'FAILED'})")
    slow = seconds["html"] > HTML_TARGET_SECONDS
    if slow:
        print(f"HTML took {seconds['html']:.2f} s, over its {HTML_TARGET_SECONDS:.0f} s target")
    return 1 if (args.strict and slow) or not ok else 0


if __name__ == "__main__":
    sys.exit(main())
