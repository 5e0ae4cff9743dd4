"""Time attt's TLS scan of the lab servers against `python -m sslyze` on the same servers.

Standalone (`make bench` runs it): starts the servers of tests/servers/tls.py on 127.0.30.x,
runs both scanners on the same endpoints with the same trust anchor, prints a table, stops
the servers. Only loopback addresses are contacted.
"""

import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from attt.checks.tls import TlsCheck, TlsSettings
from attt.scanner.plugin import ProbeContext
from tests import factories
from tests.servers.tls import TlsServer, tls_lab

PROBE_TIMEOUT = 60.0
CLI_TIMEOUT = 300.0
TLS_SERVERS = ("modern", "intermediate", "legacy", "tripledes", "expired", "selfsigned")


def attt_scan(servers: Sequence[TlsServer], ca_file: Path) -> None:
    """The way the runner probes: one `probe` per target, targets in parallel."""
    settings = TlsSettings(trust_anchors=(str(ca_file),))
    check = TlsCheck()

    def probe(server: TlsServer) -> None:
        target = factories.target(
            address=server.ip, hostname=server.hostname, services=((server.port, "tls"),)
        )
        observations = list(check.probe(target, ProbeContext(timeout=PROBE_TIMEOUT, settings=settings)))
        if len(observations) != 1:
            raise RuntimeError(f"{server.name}: expected one observation, got {len(observations)}")

    with ThreadPoolExecutor(max_workers=len(servers)) as pool:
        list(pool.map(probe, servers))


def sslyze_cli_scan(servers: Sequence[TlsServer], ca_file: Path) -> None:
    # `name:port{ip}` makes sslyze connect to the pinned address and send the name as SNI.
    targets = [f"{s.hostname}:{s.port}{{{s.ip}}}" for s in servers]
    subprocess.run(
        [sys.executable, "-m", "sslyze", f"--certinfo_ca_file={ca_file}", *targets],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=CLI_TIMEOUT,
        check=False,
    )


def timed(scan: Callable[[Sequence[TlsServer], Path], None], servers: Sequence[TlsServer], ca: Path) -> float:
    started = time.monotonic()
    try:
        scan(servers, ca)
    except subprocess.TimeoutExpired:
        return float("inf")
    return time.monotonic() - started


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="attt-bench-tls-") as tmp, tls_lab(Path(tmp)) as lab:
        rows = [
            ("6 TLS servers", [lab.servers[name] for name in TLS_SERVERS]),
            ("1 silent port (accepts, never answers)", [lab.servers["tarpit"]]),
        ]
        print(f"{'endpoints':<40} {'attt tls (s)':>13} {'python -m sslyze (s)':>21} {'ratio':>7}")
        for label, servers in rows:
            ours = timed(attt_scan, servers, lab.ca_file)
            theirs = timed(sslyze_cli_scan, servers, lab.ca_file)
            print(f"{label:<40} {ours:>13.1f} {theirs:>21.1f} {theirs / ours:>6.1f}x")


if __name__ == "__main__":
    main()
