"""What changed between two runs, and which earlier run a run is compared with. Pure.

This is the one definition of "the same finding in another run" (`finding_key`): `attt diff`,
the HTML report's change section and the notifications all use `compare_runs`. A rule is
*fixed* only when it failed before and passes now; when it cannot be judged now (the host is
down, the probe failed or never ran, the endpoint is gone) it is *not re-checked*, never fixed.
A failure is *new* only when the baseline judged the rule and it did not fail (or its check saw
the host without that endpoint); one the baseline could not judge is *first judged*. Runs are compared only
when they are alike: the baseline of a run is the latest earlier complete run that scanned the
same hosts of the same systems with the same checks (`choose_baseline`).

A verdict that changed while what judged it changed too (another policy, or the same policy id
with other content: a rule loosened, tightened, added or dropped; the system or host registered
otherwise; another machine answering at the address; another vantage) is not earned as new or
fixed: the server may not have changed at all. Such a change is *judged otherwise*, listed apart
with both verdicts, and the outputs name what changed (`compare_runs`).
"""

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from attt.scanner.models.base import Text
from attt.scanner.models.finding import Finding, FindingStatus
from attt.scanner.models.report import Report, RunInfo
from attt.scanner.models.target import Target

FindingKey = tuple[str, str, str, str, int | None]
"""(policy, rule id, system, host, port): one rule on one endpoint, run after run."""

_FAILING = ("fail", "waived")
"""A waived rule still fails; the waiver only accepts it for a while."""


def finding_key(finding: Finding) -> FindingKey:
    return (finding.policy, finding.rule_id, finding.system, finding.host, finding.port)


_WORST: dict[FindingStatus, int] = {"pass": 0, "not_applicable": 1, "error": 2, "waived": 3, "fail": 4}
"""When several findings share a key (one rule judged from several vantages), the worst stands:
failing when any fails, passing only when all pass."""


@dataclass(frozen=True)
class Rejudged:
    """A verdict that changed while what judged it changed too: the policy, the system's or the
    host's registration, or the vantage it was seen from."""

    finding: Finding
    """The current finding; the baseline's when the policy no longer judges the rule."""
    was: FindingStatus | None
    """The baseline's verdict; None: the baseline did not judge the rule."""
    now: FindingStatus | None
    """The current verdict; None: the current policy no longer judges the rule."""


@dataclass(frozen=True)
class Rejudging:
    """How the judging differs between two runs."""

    systems: frozenset[str]
    """Systems judged by another policy, by a policy whose content changed, or registered
    otherwise (level, tags, role, allowed ports: what the rules read)."""
    notes: tuple[Text, ...]
    """What changed, for the reader: each policy changed, each system judged by another one."""
    everywhere: bool = False
    """Every system: the runs do not say which policy judged which system, and theirs differ;
    or the runs probed from other vantages."""
    hosts: frozenset[tuple[str, str]] = frozenset()
    """(system, address) of hosts registered otherwise (name, services, zone) or that answered
    at another IP address: another machine may have answered."""

    def covers(self, system: str, host: str) -> bool:
        return self.everywhere or system in self.systems or (system, host) in self.hosts


@dataclass(frozen=True)
class Changes:
    new: tuple[Finding, ...]
    """Failing now where the baseline judged the rule and it did not fail, or its check observed
    the host without this endpoint (the current finding)."""
    fixed: tuple[Finding, ...]
    """Failing in the baseline and passing now (the current, passing finding)."""
    not_rechecked: tuple[Finding, ...]
    """Failing in the baseline and not judged now: error, not probed, or no longer observed
    (the baseline's finding)."""
    still: tuple[Finding, ...]
    """Failing in both (the current finding)."""
    rejudged: tuple[Rejudged, ...] = ()
    """Would be new or fixed (or dropped), but the policy judging the system changed."""
    first_judged: tuple[Finding, ...] = ()
    """Failing now, and not judged in the baseline (error, not probed, host or check not in it):
    it may have failed then too, so it is not called new (the current finding)."""
    unverified: tuple[Finding, ...] = ()
    """Passing in the baseline and not judged now (error, not probed, no longer observed): no
    longer shown compliant, though nothing failed (the baseline's finding)."""
    notes: tuple[Text, ...] = ()
    """How the judging changed between the runs (`Rejudging.notes`); empty when it did not."""


