"""A stored two-vantage run: a host in the DMZ seen from inside and from the Internet, a host of
the server zone seen from inside only. Judged again from the store under a policy file whose
rule asks for the Internet, and rendered in every format. Pure: nothing is probed."""

import csv
import io
import json
from datetime import UTC, datetime

import pytest

from attt.reports.csv import CsvRenderer
from attt.reports.html import HtmlRenderer
from attt.reports.junit import JunitRenderer
from attt.reports.sarif import SarifRenderer
from attt.scanner.models.observation import Observation, probe_check
from attt.scanner.models.report import Report, RunInfo
from attt.scanner.models.target import Target, Zone
from attt.scanner.pipeline import build_report, reevaluate
from attt.scanner.store import Store
from tests.scanner.plugins import CountData, registry, target

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
ZONES = (
    Zone(id="dmz", name="DMZ", cidrs=("127.0.40.0/24",)),
    Zone(id="servers", name="Vùng máy chủ", cidrs=("127.0.41.0/24",)),
    Zone(id="internet", name="Internet", vantage="outside", reaches=("dmz",)),
)
PORTAL = target("127.0.40.10", "portal").model_copy(update={"zone": "dmz"})
ARCHIVE = target("127.0.41.10", "archive").model_copy(update={"zone": "servers"})

POLICY = """\
id: zoned
title: Zoned test policy
rules:
  - id: COUNT-EXPOSED
    control: count.at_most
    params: {limit: 10}
    severity: high
    vantage: internet
    title: {vi: Ít dịch vụ mở ra Internet, en: Few services open to the Internet}
    remediation: {vi: Chặn tại tường lửa biên, en: Block them at the perimeter firewall}
  - id: COUNT-SMALL
    control: count.at_most
    params: {limit: 10}
    severity: medium
    title: {vi: Ít dịch vụ, en: Few services}
    remediation: {vi: Tắt bớt, en: Turn some off}
"""


def seen(where: Target, count: int, vantage: str) -> Observation:
    obs = Observation.ok("count", where, CountData(count=count), 1)
    return obs.model_copy(update={"zone": vantage})


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Report:
    tmp = tmp_path_factory.mktemp("zoned")
    policy = tmp / "zoned.yaml"
    policy.write_text(POLICY, encoding="utf-8")
    store = Store(tmp / "runs.db", {"count": CountData})
    info = RunInfo(
        id="20261201T100000Z-zoned1",
        started=NOW,
        status="running",
        province="Hà Tĩnh",
        scope=("127.0.40.0/23",),
        inventory_sha256="a" * 64,
        policies=(),
        checks=("count",),
        zones=ZONES,
    )
    systems = (PORTAL.system, ARCHIVE.system)
    store.create_run(info, systems, (PORTAL, ARCHIVE))
    # Inside, the portal answers on 30 ports; from the Internet on 3. The archive is not reachable
    # from the Internet at all, and no outside vantage reaches its zone.
    store.record_probe(info.id, "count", PORTAL, [seen(PORTAL, 30, "dmz")])
    store.record_probe(info.id, probe_check("count", "internet"), PORTAL, [seen(PORTAL, 3, "internet")])
    store.record_probe(info.id, "count", ARCHIVE, [seen(ARCHIVE, 30, "servers")])
    store.finish_run(info.id, "complete", NOW, [])
    stored = reevaluate(store.load(info.id), [str(policy)], registry(), NOW)
    return build_report(stored)


def by_rule(report: Report, system: str) -> dict[str, tuple[str, str | None, bool]]:
    return {
        f.rule_id: (f.status, f.vantage, f.judged_from_inside) for f in report.findings if f.system == system
    }


def test_each_rule_is_judged_from_its_side_and_the_store_keeps_the_vantages(report: Report) -> None:
    assert {o.zone for o in report.observations} == {"dmz", "internet", "servers"}
    assert report.run.outside() == frozenset({"internet"})  # known from the run, not the inventory
    assert by_rule(report, "portal") == {
        "COUNT-EXPOSED": ("pass", "internet", False),  # the Internet sees 3
        "COUNT-SMALL": ("fail", "dmz", False),  # inside, 30
    }
    assert by_rule(report, "archive") == {
        "COUNT-EXPOSED": ("fail", "servers", True),
        "COUNT-SMALL": ("fail", "servers", False),
    }
    [inside] = [f for f in report.findings if f.judged_from_inside]
    assert "Judged from inside, zone servers" in inside.message.en
    assert "Đánh giá từ bên trong, vùng servers" in inside.message.vi


