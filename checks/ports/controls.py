"""The ports controls: pure judgements over `PortsData`, a rule's params and the target."""

import functools
from collections.abc import Collection, Iterable, Iterator
from typing import Literal

from pydantic import Field

from attt.checks.ports.models import ALL_TCP_PORTS, SERVICE_DETECTION_STEP, PortsData, PortsSettings
from attt.scanner.models.policy import ResolvedRule
from attt.scanner.models.target import Port, Target
from attt.scanner.plugin import Controls, NoParams, Params, Verdict

CONTROLS = Controls("ports")


class ForbiddenParams(Params):
    ports: tuple[Port, ...] = Field(min_length=1)
    """Ports that must not be open; each is scanned even when the settings leave it out."""
    services: tuple[str, ...] = ()
    """nmap service names forbidden on any port (e.g. `telnet` on 2323); reliable only with
    service detection, since without it the name comes from the port number."""


class OnlyAllowedParams(Params):
    ports: tuple[Port, ...] | None = None
    """Allowed ports; when absent, the system's registered `allowed_ports`."""
    coverage: Literal["all", "scanned"] = "all"
    """What the rule claims. `all`: no TCP port outside the allowed list is open, which only a
    full scan (settings `ports: {full_range: true}`) can show, so after a partial scan it is
    `error` unless a disallowed port was seen open. `scanned`: no port outside the list is open
    among those scanned, and the verdict says how many that was (give the rule a title that
    says so)."""


def ports_named(target: Target, settings: PortsSettings, rules: Iterable[ResolvedRule]) -> int:
    """How many ports the settings, the inventory and the rules name, counted with repeats: at
    least as many as `ports_to_scan` gives (every TCP port with `full_range`)."""
    return ALL_TCP_PORTS if settings.full_range else sum(map(len, _port_lists(target, settings, rules)))


def ports_to_scan(target: Target, settings: PortsSettings, rules: Iterable[ResolvedRule]) -> tuple[int, ...]:
    """Settings, the inventory's declared and allowed ports, and every port a rule names; with
    `full_range`, every TCP port."""
    if settings.full_range:
        return tuple(range(1, ALL_TCP_PORTS + 1))
    return tuple(sorted(set().union(*_port_lists(target, settings, rules))))


def _port_lists(
    target: Target, settings: PortsSettings, rules: Iterable[ResolvedRule]
) -> Iterator[Collection[int]]:
    # What this reads of the target is what `PortsCheck.probe_batch` tells hosts' lists apart by.
    yield from (settings.ports, settings.extra_ports, target.declared_ports())
    yield target.system.allowed_ports or ()
    for rule in rules:
        params = rule.params
        if isinstance(params, ForbiddenParams | OnlyAllowedParams) and params.ports:
            yield params.ports


def _unscanned(wanted: Iterable[int], data: PortsData, what: str, what_vi: str) -> Verdict | None:
    """A rule about ports nobody scanned cannot be judged: never a pass."""
    missing = data.unscanned(wanted)
    if not missing:
        return None
    listed = _list(missing)
    return Verdict.cannot_judge(
        f"{what} not scanned: {listed}",
        observed=missing,
        expected="scanned",
        vi=f"{what_vi} chưa được quét: {listed}",
    )


