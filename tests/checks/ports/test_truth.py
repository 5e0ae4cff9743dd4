"""What each ports verdict rests on, scanned by real nmap against real listeners that answer in
every way a port can: a connection completed, refused, reset right after it was accepted, or
no answer at all (a listener whose queue of connections is full drops new ones, exactly as a
firewall's DROP does). And nmap's XML as a run really wrote it, cut or bent.

Servers run on 127.0.223.0/24 and are started by the tests.
"""

import http.server
import socket
import ssl
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager, suppress

import pytest

from attt.checks.ports import PortsCheck, _Job, _nmap, connect_scan_data
from attt.checks.ports.controls import ForbiddenParams
from attt.checks.ports.models import OpenPort, PortsData, PortsSettings
from attt.checks.tls.models import TlsSettings
from attt.checks.tls.probe import tls_endpoints
from attt.scanner.models.observation import Observation
from attt.scanner.models.target import Target
from attt.scanner.plugin import NoParams, ProbeContext, Verdict, incomplete_steps
from tests.checks.ports.test_ports import make_rule, make_target
from tests.servers.listeners import tcp_listeners

HOST = "127.0.223.1"
OPEN, CLOSED, SILENT, RESET = 8080, 23, 2323, 8888
"""On HOST: a listener that accepts; nothing (refused); a listener whose queue is full (no
answer); a listener that accepts and resets at once."""
PORTS = (CLOSED, SILENT, OPEN, RESET)
XML_PORTS = tuple(sorted({*PORTS, *range(3001, 3041)}))


@contextmanager
def _full_queue(ip: str, port: int) -> Iterator[None]:
    """A listener that never accepts, its queue already full: new SYNs vanish unanswered."""
    with ExitStack() as stack:
        server = stack.enter_context(socket.socket())
        server.bind((ip, port))
        server.listen(0)
        for _ in range(3):
            client = stack.enter_context(socket.socket())
            client.setblocking(False)
            client.connect_ex((ip, port))
        time.sleep(0.2)  # the handshakes complete and fill the queue
        yield


@contextmanager
def _serving(ip: str, port: int, answer: Callable[[socket.socket], None]) -> Iterator[None]:
    """A listener that hands every connection it accepts to `answer`, then closes it."""
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((ip, port))
    server.listen(16)
    server.settimeout(0.1)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            with suppress(OSError):
                answer(conn)
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(5)
        server.close()


def _reset(conn: socket.socket) -> None:
    """Abort at once: an RST right after the handshake."""
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def _resetting(ip: str, port: int) -> "AbstractContextManager[None]":
    return _serving(ip, port, _reset)


@pytest.fixture(scope="module")
def answering_host() -> Iterator[None]:
    with tcp_listeners([(HOST, OPEN)]), _full_queue(HOST, SILENT), _resetting(HOST, RESET):
        yield


def _scan(
    target: Target, ports: tuple[int, ...] = PORTS, timeout: float = 20, **settings: object
) -> Observation:
    ctx = ProbeContext(timeout=timeout, settings=PortsSettings(ports=ports, **settings))
    (observation,) = PortsCheck().probe(target, ctx)
    return observation


def _judge(control_id: str, observation: Observation, params: object, target: Target) -> Verdict:
    assert observation.status == "ok", observation.error
    control = PortsCheck.controls[control_id]
    return control.judge(observation.data, control.params_model.model_validate(params), target)


def test_the_scan_records_which_ports_gave_no_answer(answering_host: None) -> None:
    data = _scan(make_target(HOST)).data
    assert isinstance(data, PortsData)
    assert data.open_ports() == {OPEN, RESET}  # a reset after the handshake: still open
    assert data.filtered == str(SILENT)
    assert data.unanswered(PORTS) == [SILENT]


def test_a_forbidden_port_that_gave_no_answer_is_not_called_closed(answering_host: None) -> None:
    # A listener is there; the scanner could not connect to it, as behind a firewall's DROP, and
    # nothing nmap sees tells the two apart. The pass rests on "not reachable from the scanner"
    # and names both readings, so that nobody reads a firewall (or a closed port) into it.
    target = make_target(HOST)
    verdict = _judge("ports.forbidden", _scan(target), {"ports": [CLOSED, SILENT]}, target)
    assert verdict.status == "pass"
    assert verdict.message == (
        f"closed: {CLOSED}; no answer, not reachable from the scanner (a firewall dropping it, or a"
        f" listener too busy to accept; not observed closed): {SILENT}"
    )
    assert verdict.vi is not None and verdict.vi.endswith(
        "không phản hồi, không kết nối được từ máy quét (tường lửa chặn, hoặc dịch vụ quá tải không"
        f" nhận kết nối; chưa xác nhận là đóng): {SILENT}"
    )
    assert verdict.observed == {"filtered": [SILENT]}