def test_json_carries_the_zones_and_each_vantage(report: Report) -> None:
    again = Report.model_validate_json(report.model_dump_json())
    assert again.run.zones == ZONES
    assert {(f.system, f.rule_id, f.vantage) for f in again.findings} == {
        (f.system, f.rule_id, f.vantage) for f in report.findings
    }


def test_html_labels_what_was_seen_from_outside_or_judged_from_inside(report: Report) -> None:
    en = HtmlRenderer().render(report, "en").decode("utf-8")
    assert '<span class="vantage">from: Internet (outside)</span>' in en
    assert '<span class="vantage">judged from inside: Vùng máy chủ</span>' in en
    assert "Seen from: DMZ, Internet (outside)" in en  # the portal's header: two vantages
    assert en.count("Seen from:") == 1  # the archive was seen from one zone only
    assert "dmz (DMZ), servers (Vùng máy chủ), internet (Internet, outside vantage)" in en
    vi = HtmlRenderer().render(report, "vi").decode("utf-8")
    assert '<span class="vantage">từ: Internet (bên ngoài)</span>' in vi
    assert "Quan sát từ: DMZ, Internet (bên ngoài)" in vi


def test_csv_sarif_and_junit_carry_the_vantage_beside_the_host(report: Report) -> None:
    rows = list(csv.DictReader(io.StringIO(CsvRenderer().render(report, "en").decode("utf-8-sig"))))
    vantages = {(r["System"], r["Rule"]): r["Vantage"] for r in rows}
    assert vantages[("portal", "COUNT-EXPOSED")] == "internet"
    assert vantages[("portal", "COUNT-SMALL")] == "dmz"
    assert vantages[("archive", "COUNT-EXPOSED")] == "judged from inside: servers"
    sarif = json.loads(SarifRenderer().render(report, "en"))
    properties = {
        (r["properties"]["system"], r["ruleId"]): r["properties"] for r in sarif["runs"][0]["results"]
    }
    assert properties[("archive", "COUNT-EXPOSED")]["vantage"] == "servers"
    assert properties[("archive", "COUNT-EXPOSED")]["judgedFromInside"] is True
    junit = JunitRenderer().render(report, "en").decode("utf-8")
    assert "Vantage: judged from inside: servers" in junit


def test_a_stopped_run_judged_again_waits_for_the_outside_probes_it_planned(tmp_path) -> None:
    policy = tmp_path / "zoned.yaml"
    policy.write_text(POLICY, encoding="utf-8")
    store = Store(tmp_path / "runs.db", {"count": CountData})
    planned = {"dmz": ("internet",)}
    info = RunInfo(id="20261201T110000Z-zoned2", started=NOW, status="running", province="Hà Tĩnh",
                   scope=("127.0.40.0/23",), inventory_sha256="a" * 64, policies=(), checks=("count",),
                   zones=ZONES, probed_from=planned)  # fmt: skip
    store.create_run(info, (PORTAL.system,), (PORTAL,))
    # Stopped after the inside probe: the probe from the Internet was planned and never ran.
    store.record_probe(info.id, "count", PORTAL, [seen(PORTAL, 3, "dmz")])
    store.finish_run(info.id, "incomplete", NOW, [])
    stored = store.load(info.id)
    assert stored.info.probed_from == planned
    found = {f.rule_id: f for f in reevaluate(stored, [str(policy)], registry(), NOW).findings}
    assert (found["COUNT-NOT-PROBED"].status, found["COUNT-NOT-PROBED"].blocked) == (
        "error",
        ("COUNT-EXPOSED",),
    )
    assert "COUNT-EXPOSED" not in found  # no pass from inside standing in for the Internet's view
    assert found["COUNT-SMALL"].status == "pass"
    # A resume that plans another vantage records it too.
    store.claim(info.id, probed_from={"dmz": ("internet", "isp")})
    assert store.load(info.id).info.probed_from == {"dmz": ("internet", "isp")}
