"""Province scale on one machine: counts first, wall time second (issue 14).

    python -m tests.bench.bench_scale [--hosts 200,1000] [--no-save]

Runs in its own network namespace (re-executing itself under `unshare -n` when it can), so its
listeners never collide with anyone's. Measures, on local servers only:

- ports: `attt scan --check ports` over N hosts: nmap processes spawned, CPU-s of the whole
  process tree, wall; against one `nmap -sT` over the same hosts and ports;
- tls: connections (handshake attempts) per endpoint, CPU-s per endpoint, worker threads;
- fleet: a whole scan of the lab (TLS, STARTTLS, SSH, ports) at `--timeout 5 --concurrency 256`:
  observations in `error`, CPU-s, wall;
- summary: building the report summary for 1,500 systems.

Appends one entry to tests/bench/results.json (a versioned file: `schema` says how to read it),
with the machine's load average, since wall times on a shared machine say little on their own.
"""

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import yaml

from tests.bench import append_results, in_own_netns

OPEN_PORTS = (22, 443)
REPO = Path(__file__).resolve().parents[2]


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _addresses(count: int) -> list[str]:
    return [f"127.0.{150 + i // 250}.{1 + i % 250}" for i in range(count)]


def _counting_nmap(directory: Path) -> tuple[Path, Path]:
    """A bin directory whose nmap logs each run, then runs the real one."""
    log = directory / "nmap-runs.log"
    binary = directory / "bin" / "nmap"
    binary.parent.mkdir()
    real = shutil.which("nmap") or "/usr/bin/nmap"
    binary.write_text(f'#!/bin/sh\necho run >> {log}\nexec {real} "$@"\n', encoding="utf-8")
    binary.chmod(0o755)
    return binary.parent, log


def _attt(args: list[str], env: dict[str, str] | None = None) -> tuple[float, float, int]:
    """Wall seconds, CPU-s of attt and everything it started, exit code."""
    cpu, started = _children_cpu(), time.monotonic()
    done = subprocess.run(
        [str(Path(sys.executable).with_name("attt")), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "CI": "true", **(env or {})},
        check=False,
        cwd=REPO,
    )
    return time.monotonic() - started, _children_cpu() - cpu, done.returncode


def bench_ports(counts: list[int]) -> list[dict[str, Any]]:
    from tests.servers.listeners import tcp_listeners

    rows: list[dict[str, Any]] = []
    for count in counts:
        addresses = _addresses(count)
        systems = [
            # Levels 1-3: the common-port scan. Levels 4-5 scan every TCP port, a whole nmap run
            # per host by design, which would compare nothing with one nmap over 113 ports.
            {"id": f"s{i:04d}", "name": f"s{i}", "owner": f"o{i % 20}", "level": 1 + i % 3,
             "hosts": [{"address": address}]}
            for i, address in enumerate(addresses)
        ]  # fmt: skip
        with (
            tempfile.TemporaryDirectory() as tmp,
            tcp_listeners([(a, p) for a in addresses for p in OPEN_PORTS]),
        ):
            work = Path(tmp)
            inventory = work / "inv.yaml"
            scope = sorted({a.rsplit(".", 1)[0] + ".0/24" for a in addresses})
            inventory.write_text(yaml.safe_dump({"province": "bench", "scope": scope, "systems": systems}))
            bindir, log = _counting_nmap(work)
            out = work / "out"
            wall, cpu, code = _attt(
                ["scan", "-i", str(inventory), "--check", "ports", "--format", "json", "--out", str(out),
                 "--db", str(work / "db.sqlite")],
                env={"PATH": f"{bindir}:{os.environ['PATH']}"},
            )  # fmt: skip
            report = json.loads((out / "report.json").read_text(encoding="utf-8"))
            observations = report["observations"]
            ports = sorted({p for o in observations if o["data"] for p in o["data"]["scanned"]})
            errors = sum(1 for o in observations if o["status"] == "error")
            runs = len(log.read_text().splitlines()) if log.exists() else 0
            spec = ",".join(map(str, ports))
            cpu0, started = _children_cpu(), time.monotonic()
            subprocess.run(
                ["nmap", "-oX", "-", "-n", "-Pn", "-sT", "-T4", "--max-retries", "1", "-p", spec, *addresses],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False,
            )  # fmt: skip
            nmap_wall, nmap_cpu = time.monotonic() - started, _children_cpu() - cpu0
        rows.append({
            "hosts": count, "ports_per_host": len(ports), "exit": code, "errors": errors,
            "nmap_processes": runs, "attt_wall_s": round(wall, 2), "attt_cpu_s": round(cpu, 2),
            "one_nmap_wall_s": round(nmap_wall, 2), "one_nmap_cpu_s": round(nmap_cpu, 2),
        })  # fmt: skip
        print(
            f"ports  {count:>5} hosts: {runs} nmap runs, attt {wall:.1f} s / {cpu:.1f} CPU-s,"
            f" one nmap {nmap_wall:.1f} s / {nmap_cpu:.1f} CPU-s, {errors} in error",
            flush=True,
        )
    return rows


