"""The run's shared TLS job pool: per-IP connection cap, order of service, cancellation.

Pure scheduling, no network: the jobs are Python callables standing in for handshakes."""

import math
import threading
import time
from collections import Counter
from types import SimpleNamespace
from typing import Any
from uuid import uuid4

import pytest
from sslyze.connection_helpers.tls_connection import NoCiphersAvailableBugInSSlyze
from sslyze.errors import ConnectionToServerTimedOut, ServerRejectedConnection
from sslyze.plugins.openssl_cipher_suites._test_cipher_suite import (
    CipherSuiteAcceptedByServer,
    CipherSuiteRejectedByServer,
)
from sslyze.plugins.openssl_cipher_suites.cipher_suites import CipherSuitesRepository
from sslyze.server_connectivity import TlsVersionEnum
from sslyze.server_setting import ServerNetworkConfiguration, ServerNetworkLocation

from attt.checks.tls._pool import Admission, EndpointScan, JobPool, _robot_may_connect, machine_cpu
from attt.checks.tls._sslyze import Endpoint, ScanOptions, _await, _overrun, _overrun_due


class Recorder:
    """Jobs that take a little while and record how many ran at once per IP, and in what order."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now: Counter[str] = Counter()
        self.peak: Counter[str] = Counter()
        self.ran: list[str] = []

    def job(self, ip: str, label: str) -> Any:
        def run() -> None:
            with self.lock:
                self.now[ip] += 1
                self.peak[ip] = max(self.peak[ip], self.now[ip])
                self.ran.append(label)
            time.sleep(0.01)
            with self.lock:
                self.now[ip] -= 1

        return run


def scan(ip: str, order: int) -> EndpointScan:
    return EndpointScan(request=SimpleNamespace(uuid=uuid4()), ip=ip, order=order)  # type: ignore[arg-type]


def queue(pool: JobPool, one: EndpointScan, count: int, recorder: Recorder, per_ip: int) -> None:
    with pool._lock:
        pool._per_ip[one.ip] = per_ip
        for i in range(count):
            pool._push(one, "command", recorder.job(one.ip, f"{one.order}:{i}"), ())


def drain(scans: list[EndpointScan], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while any(s.pending for s in scans if not s.cancelled) and time.monotonic() < deadline:
        time.sleep(0.01)


def test_connections_to_one_ip_stay_under_its_cap_whatever_the_workers():
    pool, recorder = JobPool(max_workers=8), Recorder()
    scans = [scan(ip, n) for n, ip in enumerate(("127.0.10.1", "127.0.10.1", "127.0.10.2"))]
    for one in scans:
        queue(pool, one, 15, recorder, per_ip=2)
    drain(scans)
    assert all(s.pending == 0 for s in scans)
    assert recorder.peak == {"127.0.10.1": 2, "127.0.10.2": 2}
    assert len(recorder.ran) == 45
    assert pool.workers <= 4  # two IPs at two connections each: no thread beyond what can connect


def test_an_earlier_endpoint_is_served_before_a_later_one():
    pool, recorder = JobPool(max_workers=1), Recorder()
    first = scan("127.0.10.1", 0)
    second = scan("127.0.10.2", 1)
    queue(pool, second, 3, recorder, per_ip=3)
    queue(pool, first, 3, recorder, per_ip=3)
    drain([first, second])
    # The second's first job may have started before the first endpoint arrived; after that,
    # the earlier endpoint goes first.
    order = [label.split(":")[0] for label in recorder.ran]
    order = order[1:] if order[0] == "1" else order
    assert order == sorted(order)


def test_a_cancelled_scan_runs_no_more_jobs_and_does_not_hold_up_the_others():
    pool, recorder = JobPool(max_workers=4), Recorder()
    doomed = scan("127.0.10.1", 0)
    other = scan("127.0.10.1", 1)
    queue(pool, doomed, 200, recorder, per_ip=1)
    queue(pool, other, 5, recorder, per_ip=1)
    time.sleep(0.05)
    pool.cancel(doomed)
    ran_when_cancelled = sum(1 for label in recorder.ran if label.startswith("0:"))
    drain([other])
    assert other.pending == 0
    assert sum(1 for label in recorder.ran if label.startswith("0:")) <= ran_when_cancelled + 1
    assert sum(1 for label in recorder.ran if label.startswith("1:")) == 5


def test_a_job_held_for_last_runs_alone_once_every_other_job_of_its_scan_is_done():
    pool, recorder = JobPool(max_workers=4), Recorder()
    one = scan("127.0.10.1", 0)
    alone: list[int] = []

    def last() -> None:
        with recorder.lock:
            alone.append(recorder.now[one.ip])
            recorder.ran.append("0:last")

    one.last.append(("command", last, ()))
    queue(pool, one, 9, recorder, per_ip=3)
    drain([one])
    assert recorder.ran[-1] == "0:last" and len(recorder.ran) == 10
    assert alone == [0]  # no other connection of its IP was open when it started
    assert recorder.peak[one.ip] == 3 and not one.last


class Clocks:
    """A clock, the process's CPU time and the machine's, moved by hand."""

    CORES = 2

    def __init__(self) -> None:
        self.now = self.cpu = 0.0
        self.machine_busy = self.machine_all = 0.0

    def run(self, seconds: float, cpu_per_second: float, others: float = 0.0) -> None:
        """`seconds` pass, this process using `cpu_per_second` cores and everything else `others`."""
        self.now += seconds
        self.cpu += seconds * cpu_per_second
        self.machine_busy += seconds * min(self.CORES, cpu_per_second + others)
        self.machine_all += seconds * self.CORES

    def admission(self) -> Admission:
        return Admission(
            ceiling=64,
            floor=4,
            window=0.5,
            cpu=lambda: self.cpu,
            clock=lambda: self.now,
            machine=lambda: (self.machine_busy, self.machine_all),
        )


def test_admission_shrinks_while_the_process_is_saturated_and_grows_while_it_idles():
    clocks = Clocks()
    admission = clocks.admission()
    assert admission.limit == 8  # starts low, like a slow start
    for _ in range(40):
        clocks.run(0.5, 0.3)  # mostly waiting on the network
        admission.tick()
    assert admission.limit == 64
    for _ in range(40):
        clocks.run(0.5, 0.95)  # the GIL's one core, busy
        admission.tick()
    assert admission.limit == 4
    clocks.run(0.1, 0.3)
    assert admission.tick() == 4  # within a window, nothing is re-measured


def test_admission_shrinks_while_other_work_saturates_the_machine_however_idle_the_process():
    clocks = Clocks()
    admission = clocks.admission()
    for _ in range(40):
        clocks.run(0.5, 0.3)
        admission.tick()
    assert admission.limit == 64
    for _ in range(40):
        clocks.run(0.5, 0.3, others=1.9)  # local servers, other programs, a hypervisor's steal
        admission.tick()
    assert admission.limit == 4
    for _ in range(3):
        clocks.run(0.5, 0.3, others=1.0)  # the machine has room again
        admission.tick()
    assert admission.limit == 10


def test_admission_goes_by_the_process_alone_where_the_machine_cannot_be_read():
    clocks = Clocks()
    admission = Admission(
        ceiling=64, floor=4, cpu=lambda: clocks.cpu, clock=lambda: clocks.now, machine=lambda: None
    )
    for _ in range(40):
        clocks.run(0.5, 0.3, others=1.9)
        admission.tick()
    assert admission.limit == 64


def test_the_machine_cpu_is_read_busy_and_whole_from_proc_stat():
    first = machine_cpu()
    assert first is not None  # Linux
    busy, everything = first
    assert 0 <= busy <= everything
    deadline = time.monotonic() + 0.3
    while time.monotonic() < deadline:  # busy for a while: the counters move
        pass
    later = machine_cpu()
    assert later is not None and later[1] > everything and later[0] > busy


def test_a_scan_held_back_by_attt_is_not_silent_and_its_held_time_is_not_spent():
    pool, recorder = JobPool(max_workers=1), Recorder()
    first, second = scan("127.0.10.1", 0), scan("127.0.10.2", 1)
    gate = threading.Event()
    with pool._lock:
        pool._per_ip.update({first.ip: 1, second.ip: 1})
        pool._push(second, "command", recorder.job(second.ip, "1:0"), ())
        pool._push(second, "command", gate.wait, ())  # holds the only worker
    time.sleep(0.05)
    queue(pool, second, 1, recorder, per_ip=1)
    time.sleep(0.2)  # second: one job on the wire (the gate), one waiting for the worker
    assert second.running == 1
    gate.set()
    drain([second])
    assert second.running == 0 and second.held_since is not None
    time.sleep(0.1)
    assert second.active(time.monotonic()) < time.monotonic() - (second.started or 0) - 0.09
    assert first.active(time.monotonic()) == 0.0  # never started


def test_a_probe_looks_at_its_scan_again_when_the_scan_could_have_overrun_and_not_before():
    options = ScanOptions(connect_timeout=1, deadline=20, silence=5)
    one = scan("127.0.10.1", 0)
    assert _overrun_due(one, options, 100.0) == math.inf  # not started: attt holds it back
    one.started, one.running, one.last_progress = 100.0, 1, 103.0
    due = _overrun_due(one, options, 104.0)
    assert 108.0 < due < 108.1  # the silence budget, from the server's last answer
    assert _overrun(one, options, 107.99) is None
    assert "stopped answering" in getattr(_overrun(one, options, due), "reason", "")
    one.last_progress = 118.0  # still answering: the deadline comes first
    due = _overrun_due(one, options, 119.0)
    assert 120.0 < due < 120.1
    assert "did not finish" in getattr(_overrun(one, options, due), "reason", "")
    one.running, one.held_since = 0, 119.0  # every job held back by attt: nothing can overrun
    assert _overrun_due(one, options, 119.5) == math.inf


def test_a_probe_waiting_on_an_answering_server_looks_about_once_a_second_and_ends_at_its_silence():
    endpoint = Endpoint("127.0.10.1", 443)  # never connected to: the server's answers are simulated
    one = scan(endpoint.ip, 0)
    one.started = one.last_progress = time.monotonic()
    one.running = 1
    hung_up = threading.Event()

    def server() -> None:  # answers every 0.2 s for 2.5 s, then says nothing more
        ends = time.monotonic() + 2.5
        while time.monotonic() < ends and not hung_up.wait(0.2):
            one.last_progress = time.monotonic()

    looks: list[None] = []
    helper = threading.Thread(target=server)
    helper.start()
    started = time.monotonic()
    try:
        outcome = _await({endpoint: one}, ScanOptions(1, deadline=30, silence=1), lambda: looks.append(None))
    finally:
        hung_up.set()
        helper.join()
    seconds = time.monotonic() - started
    assert "stopped answering" in getattr(outcome[endpoint], "reason", "")
    assert 3.4 < seconds < 6, seconds  # 2.5 s of answers, then 1 s of silence: never sooner
    assert len(looks) <= 8, len(looks)  # about 4 (looking every 0.1 s called it 25 times)


def suite(openssl_name: str) -> Any:
    return CipherSuitesRepository.get_cipher_suite_with_openssl_name(TlsVersionEnum.TLS_1_2, openssl_name)


# An address given, so sslyze resolves nothing: these objects are built, never connected.
LOCATION = ServerNetworkLocation(hostname="robot.test", port=443, ip_address="127.0.0.1")
CONFIGURATION = ServerNetworkConfiguration.default_for_server_location(LOCATION)
RSA_KEX = suite("AES128-GCM-SHA256")  # TLS_RSA_WITH_AES_128_GCM_SHA256: what ROBOT offers
# RSA in their names but not their key exchange: ROBOT's handshakes cannot use them.
ECDHE = suite("ECDHE-RSA-AES128-GCM-SHA256")
DHE = suite("DHE-RSA-AES128-GCM-SHA256")


@pytest.mark.parametrize(
    ("value", "error", "may_connect"),
    [
        (CipherSuiteAcceptedByServer(cipher_suite=RSA_KEX, ephemeral_key=None), None, True),
        (CipherSuiteAcceptedByServer(cipher_suite=ECDHE, ephemeral_key=None), None, False),
        (CipherSuiteAcceptedByServer(cipher_suite=DHE, ephemeral_key=None), None, False),
        (CipherSuiteRejectedByServer(cipher_suite=RSA_KEX, error_message="handshake failure"), None, False),
        # No answer about the suite: ROBOT must still run, or a server whose RSA suites were
        # never answered is reported "not vulnerable" (sslyze's "RSA not supported") unearned.
        (None, ConnectionToServerTimedOut(LOCATION, CONFIGURATION, "timed out"), True),
        (None, ServerRejectedConnection(LOCATION, CONFIGURATION, "connection refused"), True),
        (None, ConnectionResetError("reset by peer"), True),
        # Our OpenSSL cannot offer the suite (sslyze skips it): neither can ROBOT's client.
        (None, NoCiphersAvailableBugInSSlyze("no cipher match"), False),
    ],
    ids=[
        "accepted-rsa-kex",
        "accepted-ecdhe",
        "accepted-dhe",
        "rejected-rsa-kex",
        "timed-out",
        "refused",
        "reset",
        "not-offerable",
    ],
)
def test_robot_runs_after_an_accepted_rsa_key_exchange_suite_or_an_unanswered_one(value, error, may_connect):
    assert _robot_may_connect(value, error) is may_connect
