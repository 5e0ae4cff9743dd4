"""The pieces of the weekly cycle one at a time: register import, attt.toml, overlay policies and
waiver files, per-owner packs, notification retries and failures, prune."""

import json
import textwrap
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from attt.reports.manifest import verify_bundle
from attt.reports.owners import owner_report, write_one_pack, write_owner_packs
from attt.scanner.cli import main
from attt.scanner.config import EmailSettings, NotifySettings, WebhookSettings, load_config
from attt.scanner.errors import ConfigError
from attt.scanner.models.finding import Finding
from attt.scanner.models.policy import Waiver
from attt.scanner.models.report import Report, RunInfo
from attt.scanner.models.target import Contact, Owner, SystemInfo
from attt.scanner.notify import changes_since, notify, owner_email, send_email
from attt.scanner.pipeline import judged_by, policies_for
from attt.scanner.register import import_register
from attt.scanner.registry import Registry
from attt.scanner.store import Store
from attt.scanner.waivers import with_waivers
from tests import factories
from tests.servers.mail import (
    MAIL_HOST,
    SMTP_PASSWORD,
    SMTP_USER,
    self_signed,
    smtp_server,
    webhook_receiver,
)
from tests.servers.postgres import raw

HEADER_VI = ";".join(
    ("Tên hệ thống", "Cơ quan chủ quản", "Cấp độ", "Địa chỉ IP / Tên miền", "Cổng dịch vụ", "Email",
     "Số quyết định", "Ngày quyết định")
)  # fmt: skip


def register_csv(tmp_path: Path, *rows: str, header: str = HEADER_VI) -> Path:
    path = tmp_path / "register.csv"
    path.write_text("\n".join((header, *rows)) + "\n", encoding="utf-8-sig")
    return path


def test_import_refuses_each_unusable_row_with_its_number_and_reason(tmp_path: Path) -> None:
    path = register_csv(
        tmp_path,
        "Cổng dịch vụ công;Sở KH&CN;3;10.213.1.10;443;a@skhcn.example.vn;QĐ 1/QĐ-UBND;01/09/2025",
        "Thư điện tử;Sở KH&CN;cấp 6;10.213.1.11;25;;;",
        "Một cửa;UBND xã A;2;https://motcua.example.vn/;443;;;",
        "Camera;UBND xã A;1;10.213.1.0/24;;;;",
        "Web;UBND xã A;1;10.99.0.1;;;;",
        ";UBND xã A;1;10.213.1.12;;;;",
        "CSDL;UBND xã A;2;10.213.1.13;abc;;;",
        "Kho;UBND xã A;2;10.213.1.14;;;QĐ 2;",
        "Cổng;UBND xã A;2;10.213.1.15;;not-an-email;;",
        "Cổng dịch vụ công;Sở KH&CN;3;10.213.1.16;;;;",
        ";;;;;;;",
    )
    result = import_register(path, "Hà Tĩnh", ["10.213.0.0/16"])
    reasons = {r.row: r.reason for r in result.refused}
    assert sorted(reasons) == [3, 4, 5, 6, 7, 8, 9, 10, 11]
    assert "level (cấp độ) must be one number from 1 to 5" in reasons[3]
    assert "is a URL or a network" in reasons[4]
    assert "is a URL or a network" in reasons[5]
    assert "out of scope" in reasons[6]
    assert "no system name" in reasons[7]
    assert "port (cổng dịch vụ) 'abc'" in reasons[8]
    assert "needs both its number" in reasons[9]
    assert "contact email 'not-an-email'" in reasons[10]
    assert "already used by an earlier row" in reasons[11]
    assert result.inventory is not None
    (system,) = result.inventory.systems
    assert system.level_decision is not None
    assert system.level_decision.date == date(2025, 9, 1)
    assert result.inventory.owners[0].contact.email == "a@skhcn.example.vn"


def test_import_reads_english_headers_and_refuses_a_sheet_without_an_address_column(tmp_path: Path) -> None:
    header = "System name,Owner agency,Level,Address,Ports,Contact,Phone"
    good = register_csv(
        tmp_path, "Portal,Dept of Science,2,portal.example.vn,443,Ms A,+84 239 3855 001", header=header
    )
    result = import_register(good, "Hà Tĩnh", ["*.example.vn"])
    assert result.inventory is not None
    assert result.inventory.systems[0].hosts[0].address == "portal.example.vn"
    bad = register_csv(tmp_path, "Portal,Dept,2", header="System name,Owner agency,Level")
    with pytest.raises(ConfigError, match="no column for address"):
        import_register(bad, "Hà Tĩnh", ["*.example.vn"])


