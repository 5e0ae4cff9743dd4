"""`make demo`: start demo targets on loopback, scan them with the demo inventory, show the result.

The targets are the same real servers the tests use (OpenSSL, nginx, GnuTLS, OpenSSH, TCP
listeners); everything started here is stopped before the demo ends.
"""

import os
import shutil
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

from tests.servers.listeners import tcp_listeners
from tests.servers.sshd import can_run_sshd, running_ssh_servers
from tests.servers.tls import tls_lab
from tests.servers.web import web_lab

HERE = Path(__file__).resolve().parent
WORKDIR = Path(".demo")
LISTENERS = [
    ("127.0.60.2", 21),  # FTP next to the document system: forbidden
    ("127.0.60.2", 23),  # telnet: forbidden
    ("127.0.60.3", 5432),  # a database reachable outside its zone
    ("127.0.60.3", 22),
]


def main() -> int:
    shutil.rmtree(WORKDIR, ignore_errors=True)
    WORKDIR.mkdir()
    attt = Path(sys.executable).with_name("attt")
    report_dir = WORKDIR / "report"
    with ExitStack() as stack:
        print(
            "starting demo targets on 127.0.61.x (TLS), 127.0.62.x (SSH), 127.0.60.x (TCP), "
            "127.0.63.x (web) ..."
        )
        for part in ("tls", "ssh"):
            (WORKDIR / part).mkdir()
        stack.enter_context(tls_lab((WORKDIR / "tls").resolve(), net="127.0.61"))
        # An HTTP-only commune portal, and a department portal that serves its .git directory.
        stack.enter_context(
            web_lab((WORKDIR / "web").resolve(), net="127.0.63", names=("httponly", "gitleak"))
        )
        if can_run_sshd():
            stack.enter_context(running_ssh_servers((WORKDIR / "ssh").resolve(), net="127.0.62"))
        else:
            print("note: SSH demo targets need root and openssh-server; they will show as errors")
        stack.enter_context(tcp_listeners(LISTENERS, banner=b"220 demo service\r\n"))
        argv = [str(attt), "scan", "-i", str(HERE / "inventory.yaml"), "--out", str(report_dir),
                "--db", str(WORKDIR / "attt.db"), "--format", "html,json,junit,sarif,csv,pdf"]  # fmt: skip
        print("$ " + " ".join(argv[1:]))
        started = time.monotonic()
        scan = subprocess.run(argv, check=False, env={**os.environ, "CI": os.environ.get("CI", "")})
        elapsed = time.monotonic() - started
    print(
        f"scan took {elapsed:.1f} s and exited {scan.returncode} (1 = violations found, as the demo intends)"
    )
    html = report_dir / "report.html"
    if scan.returncode == 2 or not html.exists():
        print("demo failed: no report was written", file=sys.stderr)
        return 1
    print(f"HTML report: {html.resolve()}")
    print(f"PDF report:  {(report_dir / 'report.pdf').resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