def bench_tls(lab: Any) -> dict[str, Any]:
    from attt.checks.tls import TlsCheck, TlsSettings, _pool
    from attt.scanner.plugin import ProbeContext
    from tests import factories
    from tests.checks.tls.test_elimination import counted_connections

    names = ("modern", "intermediate", "legacy", "tripledes", "expired", "selfsigned")
    check, jobs = TlsCheck(), _pool.pool()
    per_endpoint: dict[str, dict[str, Any]] = {}
    for name in names:
        server = lab.servers[name]
        target = factories.target(
            address=server.ip, hostname=server.hostname, services=((server.port, "tls"),)
        )
        row: dict[str, Any] = {}
        for way, exhaustive in (("fast", False), ("exhaustive", True)):
            settings = TlsSettings(trust_anchors=(str(lab.ca_file),), exhaustive_suites=exhaustive)
            cpu, started = _self_cpu(), time.monotonic()
            with counted_connections() as connects:
                (observation,) = check.probe(target, ProbeContext(timeout=60, settings=settings))
            row[way] = {
                "connections": connects.by_ip[server.ip],
                "cpu_s": round(_self_cpu() - cpu, 2),
                "wall_s": round(time.monotonic() - started, 2),
                "ok": observation.status == "ok",
            }
        per_endpoint[name] = row
        fast, full = row["fast"], row["exhaustive"]
        print(
            f"tls    {name:<13} fast {fast['connections']:>4} connections {fast['cpu_s']:>5.2f} CPU-s"
            f" | exhaustive {full['connections']:>4} {full['cpu_s']:>5.2f} CPU-s",
            flush=True,
        )
    # All at once, as the runner would: the threads the whole run needs.
    peak = [threading.active_count()]
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], threading.active_count())
            time.sleep(0.02)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    settings = TlsSettings(trust_anchors=(str(lab.ca_file),))
    threads = []
    for name in names:
        server = lab.servers[name]
        target = factories.target(
            address=server.ip, hostname=server.hostname, services=((server.port, "tls"),)
        )
        one = threading.Thread(
            target=lambda t=target: list(check.probe(t, ProbeContext(timeout=60, settings=settings)))
        )
        threads.append(one)
        one.start()
    for one in threads:
        one.join()
    stop.set()
    print(f"tls    6 endpoints at once: peak {peak[0]} threads, {jobs.workers} pool workers", flush=True)
    return {"endpoints": per_endpoint, "peak_threads_6_at_once": peak[0], "pool_workers": jobs.workers}


def bench_fleet(lab: Any, ssh: Any, timeout: int, concurrency: int) -> dict[str, Any]:
    from tests.servers.tls import GNUTLS_PORT

    systems: list[dict[str, Any]] = []
    for name in (
        "modern",
        "intermediate",
        "legacy",
        "tripledes",
        "expired",
        "selfsigned",
        "smtp",
        "imap",
        "pop3",
    ):
        server = lab.servers[name]
        services = [{"port": GNUTLS_PORT, "kind": "tls"}] if server.port == GNUTLS_PORT else []
        systems.append({"id": f"tls-{name}", "name": name, "owner": "o", "level": 2,
                        "hosts": [{"address": server.ip, "services": services}]})  # fmt: skip
    if ssh is not None:
        for name in ("hardened", "debian", "weak"):
            systems.append({"id": f"ssh-{name}", "name": name, "owner": "o", "level": 2,
                            "hosts": [{"address": getattr(ssh, name)}]})  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        inventory = work / "fleet.yaml"
        inventory.write_text(
            yaml.safe_dump({"province": "bench", "scope": ["127.0.0.0/8"], "systems": systems})
        )
        wall, cpu, code = _attt(
            ["scan", "-i", str(inventory), "--timeout", str(timeout), "--concurrency", str(concurrency),
             "--format", "json", "--out", str(work / "out"), "--db", str(work / "db.sqlite")]
        )  # fmt: skip
        report = json.loads((work / "out" / "report.json").read_text(encoding="utf-8"))
    errors = [
        f"{o['system']}/{o['check']}:{o['port']}" for o in report["observations"] if o["status"] == "error"
    ]
    print(f"fleet  {len(systems)} systems --timeout {timeout} --concurrency {concurrency}: {wall:.1f} s, "
          f"{cpu:.1f} CPU-s, {len(errors)} observations in error {errors}", flush=True)  # fmt: skip
    return {"systems": len(systems), "timeout": timeout, "concurrency": concurrency, "exit": code,
            "wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "errors": errors}  # fmt: skip


def bench_summary(systems: int, findings: int) -> dict[str, Any]:
    from attt.scanner.models.report import Summary
    from tests.factories import large_report

    report = large_report(systems, findings)
    cpu = _self_cpu()
    Summary.of(list(report.findings), report.systems)
    seconds = _self_cpu() - cpu
    print(f"summary {systems} systems, {findings} findings: {seconds:.2f} CPU-s", flush=True)
    return {"systems": systems, "findings": findings, "cpu_s": round(seconds, 3)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--hosts", default="200,1000")
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()
    if not in_own_netns("bench_scale"):
        print("bench_scale: needs `unshare -n` (root) for its own loopback", file=sys.stderr)
        return 0
    from tests.servers.sshd import can_run_sshd, running_ssh_servers
    from tests.servers.tls import tls_lab

    resource.setrlimit(resource.RLIMIT_NOFILE, (resource.getrlimit(resource.RLIMIT_NOFILE)[1],) * 2)
    load = os.getloadavg()
    print(f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on {os.cpu_count()} CPUs "
          "(wall times on a loaded machine: read the counts first)", flush=True)  # fmt: skip
    results: dict[str, Any] = {}
    results["ports"] = bench_ports([int(n) for n in args.hosts.split(",") if n])
    with tempfile.TemporaryDirectory(prefix="attt-bench-") as tmp, tls_lab(Path(tmp)) as lab:
        results["tls"] = bench_tls(lab)
        if can_run_sshd():
            (Path(tmp) / "ssh").mkdir()
            with running_ssh_servers(Path(tmp) / "ssh") as ssh:
                results["fleet"] = [bench_fleet(lab, ssh, 5, 256), bench_fleet(lab, ssh, 5, 16)]
        else:
            results["fleet"] = [bench_fleet(lab, None, 5, 256)]
    results["summary"] = [bench_summary(500, 20_000), bench_summary(1500, 60_000)]
    if not args.no_save:
        append_results(load, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
