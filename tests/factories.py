"""Builders of model values for pure tests: observations, findings, reports, without a scan.

Every builder takes keyword overrides, so a test states only what it is about.
"""

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from attt.scanner.models.base import Severity, Text
from attt.scanner.models.finding import Finding, FindingStatus, WaiverNote
from attt.scanner.models.observation import Observation
from attt.scanner.models.policy import PolicySource, Reference
from attt.scanner.models.report import PolicyRef, Report, RunInfo, Summary
from attt.scanner.models.target import Host, Service, SystemInfo, Target

STARTED = datetime(2026, 11, 20, 1, 0, 0, tzinfo=UTC)
FINISHED = STARTED + timedelta(minutes=7, seconds=12)

HOSTILE = {
    "script": "<script>alert('x')</script>",
    "attribute": '"><img src=x onerror=alert(1)>',
    "ansi": "\x1b[31mRED\x1b[0m \x07bell",
    "bidi": "abc\u202egnp.exe",
    "formula": '=HYPERLINK("http://example.invalid","x")',
    "nul": "a\x00b",
}
"""Text a hostile target might send; every renderer must show it as inert text."""


RULE_TEXTS = {
    "TLS-PROTO-LEGACY": ("Tắt các phiên bản TLS cũ", "Legacy TLS protocol versions are disabled"),
    "TLS-CERT-EXPIRY": ("Chứng thư số còn hạn", "The certificate has not expired"),
    "TLS-CERT-SUBJECT": ("Chứng thư số khớp tên miền", "The certificate matches the host name"),
    "SSH-PASSWORD-AUTH": ("Tắt xác thực SSH bằng mật khẩu", "SSH password authentication is disabled"),
    "SSH-BANNER": ("Banner SSH không lộ phiên bản", "The SSH banner does not reveal the version"),
    "SSH-CBC": ("Không dùng mã hoá CBC cho SSH", "SSH does not offer CBC ciphers"),
    "SSH-WEAK-KEX": ("Không dùng trao đổi khoá SSH yếu", "SSH offers no weak key exchange"),
    "PORT-FORBIDDEN": ("Không mở cổng bị cấm", "No forbidden port is open"),
    "PORT-TELNET": ("Không mở dịch vụ Telnet", "Telnet is not offered"),
}
"""Titles (vi, en) of the rules the tests name; other rule ids get a generic title."""


def system(id: str = "dichvucong", **overrides: Any) -> SystemInfo:
    values: dict[str, Any] = {
        "id": id,
        "name": "Cổng dịch vụ công trực tuyến",
        "owner": "Sở Khoa học và Công nghệ",
        "level": 3,
        "tags": ("internet-facing",),
    }
    return SystemInfo.model_validate(values | overrides)


def target(sys: SystemInfo | None = None, address: str = "127.0.0.1", **overrides: Any) -> Target:
    host = Host(
        address=address,
        hostname=overrides.pop("hostname", None),
        services=tuple(Service(port=p, kind=k) for p, k in overrides.pop("services", ((443, "tls"),))),
    )
    return Target(system=sys or system(), host=host, ip=overrides.pop("ip", address), **overrides)


def observation(
    check: str = "tls",
    sys: str = "dichvucong",
    host: str = "127.0.0.1",
    port: int | None = 443,
    data: dict[str, Any] | None = None,
    error: str | None = None,
) -> Observation:
    """An `ok` observation with `data`, or an `error` one when `error` is given."""
    if error is not None:
        return Observation(
            check=check, system=sys, host=host, ip=host, port=port, status="error", error=error
        )
    return Observation(
        check=check,
        system=sys,
        host=host,
        ip=host,
        port=port,
        status="ok",
        data=data if data is not None else {"protocols": ["TLSv1.2", "TLSv1.3"]},
        started=STARTED,
        finished=STARTED + timedelta(seconds=3),
    )


def reference(
    standard: str = "TCVN 11930:2017", clause: str | None = "7.2.3.4", **overrides: Any
) -> Reference:
    return Reference.model_validate({"standard": standard, "clause": clause} | overrides)


def waiver(expired: bool = False, **overrides: Any) -> WaiverNote:
    values: dict[str, Any] = {
        "reason": "Hệ thống cũ, đang thay thế",
        "approved_by": "Giám đốc Trung tâm CNTT tỉnh",
        "decision": "QĐ 12/QĐ-TTCNTT",
        "expires": date(2025, 1, 31) if expired else date(2027, 3, 31),
        "expired": expired,
    }
    return WaiverNote.model_validate(values | overrides)


def finding(
    rule_id: str = "TLS-PROTO-LEGACY",
    status: FindingStatus = "fail",
    sys: str = "dichvucong",
    host: str = "127.0.0.1",
    port: int | None = 443,
    severity: Severity = Severity.HIGH,
    **overrides: Any,
) -> Finding:
    vi_title, en_title = RULE_TEXTS.get(rule_id, (f"Quy tắc {rule_id}", f"Rule {rule_id}"))
    values: dict[str, Any] = {
        "rule_id": rule_id,
        "control": "tls.protocols_disabled",
        "check": "tls",
        "policy": "vn-level-3",
        "system": sys,
        "host": host,
        "port": port,
        "status": status,
        "severity": severity,
        "title": Text(vi=vi_title, en=en_title),
        "message": Text(vi="Chấp nhận TLSv1.0", en="TLSv1.0 accepted") if status == "fail" else "",
        "evidence": {"observed": ["TLSv1.0", "TLSv1.2"], "expected": {"absent": ["TLSv1.0", "TLSv1.1"]}}
        if status in ("fail", "waived")
        else {},
        "references": (reference(), reference("TT 39/2017/TT-BTTTT", "4.2", confidence="verified")),
        "remediation": Text(vi="Chỉ bật TLS 1.2 và TLS 1.3.", en="Enable only TLS 1.2 and TLS 1.3."),
        "waiver": waiver() if status == "waived" else None,
    }
    merged = values | overrides
    if isinstance(merged["message"], str):  # one text for both languages, as a third-party check may give
        merged["message"] = Text(vi=merged["message"], en=merged["message"])
    return Finding.model_validate(merged)


