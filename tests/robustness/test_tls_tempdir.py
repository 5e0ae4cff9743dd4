"""A TLS probe that runs out of time leaves nothing behind in the temporary directory.

The server completes the first handshake (attt's quick "does it speak TLS?" check) and then
accepts every later connection without a word, so sslyze is still waiting when the probe's
deadline passes and the scan moves on.
"""

import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.robustness.conftest import NET, inventory, run_attt

HALF = (f"{NET}.50", 8443)


@pytest.fixture
def half_tls_server(tmp_path: Path) -> Iterator[None]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=half", "-days", "2"],
        check=True, capture_output=True,
    )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = socket.create_server(HALF)
    held: list[socket.socket] = []

    def serve() -> None:
        first = True
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return  # closed: the test is over
            if first:
                first = False
                try:
                    context.wrap_socket(conn, server_side=True).close()
                except OSError:
                    conn.close()
            else:
                held.append(conn)  # silent until the test ends

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.close()
        for conn in held:
            conn.close()


def test_a_tls_probe_that_times_out_leaves_no_temporary_directory(
    tmp_path: Path, half_tls_server: None
) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    args = ["scan", "-i", str(inventory(tmp_path, [HALF[0]])), "-p", "baseline", "--check", "tls",
            "--db", str(tmp_path / "runs.db"), "--out", str(tmp_path / "out"), "--format", "json",
            "--timeout", "5"]  # fmt: skip
    run = run_attt(args, env={"CI": "true", "TMPDIR": str(temp)})
    assert run.returncode == 3, run.terminal
    assert "did not finish within" in run.terminal
    assert sorted(p.name for p in temp.iterdir() if p.name.startswith("attt-tls-")) == []