@CONTROLS.control(
    "ports.forbidden",
    ForbiddenParams,
    # Service names come from -sV when it was asked for: if it failed, they are guesses. A port
    # the rule lists is forbidden whatever runs there, so it fails on what was seen (partial).
    needs=lambda params, _target: (SERVICE_DETECTION_STEP,) if params.services else (),
    partial=True,
)
def _judge_forbidden(data: PortsData, params: ForbiddenParams, target: Target) -> Verdict:
    """None of the listed ports (or services) is open.

    Cleartext remote access (Telnet, FTP, r-services, VNC), file sharing, RPC, remote desktop and
    databases exposed to the network are the most common way in; each open one is attack surface
    the system does not need there. A listed port that was not scanned is an error, never a pass.
    """
    if (unscanned := _unscanned(params.ports, data, "ports", "cổng")) is not None:
        return unscanned
    services = set(params.services)
    # Only a name a probe gave counts; a listed port is forbidden whatever runs on it.
    unnamed = data.unnamed() if services else []
    found = [
        p
        for p in data.open
        # A forbidden service is forbidden inside TLS too (nmap's `ssl/vnc`).
        if p.port in params.ports or (p.port not in unnamed and p.service.removeprefix("ssl/") in services)
    ]
    if found:
        observed = [{"port": p.port, "service": p.service} for p in found]
        listed = _list(p.port for p in found)
        return Verdict.failed(
            f"forbidden ports open: {listed}",
            observed=observed,
            expected="closed",
            vi=f"cổng bị cấm đang mở: {listed}",
        )
    if unnamed:
        return _unnamed(unnamed, data.service_detection_error)
    silent = data.unanswered(params.ports)
    if not silent:
        listed = _rule_list(params.ports)
        return Verdict.passed(
            f"closed: {listed}", observed=[], expected="closed", vi=f"cổng đang đóng: {listed}"
        )
    # No answer at all: a firewall's DROP, or a listener whose accept queue is full (Linux drops
    # the SYN then, with SYN cookies on or off, and nmap says filtered/no-response for both; waits
    # of seconds and more retries change nothing while the queue stays full). Nothing the scanner
    # sees tells them apart. What was observed in full, retries included, is that no client could
    # connect from here, which is what "not exposed" asks; the host as a whole answered (a host
    # where nothing answers is an error). An `error` here would make every host behind a DROP
    # firewall, the usual remediation, unjudged on every forbidden port. So the rule passes on
    # "not reachable from the scanner", and says it is not "closed" and which two things it can be.
    refused = sorted(set(params.ports).difference(silent))
    closed, closed_vi = (
        (f"closed: {_list(refused)}; ", f"cổng đang đóng: {_list(refused)}; ") if refused else ("", "")
    )
    return Verdict.passed(
        f"{closed}no answer, not reachable from the scanner (a firewall dropping it, or a listener too"
        f" busy to accept; not observed closed): {_list(silent)}",
        observed={"filtered": silent},
        expected="closed",
        vi=f"{closed_vi}không phản hồi, không kết nối được từ máy quét (tường lửa chặn, hoặc dịch vụ quá"
        f" tải không nhận kết nối; chưa xác nhận là đóng): {_list(silent)}",
    )


def _unnamed(ports: list[int], why: str | None) -> Verdict:
    """Open ports no probe named, under a rule on service names with nothing forbidden seen:
    any of them may run a forbidden service under a port number of its own."""
    listed = _list(ports)
    step = f"{SERVICE_DETECTION_STEP} incomplete: {why}"
    step_vi = f"bước {SERVICE_DETECTION_STEP} chưa hoàn tất: {why}"
    en = f"no service identified on open port {listed}, which may be a forbidden one ({step})"
    vi = f"chưa xác định được dịch vụ trên cổng đang mở {listed}, có thể là dịch vụ bị cấm ({step_vi})"
    return Verdict.cannot_judge(en, {"unidentified": ports}, "closed", vi=vi)


@CONTROLS.control("ports.only_allowed", OnlyAllowedParams)
def _judge_only_allowed(data: PortsData, params: OnlyAllowedParams, target: Target) -> Verdict:
    """Every open port is in the allowed list (or the system's allowed_ports).

    An open port nobody registered is an unmanaged service (a forgotten admin console, a test
    instance) that no other rule looks at. Not applicable when neither the rule nor the inventory
    gives a list.
    """
    allowed = params.ports if params.ports is not None else target.system.allowed_ports
    if allowed is None:
        return Verdict.not_applicable(
            "no allowed_ports registered for the system",
            vi="hệ thống chưa đăng ký danh sách cổng được phép (allowed_ports)",
        )
    extra = sorted(data.open_ports() - set(allowed))
    expected = sorted(set(allowed))
    if extra:
        listed = _list(extra)
        return Verdict.failed(
            f"open ports not allowed: {listed}",
            observed=extra,
            expected=expected,
            vi=f"cổng đang mở nhưng không được phép: {listed}",
        )
    scanned = data.scanned_count
    # Ports that gave no answer count as not open (not reachable from the scanner), and the
    # verdict says how many they were.
    silent = data.unanswered_count
    silent_en = f"; {silent} filtered: no answer" if silent else ""
    silent_vi = f"; {silent} cổng bị lọc: không phản hồi" if silent else ""
    if data.full_range:
        return Verdict.passed(
            f"no TCP port outside the allowed list is open (all {scanned} ports scanned{silent_en})",
            observed=sorted(data.open_ports()),
            expected=expected,
            vi=f"không cổng TCP nào ngoài danh sách được phép đang mở (đã quét đủ {scanned} cổng{silent_vi})",
        )
    if params.coverage == "all":
        return Verdict.cannot_judge(
            f"only {scanned} of {ALL_TCP_PORTS} TCP ports were scanned, so other ports may be open;"
            " this rule needs a full scan (policy settings ports: {full_range: true})",
            observed=sorted(data.open_ports()),
            expected=expected,
            vi=f"mới quét {scanned}/{ALL_TCP_PORTS} cổng TCP nên có thể còn cổng khác đang mở; quy tắc"
            " này cần quét đủ mọi cổng (thiết lập ports: {full_range: true} trong chính sách)",
        )
    return Verdict.passed(
        f"every open port among the {scanned} scanned is allowed (the other"
        f" {ALL_TCP_PORTS - scanned} TCP ports were not scanned{silent_en})",
        observed=sorted(data.open_ports()),
        expected=expected,
        vi=f"mọi cổng đang mở trong số {scanned} cổng đã quét đều được phép ({ALL_TCP_PORTS - scanned}"
        f" cổng TCP còn lại chưa được quét{silent_vi})",
    )