def test_a_forbidden_port_that_accepts_and_resets_is_open(answering_host: None) -> None:
    target = make_target(HOST)
    verdict = _judge("ports.forbidden", _scan(target), {"ports": [RESET]}, target)
    assert (verdict.status, verdict.message) == ("fail", f"forbidden ports open: {RESET}")


def test_a_declared_port_that_gave_no_answer_is_an_error_not_a_failed_service(answering_host: None) -> None:
    # Nothing shows the service down: only that the scanner got no answer.
    target = make_target(HOST, services=(OPEN, SILENT))
    verdict = _judge("ports.declared_reachable", _scan(target), {}, target)
    assert verdict.status == "error"
    assert verdict.message.startswith(f"declared ports gave no answer (filtered): {SILENT};")
    assert verdict.vi is not None and verdict.vi.startswith(
        f"cổng đã khai báo không phản hồi (bị lọc): {SILENT};"
    )


def test_a_declared_port_that_refused_fails_and_says_which_gave_no_answer(answering_host: None) -> None:
    target = make_target(HOST, services=(OPEN, CLOSED, SILENT))
    verdict = _judge("ports.declared_reachable", _scan(target), NoParams(), target)
    assert verdict.status == "fail"
    assert verdict.message == f"declared ports not reachable: {CLOSED}; no answer (filtered): {SILENT}"
    assert verdict.observed == [CLOSED, SILENT]


def test_only_allowed_counts_the_ports_that_gave_no_answer(answering_host: None) -> None:
    target = make_target(HOST, allowed=(OPEN, RESET))
    verdict = _judge("ports.only_allowed", _scan(target), {"coverage": "scanned"}, target)
    assert verdict.status == "pass"
    assert verdict.message.endswith("TCP ports were not scanned; 1 filtered: no answer)")


def test_a_run_recorded_before_filtered_was_kept_claims_no_refusal() -> None:
    # Old runs' data have no `filtered`: a not-open declared port fails as it did then.
    old = PortsData(scanned=(22, 443), open=(), nmap_version="7.93")
    assert old.filtered is None and old.unanswered([22]) == []
    target = make_target(HOST, services=(22,))
    control = PortsCheck.controls["ports.declared_reachable"]
    verdict = control.judge(old, NoParams(), target)
    assert (verdict.status, verdict.message) == ("fail", "declared ports not reachable: 22")


# --- nmap's XML as a real run wrote it, then cut or bent ----------------------------------------


@pytest.fixture(scope="module")
def real_xml(answering_host: None) -> bytes:
    """One real run over two hosts (the second refuses everything); enough closed ports that nmap
    only counts them (`extraports`)."""
    command = _nmap.build_command([HOST, "127.0.223.2"], XML_PORTS, timeout=20, service_detection=False)
    done = subprocess.run(command.argv(), capture_output=True, timeout=60, check=True)
    assert done.stdout.count(b"</host>") == 2
    return done.stdout


def _parse(xml: bytes) -> dict[str, _nmap.HostResult]:
    return _nmap.parse(xml, [HOST, "127.0.223.2"], XML_PORTS)[1]


def test_a_run_cut_inside_its_second_host_keeps_the_first_and_fails_the_second(real_xml: bytes) -> None:
    cut = real_xml[: real_xml.index(b"</host>") + len(b"</host>") + 40]
    reader = _nmap._Reader([HOST, "127.0.223.2"], XML_PORTS)
    first = reader.feed(cut)
    assert [ip for ip, _ in first] == [HOST]
    with pytest.raises(_nmap.NmapFailedError, match="not readable XML"):
        reader.close()
    assert reader.unseen() == ["127.0.223.2"]


@pytest.mark.parametrize(
    ("old", "new", "why"),
    [
        (b'portid="8080"', b'portid="http"', "nmap's result for 127.0.223.1 is not readable"),
        (b'<extraports state="closed" count="', b'<extraports state="closed" count="x', "not readable"),
        (b'<state state="open" reason="syn-ack"', b'<status reason="syn-ack"', "port 8080 as ''"),
        (
            b'<state state="open" reason="syn-ack"',
            b'<state state="unfiltered" reason="syn-ack"',
            "'unfiltered'",
        ),
    ],
)
def test_a_host_whose_xml_makes_no_sense_is_an_error_never_a_traceback_or_a_pass(
    real_xml: bytes, old: bytes, new: bytes, why: str
) -> None:
    assert old in real_xml
    result = _parse(real_xml.replace(old, new, 1))[HOST]
    with pytest.raises(_nmap.NmapFailedError) as failed:
        connect_scan_data(_Job(make_target(HOST), PortsSettings(), XML_PORTS, HOST).own(result), XML_PORTS)
    assert why in str(failed.value)


