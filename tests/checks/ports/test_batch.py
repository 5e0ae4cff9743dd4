"""The ports check over many hosts at once: one nmap run, its XML split per host, every host
keeping its own ports, and a failure of the run (or of one host's part) never read as "nothing
open"."""

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from attt.checks.ports import PortsCheck, _nmap
from attt.checks.ports.models import PortsData, PortsSettings
from attt.scanner.plugin import ProbeContext
from tests.checks.ports.test_ports import make_target
from tests.servers.listeners import PORTS_HOST_EMPTY, PORTS_HOST_MIXED, PORTS_HOST_TLS

# --- reading nmap's XML (pure) --------------------------------------------------------------


def xml(*hosts: str, version: str = "7.93") -> str:
    stats = '<runstats><finished exit="success"/></runstats>'
    return f'<nmaprun version="{version}">{"".join(hosts)}{stats}</nmaprun>'


def host(ip: str, ports: str = "", extra: str = "", timedout: bool = False) -> str:
    flag = ' timedout="true"' if timedout else ""
    return (
        f'<host{flag}><status state="up"/><address addr="{ip}" addrtype="ipv4"/>'
        f"<ports>{extra}{ports}</ports></host>"
    )


def port(number: int, state: str, name: str = "") -> str:
    return f'<port protocol="tcp" portid="{number}"><state state="{state}"/><service name="{name}"/></port>'


def extra(state: str, count: int, ports: str | None = None) -> str:
    named = f' ports="{ports}"' if ports is not None else ""
    return f'<extraports state="{state}" count="{count}"><extrareasons count="{count}"{named}/></extraports>'


def test_each_host_gets_every_port_of_the_run_from_listed_and_named_extraports():
    output = xml(
        host("127.0.99.1", port(22, "open", "ssh"), extra("closed", 3, "23,80-81")),
        host("127.0.99.2", port(80, "open", "http"), extra("filtered", 3, "22-23,81")),
    )
    version, results = _nmap.parse(output, ["127.0.99.1", "127.0.99.2"], [22, 23, 80, 81])
    assert version == "7.93"
    first, second = results["127.0.99.1"], results["127.0.99.2"]
    assert isinstance(first, _nmap.ScanResult) and isinstance(second, _nmap.ScanResult)
    assert [(p.port, p.state) for p in first.ports] == [
        (22, "open"),
        (23, "closed"),
        (80, "closed"),
        (81, "closed"),
    ]
    assert [(p.port, p.state) for p in second.ports] == [
        (22, "filtered"), (23, "filtered"), (80, "open"), (81, "filtered"),
    ]  # fmt: skip
    assert first.open_ports[0].service == "ssh"


def test_extraports_without_port_lists_count_only_when_one_state_covers_the_rest():
    single = xml(host("127.0.99.1", port(22, "open"), extra("closed", 2)))
    _, results = _nmap.parse(single, ["127.0.99.1"], [22, 23, 80])
    assert isinstance(results["127.0.99.1"], _nmap.ScanResult)
    mixed = xml(host("127.0.99.1", port(22, "open"), extra("closed", 1) + extra("filtered", 1)))
    _, results = _nmap.parse(mixed, ["127.0.99.1"], [22, 23, 80])
    assert isinstance(results["127.0.99.1"], _nmap.NmapFailedError)
    assert "1 of 3 requested ports" in str(results["127.0.99.1"])


def test_a_timed_out_or_missing_host_fails_alone():
    output = xml(host("127.0.99.1", port(22, "open")), host("127.0.99.2", timedout=True))
    _, results = _nmap.parse(output, ["127.0.99.1", "127.0.99.2", "127.0.99.3"], [22])
    assert isinstance(results["127.0.99.1"], _nmap.ScanResult)
    assert "host timeout" in str(results["127.0.99.2"])
    assert "no result for 127.0.99.3" in str(results["127.0.99.3"])


def test_unreadable_output_fails_the_run():
    with pytest.raises(_nmap.NmapFailedError, match="not readable XML"):
        _nmap.parse("<nmaprun", ["127.0.99.1"], [22])


# --- real scans of real listeners -----------------------------------------------------------


def counting_nmap(tmp_path: Path) -> tuple[str, Path]:
    """An nmap that records each invocation and then runs the real one."""
    log = tmp_path / "runs.log"
    wrapper = tmp_path / "nmap"
    wrapper.write_text(f'#!/bin/sh\necho "$@" >> {log}\nexec nmap "$@"\n', encoding="utf-8")
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return str(wrapper), log


