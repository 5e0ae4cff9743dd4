"""A whole fleet through the real CLI: inventories that register one host several times, and
what each system is owed from the probe it shares or not.

1. Two systems of the same level register one address under different names and services: the
   probe of one system's registration must not stand for the other's (its SNI, its certificate
   name, its declared TLS port), and the summary does not claim one probe served both.

Servers run on 127.0.203.0/24 and are started by the tests.
"""

import json
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.robustness.conftest import run_attt

NET = "127.0.203"
SHARED = f"{NET}.1"
START_TIMEOUT = 10.0
Report = dict[str, Any]


def _wait_listening(ip: str, port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the server on {ip}:{port} exited with {proc.returncode}")
        try:
            socket.create_connection((ip, port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    pytest.fail(f"nothing listens on {ip}:{port} after {START_TIMEOUT:.0f} s")


@contextmanager
def _tls_servers(workdir: Path, ip: str, ports: tuple[int, ...], name: str) -> Iterator[None]:
    """`openssl s_server` on each port of `ip`, with a self-signed certificate for `name` only."""
    cert, key = workdir / f"{name}.crt", workdir / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "30", "-subj", f"/CN={name}",
         "-addext", f"subjectAltName=DNS:{name}"],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    with ExitStack() as stack:
        for port in ports:
            proc = subprocess.Popen(
                ["openssl", "s_server", "-accept", f"{ip}:{port}", "-cert", str(cert), "-key", str(key),
                 "-www", "-quiet", "-naccept", "10000"],
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            stack.callback(_stop, proc)
            _wait_listening(ip, port, proc)
        yield


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)
    if proc.stdin is not None:
        proc.stdin.close()


def _inventory(path: Path, *systems: dict[str, Any]) -> Path:
    base = {"name": "Hệ thống", "owner": "UBND xã Thạch Hà", "level": 3}
    body = {"province": "Hà Tĩnh", "scope": [f"{NET}.0/24"], "systems": [base | s for s in systems]}
    path.write_text(json.dumps(body, ensure_ascii=False))  # JSON is YAML without anchors
    return path


def _scan(tmp_path: Path, inventory: Path, *args: str) -> tuple[int, Report, str]:
    out = tmp_path / "out"
    run = run_attt(
        ["scan", "-i", str(inventory), "--out", str(out), "--db", str(tmp_path / "runs.db"),
         "--format", "json", "--lang", "en", "--timeout", "10", *args],
        timeout=120,
    )  # fmt: skip
    assert "Traceback" not in run.terminal, run.terminal
    assert (out / "report.json").exists(), run.terminal
    return run.returncode, json.loads((out / "report.json").read_text()), run.stdout


def _finding(report: Report, system: str, rule: str, port: int | None = None) -> dict[str, Any]:
    [finding] = [
        f for f in report["findings"] if (f["system"], f["rule_id"]) == (system, rule) and f["port"] == port
    ]
    return finding


def test_1_one_address_two_registrations_each_probed_as_registered(tmp_path: Path) -> None:
    # One machine, two systems of the same level and policy: `a` knows it as a.attt.test (the
    # name its certificate carries), `b` as b.attt.test with a TLS service on 10443 besides.
    inventory = _inventory(
        tmp_path / "inv.yaml",
        {"id": "sys-a", "hosts": [{"address": SHARED, "hostname": "a.attt.test"}]},
        {"id": "sys-b", "hosts": [{"address": SHARED, "hostname": "b.attt.test",
                                   "services": [{"port": 10443, "kind": "tls"}]}]},
    )  # fmt: skip
    with _tls_servers(tmp_path, SHARED, (443, 10443), "a.attt.test"):
        code, report, stdout = _scan(tmp_path, inventory, "--check", "ports", "--check", "tls")
    tls = {(o["system"], o["port"]): o for o in report["observations"] if o["check"] == "tls"}
    assert set(tls) == {("sys-a", 443), ("sys-b", 443), ("sys-b", 10443)}
    assert all(o["status"] == "ok" for o in tls.values()), tls
    assert tls[("sys-a", 443)]["data"]["sni"] == "a.attt.test"
    assert tls[("sys-b", 443)]["data"]["sni"] == "b.attt.test"
    # The certificate names a.attt.test: right for `a`, wrong for `b`.
    assert _finding(report, "sys-a", "TLS-HOSTNAME", 443)["status"] == "pass"
    assert _finding(report, "sys-b", "TLS-HOSTNAME", 443)["status"] == "fail"
    assert _finding(report, "sys-b", "TLS-HOSTNAME", 10443)["status"] == "fail"
    # `b`'s port scan covered the port it declares.
    assert _finding(report, "sys-b", "PORT-DECLARED-REACHABLE")["status"] == "pass"
    assert _finding(report, "sys-a", "PORT-DECLARED-REACHABLE")["status"] == "not_applicable"
    assert report["summary"]["systems"]["sys-b"]["by_status"]["error"] == 0
    assert code == 1  # self-signed certificates fail their rules
    # Nothing was probed once for both, and the summary does not say it was.
    assert f"host {SHARED} is in systems sys-a, sys-b: each judges it by its own rules" in stdout
    assert "probed once" not in stdout