def test_config_refuses_secrets_and_reads_paths_from_its_directory(tmp_path: Path) -> None:
    config = tmp_path / "attt.toml"
    config.write_text('[notify.email]\nhost = "mail"\nsender = "a@b.vn"\npassword = "x"\n')
    with pytest.raises(
        ConfigError, match=r"notify\.email\.password: secrets never live in the configuration"
    ):
        load_config(config)
    config.write_text('inventory = "inv.yaml"\nwaivers = ["w.yaml"]\npolicies = ["vn-level-3", "p/x.yaml"]\n')
    loaded = load_config(config)
    assert loaded.inventory == tmp_path / "inv.yaml"
    assert loaded.waivers == (tmp_path / "w.yaml",)
    assert loaded.policies == ("vn-level-3", str(tmp_path / "p/x.yaml"))
    config.write_text('formats = "html"\n')
    with pytest.raises(ConfigError, match="formats"):
        load_config(config)


def test_password_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "smtp.pass"
    secret.write_text("pw\n")
    secret.chmod(0o640)
    settings = NotifySettings(
        email=EmailSettings(host=MAIL_HOST, sender="a@b.vn", username="u", password_file=secret)
    )
    store = Store(tmp_path / "runs.db")
    report = two_owner_report()
    index = write_owner_packs(report, ["json"], tmp_path / "out", "vi").index
    record, _ = notify(store, report, tmp_path / "out", index, changes_since(report, None), settings)
    assert (record.status, record.attempts) == ("failed", 0)
    assert "mail password file is accessible to group or others" in record.detail
    assert "pw" not in record.detail


def test_config_gives_the_command_line_its_defaults(tmp_path: Path) -> None:
    (tmp_path / "attt.toml").write_text('db = "runs.db"\n')
    result = CliRunner().invoke(main, ["history"], env={"ATTT_CONFIG": str(tmp_path / "attt.toml")})
    # The configured store is the one read; a reading command never creates it (issue 13).
    assert result.exit_code == 2, result.output
    assert f"no run store at {tmp_path / 'runs.db'}" in result.output
    assert not (tmp_path / "runs.db").exists()


def systems_at(*levels: int) -> list[SystemInfo]:
    return [factories.system(f"sys-{level}", level=level) for level in levels]


def test_overlay_lays_the_province_policy_over_each_systems_own_level(tmp_path: Path) -> None:
    overlay = tmp_path / "hatinh.yaml"
    overlay.write_text(
        textwrap.dedent("""\
            id: hatinh
            title: Hà Tĩnh overlay
            extends: [vn-level-3]
            overrides:
              - {rule: PORT-TELNET, severity: critical}
        """)
    )
    registry = Registry.load()
    systems = systems_at(1, 4)
    level = {s.id: policies_for([s], [], registry)[s.id][0] for s in systems}
    overlaid = policies_for(systems, [str(overlay)], registry, "overlay")
    forced = policies_for(systems, [str(overlay)], registry, "force")
    level3 = {r.id for r in policies_for(systems_at(3), [], registry)["sys-3"][0].rules}
    for s in systems:
        rules = {r.id: r for r in overlaid[s.id][0].rules}
        assert set(rules) == {r.id for r in level[s.id].rules}, s.level
        assert {r.id for r in forced[s.id][0].rules} == level3
        if "PORT-TELNET" in rules:
            assert rules["PORT-TELNET"].severity == "critical"
    assert judged_by(systems, overlaid, "overlay") == {
        "sys-1": "hatinh over vn-level-1",
        "sys-4": "hatinh over vn-level-4",
    }
    assert judged_by(systems, forced, "force") == {"sys-1": "hatinh", "sys-4": "hatinh"}