def compare(
    before: Iterable[Finding], after: Iterable[Finding], rejudging: "Rejudging | None" = None
) -> Changes:
    """Sort every rule that fails in either run into new, first judged, fixed, not re-checked or
    still failing, and list what passed before and cannot be judged now; on the systems and hosts
    `rejudging` covers, a verdict that changed is judged otherwise instead."""
    current, before_list = list(after), list(before)
    hosts_now, hosts_before = _by_host(current), _by_host(before_list)
    judged = rejudging or Rejudging(frozenset(), ())
    now = _verdicts(current)
    was = _matched(_verdicts(before_list), now, judged)
    old = {k: f for k, f in was.items() if f.status in _FAILING}
    failing = {k for k, f in now.items() if f.status in _FAILING}
    passing = {k for k, f in now.items() if f.status == "pass"}
    unjudged = old.keys() - failing - passing
    passed = {k for k, f in was.items() if f.status == "pass"}

    def dropped_by_policy(k: FindingKey) -> bool:
        return judged.covers(k[2], k[3]) and _no_longer_judged(k, hosts_now)

    lost = {k for k in passed - failing - passing if not dropped_by_policy(k)}
    dropped = {k for k in unjudged if dropped_by_policy(k)}
    seen_elsewhere = {k for k in was.keys() & now.keys() if was[k].vantage != now[k].vantage}
    changed = (failing - old.keys()) | (passing & old.keys())
    moved = {k for k in changed if judged.covers(k[2], k[3]) or k in seen_elsewhere}
    notes = judged.notes
    if moved & seen_elsewhere:
        count = len(moved & seen_elsewhere)
        notes += (
            Text(
                vi=f"{count} kết quả được quan sát từ vùng khác với lượt quét trước",
                en=f"{count} verdict(s) rest on what was seen from another vantage than in the baseline",
            ),
        )
    unseen = {
        k for k in failing - old.keys() - moved if not _judged_before(k, now[k].check, was, hosts_before)
    }
    return Changes(
        new=_ordered(now[k] for k in failing - old.keys() - moved - unseen),
        first_judged=_ordered(now[k] for k in unseen),
        fixed=_ordered(now[k] for k in passing & old.keys() - moved),
        not_rechecked=_ordered(old[k] for k in unjudged - dropped),
        still=_ordered(now[k] for k in failing & old.keys()),
        rejudged=tuple(
            sorted(
                (
                    *(Rejudged(now[k], was[k].status if k in was else None, now[k].status) for k in moved),
                    *(Rejudged(old[k], old[k].status, None) for k in dropped),
                ),
                key=lambda r: _order(r.finding),
            )
        ),
        notes=notes,
        unverified=_ordered(was[k] for k in lost),
    )


def _verdicts(findings: Iterable[Finding]) -> dict[FindingKey, Finding]:
    """Each rule's verdict on each endpoint (`_WORST` where several share it); entries standing
    for blocked rules (`kind` other than `rule`) are no rule's verdict."""
    verdicts: dict[FindingKey, Finding] = {}
    for f in findings:
        if f.kind != "rule":
            continue
        held = verdicts.setdefault(finding_key(f), f)
        if _WORST[f.status] > _WORST[held.status]:
            verdicts[finding_key(f)] = f
    return verdicts