def report(
    findings: Sequence[Finding] = (),
    systems: Sequence[SystemInfo] | None = None,
    observations: Sequence[Observation] | None = None,
    targets: Sequence[Target] | None = None,
    **run: Any,
) -> Report:
    """A report whose summary is computed from `findings`; systems default to those named by them."""
    found = {f.system for f in findings} | {o.system for o in observations or ()}
    systems = systems if systems is not None else [system(s) for s in sorted(found or {"dichvucong"})]
    run_values: dict[str, Any] = {
        "id": "20261120T010000Z-ab12",
        "started": STARTED,
        "finished": FINISHED,
        "status": "complete",
        "province": "Hà Tĩnh",
        "scope": ("127.0.0.0/8",),
        "inventory_sha256": "a" * 64,
        "policies": (
            PolicyRef(
                id="vn-level-3",
                version="2026.1",
                sha256="b" * 64,
                sources=(
                    PolicySource(
                        id="vn-level-3", version="2026.1", sha256="c" * 64, path="policies/vn-level-3.yaml"
                    ),
                ),
            ),
        ),
        "checks": ("ports", "tls", "ssh"),
    }
    return Report(
        tool_version="0.1.0",
        run=RunInfo.model_validate(run_values | run),
        systems=tuple(systems),
        targets=tuple(targets or ()),
        observations=tuple(observations if observations is not None else ()),
        findings=tuple(findings),
        summary=Summary.of(list(findings), systems),
    )


def owners(n: int) -> list[str]:
    kinds = ("Sở", "UBND phường", "UBND xã", "Ban")
    return [f"{kinds[i % len(kinds)]} số {i + 1}" for i in range(n)]


def large_report(n_systems: int = 500, n_findings: int = 20_000, n_owners: int = 60) -> Report:
    """A province-sized report for benchmarks: statuses and severities mixed in fixed proportions."""
    names = owners(n_owners)
    systems = [
        system(f"sys-{i:04d}", name=f"Hệ thống thông tin số {i}", owner=names[i % n_owners], level=1 + i % 5)
        for i in range(n_systems)
    ]
    per_system = n_findings // n_systems
    statuses: tuple[FindingStatus, ...] = ("pass", "pass", "pass", "fail", "pass", "error", "waived", "pass")
    severities = list(Severity)
    findings: list[Finding] = []
    observations: list[Observation] = []
    targets: list[Target] = []
    for i, sys in enumerate(systems):
        hosts = [f"127.{i // 250}.{i % 250}.{h + 1}" for h in range(2)]
        targets.extend(target(sys, h) for h in hosts)
        observations.extend(observation("tls", sys.id, h, 443) for h in hosts)
        observations.extend(
            observation("ssh", sys.id, h, 22, error="timed out") for h in hosts[:1] if i % 50 == 0
        )
        for j in range(per_system):
            status = statuses[(i + j) % len(statuses)]
            findings.append(
                finding(
                    f"RULE-{j:03d}",
                    status,
                    sys.id,
                    hosts[j % 2],
                    443,
                    severities[j % len(severities)],
                    message={"fail": "TLSv1.0 accepted", "error": "probe timed out"}.get(status, ""),
                )
            )
    return report(findings, systems, observations, targets)


def all_statuses(sys: str = "dichvucong", host: str = "127.0.0.1") -> list[Finding]:
    """One finding of every status on one host, each with a distinct rule id."""
    return [
        finding("TLS-PROTO-LEGACY", "fail", sys, host),
        finding(
            "SSH-PASSWORD-AUTH", "error", sys, host, 22, Severity.CRITICAL, check="ssh", message="timed out"
        ),
        finding("PORT-FORBIDDEN", "waived", sys, host, 21, Severity.MEDIUM, check="ports"),
        finding("TLS-CERT-EXPIRY", "pass", sys, host),
        finding("SSH-CBC", "not_applicable", sys, host, 22, Severity.LOW, check="ssh"),
    ]


def hostile_report(texts: Iterable[str] = HOSTILE.values()) -> Report:
    """A report where every field a target can influence carries hostile text."""
    payload = " ".join(texts)
    findings = [
        finding(
            "TLS-CERT-SUBJECT",
            "fail",
            message=payload,
            evidence={"observed": payload, "expected": "CN=dichvucong.hatinh.gov.vn", payload: payload},
        ),
        finding("SSH-BANNER", "error", port=22, check="ssh", message=payload),
        finding("PORT-TELNET", "waived", port=23, waiver=waiver(reason=payload, approved_by=payload)),
    ]
    observations = [
        observation("tls", data={"certificate": {"subject": payload}}),
        observation("ssh", port=22, error=payload),
    ]
    return report(findings, observations=observations, province="Hà Tĩnh")