def test_waiver_files_apply_on_top_and_a_typo_is_an_error_with_its_line(tmp_path: Path) -> None:
    registry = Registry.load()
    systems = systems_at(2)
    policies = policies_for(systems, [], registry)
    rule = policies["sys-2"][0].rules[0].id
    waivers = tmp_path / "waivers.yaml"
    entry = f"rule: {rule}, reason: r, approved_by: a, expires: 2027-01-01"
    waivers.write_text(f"waivers:\n  - {{system: sys-2, {entry}}}\n")
    applied = with_waivers(policies, [waivers], {"sys-2"})
    assert applied["sys-2"][0].waivers[-1] == Waiver(
        rule=rule, system="sys-2", reason="r", approved_by="a", expires=date(2027, 1, 1)
    )
    waivers.write_text(f"waivers:\n  - {{system: sys-2, {entry}}}\n  - {{system: sys-9, {entry}}}\n")
    with pytest.raises(
        ConfigError, match=r"waivers\.yaml:3: waiver of 'TLS-PROTO-SSL', system: no system 'sys-9'"
    ):
        with_waivers(policies, [waivers], {"sys-2"})
    waivers.write_text(
        "waivers:\n  - {system: sys-2, rule: NO-SUCH-RULE, reason: r, approved_by: a, expires: 2027-01-01}\n"
    )
    with pytest.raises(ConfigError, match="rule NO-SUCH-RULE is not in the policy judging it"):
        with_waivers(policies, [waivers], {"sys-2"})


def two_owner_report() -> Report:
    a = factories.system("a-portal", owner="Sở A")
    b = factories.system("b-mail", owner="UBND xã B")
    findings = [
        factories.finding(sys="a-portal", host="127.0.17.1"),
        factories.finding(sys="b-mail", host="127.0.17.2"),
    ]
    owners = (
        Owner(name="Sở A", contact=Contact(name="Chị A", email="a@a.example.vn")),
        Owner(name="UBND xã B", contact=Contact(name="Anh B", email="b@b.example.vn")),
    )
    return factories.report(
        findings, [a, b], owners=owners, judged_by={"a-portal": "vn-level-3", "b-mail": "x"}
    )


def test_one_owner_pack_alone_and_an_unknown_owner_is_refused(tmp_path: Path) -> None:
    report = two_owner_report()
    write_one_pack(report, "UBND xã B", ["json", "html"], tmp_path / "b", "en")
    text = (tmp_path / "b" / "report.json").read_text() + (tmp_path / "b" / "report.html").read_text()
    assert "b-mail" in text
    assert "b@b.example.vn" in text
    for other in ("a-portal", "127.0.17.1", "a@a.example.vn", "Chị A"):
        assert other not in text
    assert "Sở A" not in json.loads((tmp_path / "b" / "report.json").read_text()).__repr__()
    with pytest.raises(ConfigError, match="no system of run"):
        owner_report(report, "UBND xã C")


def test_a_failed_webhook_is_retried_with_backoff_recorded_and_sent_once_later(
    tmp_path: Path, store_location: Path | str
) -> None:
    report = two_owner_report()
    index = write_owner_packs(report, ["json"], tmp_path / "out", "vi").index
    store = Store(store_location)
    store.create_run(report.run, report.systems, report.targets)  # PostgreSQL ties notifications to a run
    waits: list[float] = []
    with webhook_receiver() as (url, hooks):
        settings = NotifySettings(webhook=WebhookSettings(url=url), retries=3, backoff_seconds=0.5)
        hooks.status = 500
        changes = changes_since(report, None)
        (record,) = notify(store, report, tmp_path / "out", index, changes, settings, sleep=waits.append)
        assert (record.status, record.attempts, record.detail) == ("failed", 3, "_HttpError: HTTP 500")
        assert waits == [0.5, 1.0]
        assert hooks.attempts == 3
        hooks.status = 200
        (record,) = notify(store, report, tmp_path / "out", index, changes, settings, sleep=waits.append)
        assert record.status == "sent"
        assert notify(store, report, tmp_path / "out", index, changes, settings) == []
        assert len(hooks.bodies) == 1
        assert hooks.bodies[0]["new_failures"][0]["system"] in ("a-portal", "b-mail")
    assert [n.status for n in store.notifications(report.run.id)] == ["sent"]