def _matched(
    was: dict[FindingKey, Finding], now: dict[FindingKey, Finding], rejudging: Rejudging
) -> dict[FindingKey, Finding]:
    """`was`, where a system judged otherwise has a rule judged now under another policy id (the
    system's level changed, `attt report -p`): keyed as now, so it is the same rule on the same
    endpoint, not one dropped and another new. Only a rule the current run judges once."""
    elsewhere: dict[tuple[str, str, str, int | None], list[FindingKey]] = {}
    for key in now:
        elsewhere.setdefault(key[1:], []).append(key)
    matched = dict(was)
    for key, finding in was.items():
        found = elsewhere.get(key[1:], [])
        if key not in now and len(found) == 1 and found[0] not in was and rejudging.covers(key[2], key[3]):
            del matched[key]
            matched[found[0]] = finding
    return matched


_ByHost = dict[tuple[str, str], list[Finding]]
"""A run's findings by (system, host): what one host's findings say is looked up once per key."""


def _by_host(findings: Iterable[Finding]) -> _ByHost:
    grouped: _ByHost = {}
    for f in findings:
        grouped.setdefault((f.system, f.host), []).append(f)
    return grouped


def _judged_before(key: FindingKey, check: str, was: dict[FindingKey, Finding], before: _ByHost) -> bool:
    """Whether the baseline judged the rule on this endpoint, or its check observed the host (and
    the endpoint was not there): only then is a failure now a change."""
    if key in was:
        return was[key].status != "error"
    _, rule_id, system, host, _ = key
    mine = before.get((system, host), [])
    blocked = any(rule_id in f.blocked for f in mine if f.kind != "rule")
    return not blocked and any(f.check == check and f.kind == "rule" and f.status != "error" for f in mine)


def _no_longer_judged(key: FindingKey, after: _ByHost) -> bool:
    """The host is in the current run, but no finding of it judges the rule, on any port, nor
    lists it as blocked: the current policy does not have it (rather than: it could not be judged)."""
    _, rule_id, system, host, _ = key
    mine = after.get((system, host), [])
    return bool(mine) and not any(f.rule_id == rule_id or rule_id in f.blocked for f in mine)


def _order(f: Finding) -> tuple[str, str, int, str, str]:
    return (f.system, f.host, f.port or 0, f.rule_id, f.policy)


def _ordered(findings: Iterable[Finding]) -> tuple[Finding, ...]:
    return tuple(sorted(findings, key=_order))


class Side(NamedTuple):
    """One of the two runs compared: how it was run, what it scanned, what it found."""

    info: RunInfo
    targets: Sequence[Target]
    findings: Iterable[Finding]


def compare_runs(before: Side, after: Side) -> Changes:
    """`compare`, knowing how each run was judged, registered and probed: the one comparison of
    `attt diff`, the HTML report's change section and the notifications."""
    judged = rejudging(before.info, after.info)
    registered = _registration(before.targets, after.targets)
    probed = _vantages(before.info, after.info)
    combined = Rejudging(
        systems=judged.systems | registered.systems,
        notes=judged.notes + registered.notes + probed.notes,
        everywhere=judged.everywhere or probed.everywhere,
        hosts=registered.hosts,
    )
    return compare(before.findings, after.findings, combined)


_RULES_READ = {"level", "tags", "allowed_ports", "role"}
"""The fields of a system's registration that rules read (`applies_to`, allowed ports)."""