def test_an_address_that_is_no_address_is_skipped_not_a_traceback(real_xml: bytes) -> None:
    bent = real_xml.replace(f'addr="{HOST}"'.encode(), b'addr="not-an-ip"', 1)
    results = _parse(bent)
    assert "no result for 127.0.223.1" in str(results[HOST])
    assert isinstance(results["127.0.223.2"], _nmap.ScanResult)


def test_rule_ports_reach_the_scan_of_a_forbidden_rule(answering_host: None) -> None:
    rule = make_rule("PORT-X", "ports.forbidden", ForbiddenParams(ports=(SILENT,)))
    ctx = ProbeContext(timeout=20, settings=PortsSettings(ports=(OPEN,)), rules=(rule,))
    (observation,) = PortsCheck().probe(make_target(HOST), ctx)
    assert isinstance(observation.data, PortsData)
    assert observation.data.filtered == str(SILENT)


# --- one host, registered twice, written two ways ------------------------------------------------


def test_one_ipv6_host_registered_twice_under_two_spellings_keeps_each_its_own_ports() -> None:
    # nmap names the host back as `::1`, whatever spelling it was given.
    first = make_target("::1", services=(OPEN,))
    second = make_target("0:0:0:0:0:0:0:1", services=(RESET,)).model_copy(
        update={"system": first.system.model_copy(update={"id": "other"})}
    )
    jobs = [
        (first, ProbeContext(timeout=20, settings=PortsSettings(ports=(CLOSED,)))),
        (second, ProbeContext(timeout=20, settings=PortsSettings(ports=(SILENT,)))),
    ]
    with tcp_listeners([("::1", OPEN), ("::1", RESET)]):
        observations = {o.system: o for o in PortsCheck().probe_batch(jobs)}
    assert set(observations) == {first.system.id, "other"}
    mine, theirs = observations[first.system.id].data, observations["other"].data
    assert isinstance(mine, PortsData) and isinstance(theirs, PortsData)
    assert mine.scanned == (CLOSED, OPEN) and mine.open_ports() == {OPEN}
    assert theirs.scanned == (SILENT, RESET) and theirs.open_ports() == {RESET}


# --- service detection after the connect scan ----------------------------------------------------


@contextmanager
def _one_shot(ip: str, port: int) -> Iterator[None]:
    """Listens until its first connection, then stops listening (a service that went down between
    the connect scan and service detection)."""
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((ip, port))
    server.listen(1)
    server.settimeout(20)

    def serve() -> None:
        with suppress(OSError):
            server.accept()[0].close()
        server.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.close()
        thread.join(5)


def test_a_port_gone_before_service_detection_names_no_service_as_probed() -> None:
    # Open to the connect scan, refused to -sV: nmap then names it from its port table only, and a
    # rule that forbids a service by name has nothing probed to judge that port by.
    target = make_target("127.0.223.3")
    with (
        tcp_listeners([("127.0.223.3", OPEN)], banner=b"SSH-2.0-OpenSSH_9.2p1\r\n"),
        _one_shot("127.0.223.3", 8023),
    ):
        observation = _scan(target, ports=(OPEN, 8023), service_detection=True)
    data = observation.data
    assert isinstance(data, PortsData)
    assert data.open_ports() == {OPEN, 8023}
    assert data.service_detection_error == "no longer open when service detection probed it: port 8023"
    # So a rule that forbids a service by name is error (the evaluator never judges it).
    control = PortsCheck.controls["ports.forbidden"]
    needed = control.steps_needed(ForbiddenParams(ports=(23,), services=("telnet",)), target)
    assert set(needed) & set(incomplete_steps(data))


def test_a_firewalled_full_scan_keeps_its_silent_ports_as_a_few_runs() -> None:
    # Every port but 443 dropped: the observation stays small, and each rule reads it by runs.
    data = PortsData(scanned=(), full_range=True, open=(), filtered="1-442,444-65535", nmap_version="7.93")
    assert data.unanswered([22, 443, 65535, 444]) == [22, 444, 65535]
    assert data.unanswered_count == 65534


