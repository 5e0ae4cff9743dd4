"""One pack per owner agency, and the department's index of the packs.

A pack is an ordinary report bundle (`write_bundle`) of a report cut down to one agency: its
systems, their hosts, observations and findings, its own contact, its summary. Nothing of any
other agency goes in, so a pack can be mailed to a commune as it is. The department's index
(`index.html`, `index.json`) lists every pack with its score and open critical/high failures;
the top `manifest.json` covers the index and every file of every pack, so `attt verify DIR`
checks the lot and `attt verify DIR/PACK` one pack.
"""

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final

from attt.reports.base import DEFAULT_CONTEXT, Lang, RenderContext
from attt.reports.bundle import INDEX_HTML, INDEX_JSON, RENDERERS, write_bundle
from attt.reports.html import _ENV, _asset
from attt.reports.manifest import SIGNATURE, load_signing_key, write_manifest
from attt.scanner.changes import Comparison, choose_baseline
from attt.scanner.errors import ConfigError
from attt.scanner.models.owners import PackEntry, PackIndex
from attt.scanner.models.report import Report, Summary
from attt.scanner.register import slug

_LABELS: Final = {
    "vi": {
        "title": "Danh sách gói báo cáo theo cơ quan chủ quản",
        "run": "Lần quét",
        "owner": "Cơ quan chủ quản",
        "contact": "Người liên hệ",
        "systems": "Số hệ thống",
        "score": "Điểm tuân thủ",
        "critical": "Nghiêm trọng chưa khắc phục",
        "high": "Cao chưa khắc phục",
        "errors": "Chưa đánh giá được",
        "pack": "Gói báo cáo",
        "none": "chưa đánh giá",
    },
    "en": {
        "title": "Report packs by owner agency",
        "run": "Run",
        "owner": "Owner agency",
        "contact": "Contact",
        "systems": "Systems",
        "score": "Compliance score",
        "critical": "Open critical",
        "high": "Open high",
        "errors": "Not evaluated",
        "pack": "Pack",
        "none": "not evaluated",
    },
}


def owners_of(report: Report) -> list[str]:
    return sorted({s.owner for s in report.systems})


def owner_report(report: Report, owner: str) -> Report:
    """The report restricted to one owner agency: nothing of any other agency is left in it."""
    systems = tuple(s for s in report.systems if s.owner == owner)
    if not systems:
        known = "; ".join(owners_of(report)) or "none"
        raise ConfigError(f"--owner: no system of run {report.run.id} belongs to {owner!r} (owners: {known})")
    ids = {s.id for s in systems}
    findings = tuple(f for f in report.findings if f.system in ids)
    run = report.run.model_copy(
        update={
            "owners": tuple(o for o in report.run.owners if o.name == owner),
            "judged_by": {k: v for k, v in report.run.judged_by.items() if k in ids},
        }
    )
    return report.model_copy(
        update={
            "run": run,
            "systems": systems,
            "targets": tuple(t for t in report.targets if t.system.id in ids),
            "observations": tuple(o for o in report.observations if o.system in ids),
            "findings": findings,
            "summary": Summary.of(list(findings), systems),
        }
    )


@dataclass(frozen=True)
class OwnerPacks:
    directory: Path
    index: PackIndex
    files: list[Path]


def write_owner_packs(
    report: Report,
    formats: Sequence[str],
    out_dir: Path,
    lang: Lang,
    *,
    sign_key: Path | None = None,
    context: RenderContext = DEFAULT_CONTEXT,
) -> OwnerPacks:
    """A pack per owner in `out_dir/<owner-slug>/`, then the index and the manifest over all."""
    key = None if sign_key is None else load_signing_key(sign_key)
    entries: list[PackEntry] = []
    files: list[Path] = []
    taken: set[str] = {INDEX_HTML, INDEX_JSON}
    for owner in owners_of(report):
        directory = _unique(slug(owner), taken)
        pack_dir = out_dir / directory
        files += write_one_pack(report, owner, formats, pack_dir, lang, sign_key=sign_key, context=context)
        entries.append(_entry(owner_report(report, owner), owner, directory))
    index = PackIndex(run_id=report.run.id, province=report.run.province, packs=tuple(entries))
    (out_dir / INDEX_JSON).write_text(index.model_dump_json(indent=2) + "\n", encoding="utf-8")
    (out_dir / INDEX_HTML).write_bytes(render_index(index, lang))
    # A whole-run bundle written here before would be files the new manifest does not list.
    for stale in (SIGNATURE, *(r.filename for r in RENDERERS.values())):
        (out_dir / stale).unlink(missing_ok=True)
    files += [out_dir / INDEX_JSON, out_dir / INDEX_HTML]
    written = write_manifest(report, dict.fromkeys(files), out_dir, key)
    return OwnerPacks(out_dir, index, files + written)


def write_one_pack(
    report: Report,
    owner: str,
    formats: Sequence[str],
    out_dir: Path,
    lang: Lang,
    *,
    sign_key: Path | None = None,
    context: RenderContext = DEFAULT_CONTEXT,
) -> list[Path]:
    """`--owner NAME`: that agency's pack alone, as the bundle in `out_dir` (trends and
    "failing since" read the whole earlier runs: they only ever look up this agency's findings)."""
    pack = owner_report(report, owner)
    baseline = _owner_baseline(report, context.baseline, owner)
    return write_bundle(
        pack, formats, out_dir, lang, sign_key=sign_key, context=replace(context, baseline=baseline)
    )


def _owner_baseline(current: Report, baseline: Comparison | None, owner: str) -> Comparison | None:
    """The baseline run cut to the same agency, for the pack's change section."""
    if baseline is None or baseline.previous is None:
        return baseline
    previous = baseline.previous
    if not any(s.owner == owner for s in previous.systems):
        return Comparison(None, baseline.reason)
    # Judged again on the agency's own hosts, so the reason counts nothing of another agency's.
    mine, before = owner_report(current, owner), owner_report(previous, owner)
    chosen, reason = choose_baseline(mine.run, mine.targets, [(before.run, before.targets)])
    return Comparison(before if chosen else None, reason)


def _entry(pack: Report, owner: str, directory: str) -> PackEntry:
    counts = pack.summary.overall
    contact = next((o.contact for o in pack.run.owners if o.name == owner), None)
    return PackEntry(
        owner=owner,
        directory=directory,
        contact=contact,
        systems=tuple(s.id for s in pack.systems),
        score=counts.score,
        open_critical=counts.by_severity.get("critical", 0),
        open_high=counts.by_severity.get("high", 0),
        errors=counts.by_status.get("error", 0),
    )


def _unique(name: str, taken: set[str]) -> str:
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        candidate = f"{name}-{n}"
    taken.add(candidate)
    return candidate


def render_index(index: PackIndex, lang: Lang) -> bytes:
    """The department's page: autoescaped like the report, styled by the report's own CSS."""
    style = _asset("report.css")
    page = _ENV.get_template("owners_index.html.j2").render(
        index=index,
        t=_LABELS[lang],
        lang=lang,
        style=style.text,
        csp=f"default-src 'none'; style-src {style.csp}",
        score=lambda s: _LABELS[lang]["none"] if s is None else f"{s * 100:.0f}%",
    )
    return page.encode("utf-8")