def _registration(before: Sequence[Target], after: Sequence[Target]) -> Rejudging:
    """Systems and hosts the inventory registered otherwise between the runs, and hosts that
    answered at another IP address (a DNS name that moved): their verdicts may have changed
    with the registration or the machine, not with the server's configuration."""
    was = {t.key: t for t in before}
    systems: set[str] = set()
    hosts: set[tuple[str, str]] = set()
    notes: list[Text] = []
    for target in after:
        old = was.get(target.key)
        if old is None:
            continue
        system = target.system.id
        if system not in systems and old.system.model_dump(include=_RULES_READ) != target.system.model_dump(
            include=_RULES_READ
        ):
            systems.add(system)
            notes.append(
                Text(
                    vi=f"hệ thống {system} được khai báo khác (cấp độ, thẻ, vai trò hoặc cổng được phép)",
                    en=f"system {system} is registered otherwise (level, tags, role or allowed ports)",
                )
            )
        where = target.address
        if old.ip != target.ip:
            hosts.add(target.key)
            notes.append(
                Text(
                    vi=f"máy chủ {where} ({system}) trả lời ở địa chỉ {old.ip} trước đó, {target.ip} lần này",
                    en=f"host {where} ({system}) answered at {old.ip} before, at {target.ip} now",
                )
            )
        elif (old.host.hostname, old.host.services, old.zone) != (
            target.host.hostname,
            target.host.services,
            target.zone,
        ):
            hosts.add(target.key)
            notes.append(
                Text(
                    vi=f"máy chủ {where} ({system}) được khai báo khác (tên, dịch vụ hoặc vùng)",
                    en=f"host {where} ({system}) is registered otherwise (name, services or zone)",
                )
            )
    return Rejudging(frozenset(systems), tuple(notes), hosts=frozenset(hosts))


def _vantages(before: RunInfo, after: RunInfo) -> Rejudging:
    """Runs probed from other vantages see other things (a firewall shows the inside more)."""
    if (before.vantage, before.probed_from) == (after.vantage, after.probed_from):
        return Rejudging(frozenset(), ())
    was, now = before.vantage or "—", after.vantage or "—"
    note = Text(
        vi=f"hai lượt quét thăm dò từ các vùng khác nhau (trước đó: {was}, lần này: {now})",
        en=f"the runs probed from other vantages (before: {was}, now: {now})",
    )
    return Rejudging(frozenset(), (note,), everywhere=True)


_POLICY_NAMES = re.compile(r" \+ | over ")
"""How `RunInfo.judged_by` joins the ids of a system's policies: `a + b`, `hatinh over vn-level-2`."""


def _hashes(info: RunInfo) -> dict[str, frozenset[str]]:
    """Policy id -> the content hashes it had in the run (an overlay laid over two levels has two)."""
    found: dict[str, set[str]] = {}
    for ref in info.policies:
        found.setdefault(ref.id, set()).add(ref.sha256)
    return {pid: frozenset(hashes) for pid, hashes in found.items()}


def _short(hashes: frozenset[str]) -> str:
    return ", ".join(sorted(h[:12] for h in hashes))


def rejudging(before: RunInfo, after: RunInfo) -> Rejudging:
    """Which systems the two runs judged otherwise, and what changed. A system is judged
    otherwise when its policies have other ids (`judged_by`: another level, `attt report -p`) or
    one of them other content; runs stored before `judged_by` was recorded are judged otherwise
    everywhere as soon as their policies differ at all."""
    old, new = _hashes(before), _hashes(after)
    changed = sorted(pid for pid in old.keys() & new.keys() if old[pid] != new[pid])
    notes = [
        Text(
            vi=f"chính sách {pid} đã thay đổi nội dung giữa hai lượt quét (sha256 {_short(old[pid])}"
            f" → {_short(new[pid])})",
            en=f"policy {pid} changed between the runs (sha256 {_short(old[pid])} → {_short(new[pid])})",
        )
        for pid in changed
    ]
    if not before.judged_by or not after.judged_by:
        if old != new and not changed:
            was, now = ", ".join(sorted(old)) or "—", ", ".join(sorted(new)) or "—"
            notes.append(
                Text(
                    vi=f"chính sách đánh giá: {was} trước đó, {now} lần này",
                    en=f"judged by {was} before, by {now} now",
                )
            )
        return Rejudging(frozenset(), tuple(notes), everywhere=old != new)
    systems: set[str] = set()
    for system in sorted(before.judged_by.keys() & after.judged_by.keys()):
        was, now = before.judged_by[system], after.judged_by[system]
        if was != now:
            systems.add(system)
            notes.append(
                Text(
                    vi=f"hệ thống {system}: đánh giá theo {was} trước đó, theo {now} lần này",
                    en=f"system {system}: judged by {was} before, by {now} now",
                )
            )
        elif set(_POLICY_NAMES.split(now)) & set(changed):
            systems.add(system)
    return Rejudging(frozenset(systems), tuple(notes))