@CONTROLS.control("ports.declared_reachable")
def _judge_declared_reachable(data: PortsData, params: NoParams, target: Target) -> Verdict:
    """Every port the inventory declares for the host is open.

    The inventory is what every other rule is checked against: a declared service that does not
    answer means the register is wrong or the service is down, and the checks of it judged nothing.
    A declared port that was not scanned is an error.
    """
    declared = sorted(set(target.declared_ports()))
    if not declared:
        # Nothing to hold reachable is a fact of the inventory; what the scan found open is said
        # too, so that the verdict is not read as a host with nothing on it.
        found = sorted(data.open_ports())
        scanned = data.scanned_count
        return Verdict.not_applicable(
            f"no service is declared for the host; open among the {scanned} ports scanned:"
            f" {_list(found) or 'none'}",
            vi=f"máy chủ chưa được khai báo dịch vụ nào; cổng đang mở trong {scanned} cổng đã quét:"
            f" {_list(found) or 'không có'}",
        )
    if (unscanned := _unscanned(declared, data, "declared ports", "cổng đã khai báo")) is not None:
        return unscanned
    unreachable = sorted(set(declared) - data.open_ports())
    silent = data.unanswered(unreachable)
    refused = [p for p in unreachable if p not in silent]
    if refused:
        # Refused (or, in runs recorded before "filtered" was kept, not open): the host said
        # nothing listens there, so the service is down or the register wrong.
        listed = _list(refused)
        also, also_vi = (
            (f"; no answer (filtered): {_list(silent)}", f"; không phản hồi (bị lọc): {_list(silent)}")
            if silent
            else ("", "")
        )
        return Verdict.failed(
            f"declared ports not reachable: {listed}{also}",
            observed=unreachable,
            expected="open",
            vi=f"cổng đã khai báo không kết nối được: {listed}{also_vi}",
        )
    if silent:
        # No answer at all: a firewall between the scanner and the host, a service too busy to
        # accept, or a host that stopped answering. None of these shows the service down or the
        # register wrong, which is what a failure would say.
        listed = _list(silent)
        return Verdict.cannot_judge(
            f"declared ports gave no answer (filtered): {listed}; whether the service is up was not"
            " observed (a firewall between the scanner and the host, or the host stopped answering)",
            observed={"filtered": silent},
            expected="open",
            vi=f"cổng đã khai báo không phản hồi (bị lọc): {listed}; chưa quan sát được dịch vụ có"
            " đang chạy hay không (tường lửa giữa máy quét và máy chủ, hoặc máy chủ ngừng phản hồi)",
        )
    listed = _list(declared)
    return Verdict.passed(
        f"declared ports open: {listed}",
        observed=declared,
        expected="open",
        vi=f"cổng đã khai báo đang mở: {listed}",
    )


def _list(ports: Iterable[int]) -> str:
    return ", ".join(str(p) for p in ports)


@functools.lru_cache(maxsize=256)
def _rule_list(ports: tuple[int, ...]) -> str:
    """A rule's own list of ports, written once, not once for each host of a province that
    passes the rule."""
    return _list(ports)
