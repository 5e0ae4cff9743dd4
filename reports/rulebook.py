"""Rule books: a resolved policy as Markdown for people (`attt policy show`, docs/policies/) or as
one self-contained YAML file."""

import json
from collections.abc import Mapping
from typing import Any, cast

import yaml

from attt.reports._reference import reference_text
from attt.reports.base import Lang
from attt.scanner.models.policy import ResolvedPolicy, ResolvedRule

_LABELS: dict[str, dict[str, str]] = {
    "vi": {
        "version": "Phiên bản",
        "sources": "Nguồn",
        "rules": "Quy tắc",
        "severity": "Mức độ",
        "control": "Kiểm soát",
        "params": "Tham số",
        "applies": "Áp dụng cho",
        "any": "mọi hệ thống",
        "levels": "cấp độ",
        "tags": "nhãn",
        "except_roles": "trừ hệ thống có vai trò",
        "systems": "hệ thống",
        "defined_in": "Định nghĩa tại chính sách",
        "vantage": (
            "Đánh giá từ: Internet (điểm quan sát bên ngoài) khi lượt quét có quan sát từ đó;"
            " nếu không, đánh giá từ bên trong và kết quả ghi rõ điều đó"
        ),
        "remediation": "Khắc phục",
        "references": "Tham chiếu",
        "waivers": "Miễn trừ",
        "approved_by": "phê duyệt bởi",
        "expires": "hết hạn",
        "settings": "Thiết lập kiểm tra",
        "none": "không có",
        "udp": (
            "Phạm vi quét cổng: quét TCP (connect scan). Các dịch vụ UDP như SNMP (161), TFTP (69),"
            " IPMI (623), NetBIOS (137–138) không được nhìn thấy và cần công cụ khác để kiểm tra."
        ),
    },
    "en": {
        "version": "Version",
        "sources": "Sources",
        "rules": "Rules",
        "severity": "Severity",
        "control": "Control",
        "params": "Parameters",
        "applies": "Applies to",
        "any": "every system",
        "levels": "levels",
        "tags": "tags",
        "except_roles": "except systems with the role",
        "systems": "systems",
        "defined_in": "Defined in policy",
        "vantage": (
            "Judged from: the Internet (an outside vantage) when the run saw the host from there;"
            " else from inside, and the finding says so"
        ),
        "remediation": "Remediation",
        "references": "References",
        "waivers": "Waivers",
        "approved_by": "approved by",
        "expires": "expires",
        "settings": "Check settings",
        "none": "none",
        "udp": (
            "Port scan scope: a TCP connect scan. UDP services such as SNMP (161), TFTP (69),"
            " IPMI (623) and NetBIOS (137-138) are not seen and need another tool."
        ),
    },
}

_SEVERITY_NAMES = {
    "vi": {
        "info": "thông tin",
        "low": "thấp",
        "medium": "trung bình",
        "high": "cao",
        "critical": "nghiêm trọng",
    },
    "en": {},
}


def _severity_name(rule: ResolvedRule, lang: str) -> str:
    return _SEVERITY_NAMES[lang].get(rule.severity.value, rule.severity.value)


def policy_markdown(policy: ResolvedPolicy, lang: str = "vi") -> str:
    """A readable rule book of the resolved policy, in Vietnamese (`vi`) or English (`en`)."""
    lang = "vi" if lang == "vi" else "en"
    book_lang = cast(Lang, lang)  # what the line above just made sure of
    label = _LABELS[lang]
    out = [
        f"# {policy.title}",
        "",
        f"- ID: `{policy.id}`",
        f"- {label['version']}: {policy.version}",
        f"- SHA-256: `{policy.sha256}`",
        f"- {label['sources']}: " + ", ".join(f"`{s.path}` ({s.id} {s.version})" for s in policy.sources),
        "",
        *([policy.description.get(lang), ""] if policy.description else []),
        # Every rule book with port rules says what a TCP scan cannot see.
        *([f"> {label['udp']}", ""] if any(rule.check == "ports" for rule in policy.rules) else []),
        f"## {label['rules']} ({len(policy.rules)})",
    ]
    for rule in policy.rules:
        out += [
            "",
            f"### {rule.id} — {rule.title.get(lang)}",
            "",
            f"- {label['severity']}: **{_severity_name(rule, lang)}**",
            f"- {label['control']}: `{rule.control}` (check `{rule.check}`)",
            f"- {label['params']}: `{_compact_json(rule.params.model_dump(mode='json'))}`",
            f"- {label['applies']}: {_applies_text(rule, label)}",
            *([f"- {label['vantage']}"] if rule.vantage == "internet" else []),
            f"- {label['defined_in']}: `{rule.policy}`",
            f"- {label['remediation']}: {rule.remediation.get(lang)}",
            f"- {label['references']}:" + ("" if rule.references else f" {label['none']}"),
        ]
        out += [f"  - {reference_text(r, book_lang, url=True)}" for r in rule.references]
    out += ["", f"## {label['waivers']} ({len(policy.waivers)})", ""]
    for waiver in policy.waivers:
        where = " ".join(str(x) for x in (waiver.system, waiver.host, waiver.port) if x is not None)
        decision = f" ({waiver.decision})" if waiver.decision else ""
        out.append(
            f"- {waiver.rule} @ {where}: {waiver.reason}; {label['approved_by']} {waiver.approved_by}"
            f"{decision}; {label['expires']} {waiver.expires.isoformat()}"
        )
    out += ["", f"## {label['settings']}", ""]
    out += [
        f"- `{check}`: `{_compact_json(s.model_dump(mode='json'))}`" for check, s in policy.settings.items()
    ]
    if not policy.settings:
        out.append(f"- {label['none']}")
    return "\n".join(out) + "\n"


def policy_yaml(policy: ResolvedPolicy) -> str:
    """The resolved policy as a self-contained policy file (no `extends`), headed by its sources."""
    header = [f"# resolved policy {policy.id} {policy.version}, sha256 {policy.sha256}"]
    header += [f"# source: {s.path} ({s.id} {s.version}, sha256 {s.sha256})" for s in policy.sources]
    body = {
        "id": policy.id,
        "title": policy.title,
        "version": policy.version,
        "settings": {check: s.model_dump(mode="json") for check, s in policy.settings.items()},
        "rules": [
            {
                **rule.model_dump(
                    mode="json", include={"id", "control", "severity", "title", "remediation", "references"}
                ),
                "params": rule.params.model_dump(mode="json"),
                "applies_to": rule.applies_to.model_dump(mode="json", exclude_none=True),
                **({"vantage": rule.vantage} if rule.vantage else {}),
            }
            for rule in policy.rules
        ],
        "waivers": [w.model_dump(mode="json", exclude_none=True) for w in policy.waivers],
    }
    dumped = yaml.safe_dump(body, allow_unicode=True, sort_keys=False, width=100)
    return "\n".join(header) + "\n" + dumped


def _applies_text(rule: ResolvedRule, label: Mapping[str, str]) -> str:
    where = rule.applies_to
    parts = []
    if where.levels is not None:
        parts.append(f"{label['levels']} " + ", ".join(str(x) for x in where.levels))
    if where.tags is not None:
        parts.append(f"{label['tags']} " + ", ".join(where.tags))
    if where.systems is not None:
        parts.append(f"{label['systems']} " + ", ".join(where.systems))
    if where.except_roles is not None:
        parts.append(f"{label['except_roles']} " + ", ".join(where.except_roles))
    return "; ".join(parts) or label["any"]


def _compact_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