@dataclass(frozen=True)
class Comparison:
    """The run a report is compared with, and why that one (or why none)."""

    previous: Report | None
    reason: Text


def _hosts(targets: Iterable[Target]) -> frozenset[tuple[str, str]]:
    return frozenset(t.key for t in targets)


def why_not_comparable(
    current: RunInfo, targets: Sequence[Target], earlier: RunInfo, earlier_targets: Sequence[Target]
) -> str | None:
    """None when `earlier` can be the baseline of `current`; else the reason, as a short key."""
    if earlier.status != "complete":
        return "incomplete"
    return unlike(current, targets, earlier, earlier_targets)


def unlike(
    current: RunInfo, targets: Sequence[Target], earlier: RunInfo, earlier_targets: Sequence[Target]
) -> str | None:
    """None when the two runs looked at the same things the same way (hosts, checks, vantages);
    else the first difference, as a short key (`REASONS`)."""
    if _hosts(earlier_targets) != _hosts(targets):
        return "other_hosts"
    if set(earlier.checks) != set(current.checks):
        return "other_checks"
    if (earlier.vantage, earlier.probed_from) != (current.vantage, current.probed_from):
        return "other_vantage"
    return None


REASONS = {
    "incomplete": ("chưa hoàn tất", "incomplete"),
    "other_hosts": ("quét tập máy chủ khác", "other hosts"),
    "other_checks": ("chạy bộ kiểm tra khác", "other checks"),
    "other_vantage": ("thăm dò từ vùng khác", "probed from other vantages"),
}


def choose_baseline(
    current: RunInfo, targets: Sequence[Target], earlier: Iterable[tuple[RunInfo, Sequence[Target]]]
) -> tuple[str | None, Text]:
    """The id of the newest comparable run started before `current`, and why it was chosen (or
    why none was: how many newer runs were passed over, and for what)."""
    skipped: dict[str, int] = {}
    systems = len({t.system.id for t in targets})
    for info, their_targets in sorted(earlier, key=lambda e: (e[0].started, e[0].id), reverse=True):
        if info.started >= current.started or info.id == current.id:
            continue
        why = why_not_comparable(current, targets, info, their_targets)
        if why is None:
            passed_over = _passed_over(skipped)
            return info.id, Text(
                vi=f"lượt quét hoàn tất gần nhất trước đó trên cùng {len(targets)} máy chủ của {systems}"
                f" hệ thống, cùng các kiểm tra{passed_over.vi}",
                en=f"the latest earlier complete run over the same {len(targets)} host(s) of {systems}"
                f" system(s) with the same checks{passed_over.en}",
            )
        skipped[why] = skipped.get(why, 0) + 1
    passed_over = _passed_over(skipped)
    return None, Text(
        vi=f"không có lượt quét hoàn tất nào trước đó trên cùng {len(targets)} máy chủ với cùng các"
        f" kiểm tra{passed_over.vi}",
        en=f"no earlier complete run over the same {len(targets)} host(s) with the same checks"
        f"{passed_over.en}",
    )


def _passed_over(skipped: dict[str, int]) -> Text:
    if not skipped:
        return Text(vi="", en="")
    vi = ", ".join(f"{n} lượt {REASONS[k][0]}" for k, n in sorted(skipped.items()))
    en = ", ".join(f"{n} {REASONS[k][1]}" for k, n in sorted(skipped.items()))
    return Text(vi=f" (bỏ qua các lượt mới hơn: {vi})", en=f" (newer runs passed over: {en})")