# The connection is TLS from its first byte; aiosmtpd's guard only knows about STARTTLS.
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_mail_over_implicit_tls_and_refused_without_the_servers_trust_anchor(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path, MAIL_HOST)
    report = two_owner_report()
    index = write_owner_packs(report, ["json"], tmp_path / "out", "en").index
    message = owner_email(report, index.packs[0], tmp_path / "out" / index.packs[0].directory,
                          changes_since(report, None), SMTP_USER)  # fmt: skip
    settings = EmailSettings(host=MAIL_HOST, port=2465, security="tls", username=SMTP_USER, sender=SMTP_USER)
    with smtp_server(cert, key, 2465, implicit_tls=True) as mailbox:
        with pytest.raises(OSError, match="CERTIFICATE_VERIFY_FAILED"):
            send_email(settings, SMTP_PASSWORD, message)
        send_email(settings.model_copy(update={"ca_file": cert}), SMTP_PASSWORD, message)
    (received,) = mailbox.messages
    assert received["To"] == "Chị A <a@a.example.vn>"
    assert "1 lỗi mới / new failures" in received["Subject"]


def run_info(day: int, inventory: str = "a") -> RunInfo:
    started = datetime(2027, 3, day, 2, tzinfo=UTC)
    return RunInfo(id=f"run-{day:02d}", started=started, finished=started + timedelta(minutes=1),
                   status="complete", province="Hà Tĩnh", scope=("127.0.17.0/24",),
                   inventory_sha256=inventory * 64, policies=(), checks=("ports",))  # fmt: skip


def test_prune_keeps_the_baselines_of_kept_runs_and_reclaims_space(store_location: Path | str) -> None:
    store = Store(store_location)
    big: list[Finding] = [factories.finding(host=f"127.0.17.{i}") for i in range(1, 200)]
    # Two inventories on alternate days: a run's baseline is the last one over the same hosts.
    hosts = {"a": [factories.target(address="127.0.17.1")], "b": [factories.target(address="127.0.17.2")]}
    for day, inventory in ((1, "a"), (2, "b"), (8, "a"), (9, "b"), (15, "a")):
        info = run_info(day, inventory)
        store.create_run(info, [], hosts[inventory])
        store.finish_run(info.id, "complete", info.finished or info.started, big)
    result = store.prune(lambda runs: {r.id for r in runs[1:]})
    assert [r.id for r in result.removed] == ["run-09", "run-02", "run-01"]
    assert result.kept_as_baseline == ("run-08",)
    assert [r.id for r in store.runs()] == ["run-15", "run-08"]
    assert raw(store, "SELECT count(*) FROM findings") == [(2 * len(big),)]
    if store.path is not None:  # SQLite gives the space back to the file system
        assert result.bytes_after < result.bytes_before
        assert store.path.stat().st_size == result.bytes_after


def test_findings_share_their_rules_text_and_load_back_unchanged(store_location: Path | str) -> None:
    store = Store(store_location)
    findings = [
        factories.finding(host=f"127.0.17.{i}", status=s) for i in range(1, 40) for s in ("fail", "waived")
    ]
    info = run_info(1)
    store.create_run(info, [], [])
    store.finish_run(info.id, "complete", info.started, findings)
    assert store.load(info.id).findings == tuple(findings)
    assert raw(store, "SELECT COUNT(*) FROM rule_texts") == [(1,)]
    [(body,)] = raw(store, "SELECT body FROM findings WHERE seq = 0")
    assert "remediation" not in body
    # A row written before the texts were shared holds its text itself, and still loads.
    raw(
        store,
        "UPDATE findings SET body = :body, rule_text = NULL WHERE seq = 0",
        body=findings[0].model_dump_json(),
    )
    assert store.load(info.id).findings == tuple(findings)


def test_every_pack_and_the_index_carry_their_own_signed_manifest(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    (tmp_path / "sign.key").write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    (tmp_path / "sign.key").chmod(0o600)  # a signing key others may read is refused
    (tmp_path / "sign.pub").write_bytes(
        key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    out = tmp_path / "out"
    packs = write_owner_packs(two_owner_report(), ["json", "html"], out, "vi", sign_key=tmp_path / "sign.key")
    for entry in packs.index.packs:
        assert verify_bundle(out / entry.directory, tmp_path / "sign.pub").ok
    assert verify_bundle(out, tmp_path / "sign.pub").ok
    page = (out / "index.html").read_text()
    assert "Chị A &lt;a@a.example.vn&gt;" in page
    (out / packs.index.packs[1].directory / "report.json").write_text("{}")
    assert not verify_bundle(out, tmp_path / "sign.pub").ok