def test_one_nmap_run_scans_many_hosts_each_with_its_own_ports(port_listeners, tmp_path):
    binary, log = counting_nmap(tmp_path)
    jobs = [
        (
            make_target(PORTS_HOST_MIXED),
            ProbeContext(timeout=20, settings=PortsSettings(ports=(22, 23, 8080))),
        ),
        (make_target(PORTS_HOST_TLS), ProbeContext(timeout=20, settings=PortsSettings(ports=(443, 444)))),
        (make_target(PORTS_HOST_EMPTY), ProbeContext(timeout=20, settings=PortsSettings(ports=(23, 443)))),
    ]
    observations = {o.host: o for o in PortsCheck(nmap_binary=binary).probe_batch(jobs)}
    assert len(log.read_text().splitlines()) == 1
    # A host where every port refused is in no service at all: an error, split out alone.
    empty = observations.pop(PORTS_HOST_EMPTY)
    assert empty.status == "error" and "nothing answered" in (empty.error or "")
    data = {host: PortsData.model_validate(o.data) for host, o in observations.items()}
    assert {h: (d.scanned, set(d.open_ports())) for h, d in data.items()} == {
        PORTS_HOST_MIXED: ((22, 23, 8080), {23, 8080}),
        PORTS_HOST_TLS: ((443, 444), {443}),
    }


def test_hosts_sharing_a_policy_still_scan_the_ports_their_own_registration_adds(port_listeners, tmp_path):
    # One settings object and one rule list for every host, as a province's hosts of one level
    # share them: the ports each host's registration adds must still be its own.
    binary, _ = counting_nmap(tmp_path)
    ctx = ProbeContext(timeout=20, settings=PortsSettings(ports=(22, 23)))
    jobs = [
        (make_target(PORTS_HOST_MIXED, services=(8080,)), ctx),
        (make_target(PORTS_HOST_TLS, allowed=(443,)), ctx),
        (make_target(PORTS_HOST_EMPTY), ctx),
    ]
    observations = {o.host: o for o in PortsCheck(nmap_binary=binary).probe_batch(jobs)}
    mixed, tls = (PortsData.model_validate(observations[h].data) for h in (PORTS_HOST_MIXED, PORTS_HOST_TLS))
    assert (mixed.scanned, set(mixed.open_ports())) == ((22, 23, 8080), {23, 8080})
    assert (tls.scanned, set(tls.open_ports())) == ((22, 23, 443), {443})
    assert observations[PORTS_HOST_EMPTY].status == "error"  # (22, 23): nothing answered


def test_a_port_listed_on_its_own_is_read_from_there_not_from_a_count():
    # nmap counts a port in `extraports` and lists it too: the port's own element says what it is.
    output = xml(host("127.0.99.1", port(80, "open", "http"), extra("closed", 2, "22,80")))
    _, results = _nmap.parse(output, ["127.0.99.1"], [22, 80])
    read = results["127.0.99.1"]
    assert isinstance(read, _nmap.ScanResult)
    assert [(p.port, p.state, p.service) for p in read.ports] == [(22, "closed", ""), (80, "open", "http")]


def test_a_full_range_of_counted_ports_is_read_for_each_host():
    # Lists too long to keep for the run's other hosts are read anew, each host its own.
    wanted = list(range(1, 65536))
    output = xml(
        host("127.0.99.1", port(22, "open"), extra("closed", 65534, "1-21,23-65535")),
        host("127.0.99.2", port(80, "open"), extra("filtered", 65534, "1-79,81-65535")),
    )
    _, results = _nmap.parse(output, ["127.0.99.1", "127.0.99.2"], wanted)
    first, second = results["127.0.99.1"], results["127.0.99.2"]
    assert isinstance(first, _nmap.ScanResult) and isinstance(second, _nmap.ScanResult)
    assert [p.port for p in first.open_ports] == [22] and first.count("closed") == 65534
    assert [p.port for p in second.open_ports] == [80] and second.count("filtered") == 65534


def test_a_failed_run_is_an_error_for_every_host_of_the_batch(tmp_path):
    broken = tmp_path / "nmap"
    broken.write_text("#!/bin/sh\necho 'segfault' >&2\nexit 139\n", encoding="utf-8")
    broken.chmod(broken.stat().st_mode | stat.S_IXUSR)
    jobs = [
        (make_target(ip), ProbeContext(timeout=5, settings=PortsSettings(ports=(23,))))
        for ip in (PORTS_HOST_MIXED, PORTS_HOST_EMPTY)
    ]
    observations = PortsCheck(nmap_binary=str(broken)).probe_batch(jobs)
    assert [(o.host, o.status, o.error) for o in observations] == [
        (PORTS_HOST_MIXED, "error", "nmap failed: segfault"),
        (PORTS_HOST_EMPTY, "error", "nmap failed: segfault"),
    ]


_NO_FILES_LEFT = """
import resource, sys
from attt.checks.ports import PortsCheck
from attt.checks.ports.models import PortsSettings
from attt.scanner.plugin import ProbeContext
from tests.checks.ports.test_ports import make_target
held = []
resource.setrlimit(resource.RLIMIT_NOFILE, (64, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
try:
    while True:
        held.append(open("/dev/null"))
except OSError:
    pass
ctx = ProbeContext(timeout=5, settings=PortsSettings(ports=(23,)))
(obs,) = PortsCheck().probe(make_target(sys.argv[1]), ctx)
print(obs.status, obs.error)
"""