@pytest.mark.slow
def test_a_host_timeout_that_hits_one_host_of_a_group_leaves_the_other_its_names() -> None:
    # Service detection waits on a port that never speaks until nmap's host timeout; the other
    # host of the same host group is named in time and keeps its names.
    silent, speaking = make_target("127.0.223.6"), make_target("127.0.223.7")
    jobs = [
        (
            t,
            ProbeContext(
                timeout=20, concurrency=2, settings=PortsSettings(ports=(OPEN,), service_detection=True)
            ),
        )
        for t in (silent, speaking)
    ]
    with (
        tcp_listeners([("127.0.223.6", OPEN)]),
        tcp_listeners([("127.0.223.7", OPEN)], banner=b"SSH-2.0-OpenSSH_9.2p1\r\n"),
    ):
        started = time.monotonic()
        observations = {o.host: o for o in PortsCheck().probe_batch(jobs)}
    assert time.monotonic() - started < 40
    waited, named = observations["127.0.223.6"].data, observations["127.0.223.7"].data
    assert isinstance(waited, PortsData) and isinstance(named, PortsData)
    assert waited.open_ports() == {OPEN} and not waited.service_detection
    assert waited.service_detection_error is not None and "host timeout" in waited.service_detection_error
    assert named.service_detection and [p.service for p in named.open] == ["ssh"]


# --- very long port lists ------------------------------------------------------------------------


@pytest.mark.slow
def test_thousands_of_scattered_ports_are_scanned_not_refused_by_the_kernel(answering_host: None) -> None:
    # Every other port spelled out is 180 KB: more than one argument may hold (128 KiB).
    scattered = tuple(range(2, 65536, 2))
    observation = _scan(make_target(HOST), ports=scattered, timeout=60)
    assert observation.status == "ok", observation.error
    data = observation.data
    assert isinstance(data, PortsData)
    assert data.scanned == scattered  # only the ports asked, though nmap covered the range
    assert data.open_ports() == {OPEN, RESET}
    assert data.filtered == ""  # 2323 gave no answer, but it was not asked for


# --- what service detection names ----------------------------------------------------------------


class _Page(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(b"<html>attt</html>")

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def tls_on_an_odd_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """HTTP inside TLS on a port no list knows as TLS (a thread per connection, so that nmap's
    parallel probes do not queue)."""
    workdir = tmp_path_factory.mktemp("tls-odd")
    cert, key = workdir / "c.pem", workdir / "k.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "3", "-subj", "/CN=odd.attt.test"],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = http.server.ThreadingHTTPServer(("127.0.223.8", 10443), _Page)
    server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    server.handle_error = lambda *_: None  # type: ignore[method-assign]  # probes that are not TLS
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield "127.0.223.8", 10443
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.mark.slow
def test_a_service_inside_tls_is_named_as_nmap_says_it_ssl_slash_name(
    tls_on_an_odd_port: tuple[str, int],
) -> None:
    # nmap's XML says name="http" tunnel="ssl"; read as plain "http", the port was never probed
    # for TLS and the web check would speak cleartext HTTP to it.
    ip, port = tls_on_an_odd_port
    target = make_target(ip)
    observation = _scan(target, ports=(port,), timeout=40, service_detection=True)
    data = observation.data
    assert isinstance(data, PortsData) and data.service_detection, observation.error
    assert [(p.port, p.service) for p in data.open] == [(port, "ssl/http")]
    assert tls_endpoints(target, TlsSettings(), [observation]) == {port: None}


def test_a_service_forbidden_by_name_is_forbidden_inside_tls_too() -> None:
    data = PortsData(
        scanned=(5900,), open=(OpenPort(port=15900, service="ssl/vnc"),), filtered="", nmap_version="7.93"
    )
    control = PortsCheck.controls["ports.forbidden"]
    verdict = control.judge(data, ForbiddenParams(ports=(5900,), services=("vnc",)), make_target(HOST))
    assert (verdict.status, verdict.observed) == ("fail", [{"port": 15900, "service": "ssl/vnc"}])


def _speak_nonsense(conn: socket.socket) -> None:
    conn.send(b"\x00\x01zz\xff\r\n")


def _unidentifiable(ip: str, port: int) -> "AbstractContextManager[None]":
    """Sends bytes no service speaks, then hangs up: nmap's probes match nothing."""
    return _serving(ip, port, _speak_nonsense)


@pytest.mark.slow
def test_a_port_service_detection_could_not_identify_is_no_name_for_a_rule_to_judge() -> None:
    # nmap then names it from its port table (method="table"): a guess from the number, which
    # could be a Telnet server on a port of its own. A rule forbidding telnet by name cannot pass.
    target = make_target("127.0.223.10")
    with _unidentifiable("127.0.223.10", 8023):
        observation = _scan(target, ports=(8023,), timeout=40, service_detection=True)
    data = observation.data
    assert isinstance(data, PortsData), observation.error
    assert data.open_ports() == {8023}
    assert data.service_detection_error == "no service identified on port 8023 (nmap guessed from the number)"
    control = PortsCheck.controls["ports.forbidden"]
    needed = control.steps_needed(ForbiddenParams(ports=(23,), services=("telnet",)), target)
    assert set(needed) & set(incomplete_steps(data))