def test_too_many_open_files_is_said_as_such_not_as_a_missing_nmap():
    run = subprocess.run(
        [sys.executable, "-c", _NO_FILES_LEFT, PORTS_HOST_EMPTY],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=Path(__file__).resolve().parents[3],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])},
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("error "), run.stdout
    assert "too many open files" in run.stdout
    assert "not installed" not in run.stdout


# --- hosts as nmap writes them (a scripted nmap: no network) --------------------------------


def scripted_nmap(tmp_path: Path, body: str) -> _nmap.NmapCommand:
    """An `nmap` that runs `body` (sh) in place of a scan; the command asks for 127.0.99.1-2."""
    script = tmp_path / "nmap"
    script.write_text(f"#!/bin/sh\n{body}\n", encoding="utf-8")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return _nmap.NmapCommand(ips=("127.0.99.1", "127.0.99.2"), ports=(22,), flags=(), timeout=5)


def first_and_second(between: str = "") -> str:
    """Host 1, then (once the reader has it) `between`, then host 2."""
    head = '<nmaprun version="7.93">'
    first, second = host("127.0.99.1", port(22, "closed")), host("127.0.99.2", port(22, "closed"))
    # Written only once the first host was read: a reader waiting for the end of the run would
    # never see it (the script gives up after 5 s and exits in error).
    wait = 'for i in $(seq 50); do [ -e "$0.seen" ] && break; sleep 0.1; done; [ -e "$0.seen" ] || exit 3'
    return f"printf '%s' '{head}{first}'\n{wait}\n{between}\nprintf '%s' '{second}</nmaprun>'"


def read_first_then_the_rest(tmp_path: Path, command: _nmap.NmapCommand) -> dict[str, _nmap.HostResult]:
    results = _nmap.stream(command, str(tmp_path / "nmap"))
    ip, first = next(results)
    (tmp_path / "nmap.seen").touch()
    return {ip: first, **dict(results)}


def test_each_host_comes_out_as_soon_as_nmap_writes_it(tmp_path):
    results = read_first_then_the_rest(tmp_path, scripted_nmap(tmp_path, first_and_second()))
    assert list(results) == ["127.0.99.1", "127.0.99.2"]
    assert all(isinstance(r, _nmap.ScanResult) for r in results.values())


@pytest.mark.parametrize(
    ("between", "why"),
    [
        # nmap says it ran out of sockets: what it writes after that reads as "closed".
        ("echo 'socket troubles: Too many open files (24)' >&2", "too many open files"),
        ("echo 'Segmentation fault' >&2; exit 139", "nmap failed: Segmentation fault"),
        ("exit 1", "nmap failed: exit status 1"),
        ("sleep 30", "did not finish within 5 s"),
    ],
)
def test_a_run_that_breaks_midway_keeps_the_hosts_written_before(tmp_path, between, why):
    results = read_first_then_the_rest(tmp_path, scripted_nmap(tmp_path, first_and_second(between)))
    assert isinstance(results["127.0.99.1"], _nmap.ScanResult)
    second = results["127.0.99.2"]
    assert isinstance(second, _nmap.NmapFailedError) and why in str(second)


def test_out_of_files_said_with_a_host_in_the_same_read_fails_that_host_too(tmp_path):
    # Both outputs ready at once: which came first is unknown, so the host is not believed.
    head, first = '<nmaprun version="7.93">', host("127.0.99.1", port(22, "closed"))
    body = f"echo 'socket troubles: Too many open files (24)' >&2\nprintf '%s' '{head}{first}'\nsleep 1"
    results = dict(_nmap.stream(scripted_nmap(tmp_path, body), str(tmp_path / "nmap")))
    assert all("too many open files" in str(r) for r in results.values())


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="one core: nmap is left to the kernel")
def test_nmap_runs_on_a_core_of_its_own_and_the_reader_on_the_others_until_it_ends(tmp_path):
    every = os.sched_getaffinity(0)
    report = 'grep Cpus_allowed_list /proc/self/status | cut -f2 > "$0.cores"'
    results = _nmap.stream(scripted_nmap(tmp_path, first_and_second(report)), str(tmp_path / "nmap"))
    next(results)
    reading = os.sched_getaffinity(0)
    (tmp_path / "nmap.seen").touch()
    assert len(list(results)) == 1
    nmap_cores = {int(core) for core in (tmp_path / "nmap.cores").read_text().split(",") if "-" not in core}
    assert len(nmap_cores) == 1 and nmap_cores <= every
    assert reading == every - nmap_cores
    assert os.sched_getaffinity(0) == every
