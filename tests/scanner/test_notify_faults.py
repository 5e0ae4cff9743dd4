"""Notifications against a mail server that misbehaves, and runs that must not be announced.

Each case once sent a mail twice, lost one, or announced a run that had not ended. The SMTP
server is the weekly-cycle fixture's (aiosmtpd, STARTTLS and a login), here on 127.0.206.0/24."""

import json
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from attt.reports.owners import write_owner_packs
from attt.scanner.cli import main
from attt.scanner.config import EmailSettings, NotifySettings, WebhookSettings, load_config
from attt.scanner.errors import ConfigError
from attt.scanner.models.finding import Finding, FindingStatus
from attt.scanner.models.owners import PackIndex
from attt.scanner.models.report import PolicyRef, Report
from attt.scanner.models.target import Contact, Owner
from attt.scanner.notify import changes_since, notify, owner_email, webhook_body
from attt.scanner.store import NotificationRecord, Store
from tests import factories
from tests.servers.mail import SMTP_PASSWORD, SMTP_USER, Mailbox, self_signed, smtp_server, webhook_receiver

HOST = "127.0.206.50"
PORT = 2588
SHARED = "cntt@hatinh.example.vn"
"""One office's address, the contact of two agencies (a province's IT office often is)."""
A, B = "Sở A", "UBND xã B"


def shared_contact_report() -> Report:
    findings = [
        factories.finding(sys="a-portal", host="127.0.206.1"),
        factories.finding(sys="b-mail", host="127.0.206.2"),
    ]
    owners = (
        Owner(name=A, contact=Contact(name="Phòng CNTT", email=SHARED)),
        Owner(name=B, contact=Contact(name="Phòng CNTT", email=SHARED)),
    )
    systems = [factories.system("a-portal", owner=A), factories.system("b-mail", owner=B)]
    return factories.report(findings, systems, owners=owners, judged_by={"a-portal": "x", "b-mail": "x"})


def mail_settings(cert: Path, retries: int) -> NotifySettings:
    email = EmailSettings(host=HOST, port=PORT, username=SMTP_USER, password_env="ATTT_SMTP_PASSWORD",
                          sender=SMTP_USER, ca_file=cert, timeout=5)  # fmt: skip
    return NotifySettings(email=email, retries=retries, backoff_seconds=0)


def packs(report: Report, out: Path, *, first_only: bool = False) -> PackIndex:
    """The owners' packs of `report`, written under `out`; with `first_only`, one agency's."""
    index = write_owner_packs(report, ["json"], out, "en").index
    return index.model_copy(update={"packs": index.packs[:1]}) if first_only else index


def mailed(
    store: Store, report: Report, out: Path, index: PackIndex, cert: Path, retries: int
) -> list[NotificationRecord]:
    """Send the run's notifications by mail, `retries` attempts each."""
    return notify(store, report, out, index, changes_since(report, None), mail_settings(cert, retries))


def subjects(mailbox: Mailbox) -> list[str]:
    return sorted(str(m["Subject"]).split(": ", 1)[0] for m in mailbox.messages)


@pytest.fixture
def mail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Report, Store]:
    monkeypatch.setenv("ATTT_SMTP_PASSWORD", SMTP_PASSWORD)
    report = shared_contact_report()
    store = Store(tmp_path / "runs.db")
    store.create_run(report.run, report.systems, report.targets)
    return tmp_path, report, store


def test_two_agencies_sharing_a_contact_each_get_their_mail_exactly_once_across_retries(
    mail: tuple[Path, Report, Store],
) -> None:
    tmp_path, report, store = mail
    cert, key = self_signed(tmp_path, HOST)
    index = packs(report, tmp_path / "out")
    prefix = "[attt] Hà Tĩnh · "
    with smtp_server(cert, key, PORT, host=HOST) as mailbox:
        mailbox.refuse = {A}  # the server is busy for A's mail only: 451, every time
        records = mailed(store, report, tmp_path / "out", index, cert, 2)
        assert sorted(r.status for r in records) == ["failed", "sent"]
        assert subjects(mailbox) == [prefix + B]
        mailbox.refuse = set()
        # `attt notify RUN` later: A's mail goes, B's is not sent again.
        again = mailed(store, report, tmp_path / "out", index, cert, 2)
        assert [r.status for r in again] == ["sent"]
        assert mailed(store, report, tmp_path / "out", index, cert, 2) == []
    assert subjects(mailbox) == [prefix + A, prefix + B]
    assert [n.status for n in store.notifications(report.run.id)] == ["sent", "sent"]
    assert all(SHARED in n.recipient for n in store.notifications(report.run.id))


def test_a_mail_the_server_took_is_not_sent_again_when_it_answers_quit_with_an_error(
    mail: tuple[Path, Report, Store],
) -> None:
    tmp_path, report, store = mail
    cert, key = self_signed(tmp_path, HOST)
    index = packs(report, tmp_path / "out", first_only=True)
    with smtp_server(cert, key, PORT, host=HOST) as mailbox:
        mailbox.quit_reply = "421 4.3.2 shutting down"  # after "250 OK" to the message itself
        (record,) = mailed(store, report, tmp_path / "out", index, cert, 3)
    assert (record.status, record.attempts) == ("sent", 1)
    assert len(mailbox.messages) == 1


def test_an_incomplete_run_is_not_announced_by_attt_notify(mail: tuple[Path, Report, Store]) -> None:
    tmp_path, report, store = mail
    cert, key = self_signed(tmp_path, HOST)
    run = report.run.id
    store.finish_run(run, "incomplete", report.run.finished or report.run.started, report.findings)
    (tmp_path / "attt.toml").write_text(
        textwrap.dedent(f"""\
            db = "runs.db"
            [notify]
            retries = 1
            [notify.email]
            host = "{HOST}"
            port = {PORT}
            username = "{SMTP_USER}"
            password_env = "ATTT_SMTP_PASSWORD"
            sender = "{SMTP_USER}"
            ca_file = "{cert}"
        """)
    )
    command = ["--config", str(tmp_path / "attt.toml"), "notify", run, "--out", str(tmp_path / "out")]
    with smtp_server(cert, key, PORT, host=HOST) as mailbox:
        results = {lang: CliRunner().invoke(main, [*command, "--lang", lang]) for lang in ("en", "vi")}
    assert mailbox.messages == []
    assert store.notifications(run) == []
    for lang, said in (("en", f"run {run} is incomplete"), ("vi", f"lượt quét {run} chưa hoàn tất")):
        result = results[lang]
        assert (result.exit_code, result.exception.__class__) == (2, SystemExit), result.output
        (line,) = result.stderr.splitlines()
        assert said in line
        assert f"attt scan --resume {run}" in line


def test_a_webhook_url_holding_a_password_is_refused_without_showing_it(tmp_path: Path) -> None:
    # Shown as the recipient on every run's output and in `attt history`, it would leak there.
    config = tmp_path / "attt.toml"
    config.write_text('[notify.webhook]\nurl = "https://so:mat-khau-hook@127.0.206.51/hooks"\n')
    with pytest.raises(ConfigError, match=r"notify\.webhook\.url: .*secrets never live") as refused:
        load_config(config)
    assert "mat-khau-hook" not in str(refused.value)
    config.write_text('[notify.webhook]\nurl = "https://so@127.0.206.51/hooks"\ntoken_env = "HOOK_TOKEN"\n')
    assert load_config(config).notify is not None


def test_a_mail_login_without_a_password_is_recorded_unsent_and_the_webhook_still_goes(
    mail: tuple[Path, Report, Store],
) -> None:
    tmp_path, report, store = mail
    cert, key = self_signed(tmp_path, HOST)
    index = packs(report, tmp_path / "out")
    email = EmailSettings(host=HOST, port=PORT, username=SMTP_USER, sender=SMTP_USER, ca_file=cert, timeout=5)
    with smtp_server(cert, key, PORT, host=HOST) as mailbox, webhook_receiver("127.0.206.51") as (url, hooks):
        settings = NotifySettings(email=email, webhook=WebhookSettings(url=url), retries=2, backoff_seconds=0)
        records = notify(store, report, tmp_path / "out", index, changes_since(report, None), settings)
    assert mailbox.messages == []
    assert len(hooks.bodies) == 1
    by_channel = {(r.channel, r.status, r.attempts) for r in records}
    assert by_channel == {("email", "failed", 0), ("webhook", "sent", 1)}
    assert all("a username is set but no password_env or password_file" in r.detail
               for r in records if r.channel == "email")  # fmt: skip
    assert len(store.notifications(report.run.id)) == 3


def test_an_agency_name_on_two_lines_is_mailed_with_a_one_line_subject(
    mail: tuple[Path, Report, Store],
) -> None:
    # A register's cell broken with Alt+Enter keeps its line break through `inventory import`.
    tmp_path, _, store = mail
    cert, key = self_signed(tmp_path, HOST)
    owner = "Sở Khoa học\nvà Công nghệ"
    report = factories.report(
        [factories.finding(sys="a-portal", host="127.0.206.1")],
        [factories.system("a-portal", owner=owner)],
        owners=(Owner(name=owner, contact=Contact(name="Phòng\r\nCNTT", email=SHARED)),),
        judged_by={"a-portal": "x"},
    )
    index = packs(report, tmp_path / "out")
    with smtp_server(cert, key, PORT, host=HOST) as mailbox:
        (record,) = mailed(store, report, tmp_path / "out", index, cert, 1)
    assert record.status == "sent", record.detail
    (message,) = mailbox.messages
    assert str(message["Subject"]).startswith("[attt] Hà Tĩnh · Sở Khoa học và Công nghệ: 1 lỗi mới")
    assert str(message["To"]) == f"Phòng CNTT <{SHARED}>"


def test_an_address_a_mail_header_cannot_hold_as_written_is_recorded_unsent_not_misdirected(
    mail: tuple[Path, Report, Store],
) -> None:
    # The inventory takes these; as a header, the first would become <cntt> (another mailbox)
    # and the second cannot be written at all.
    tmp_path, _, store = mail
    cert, key = self_signed(tmp_path, HOST)
    contacts = {"Sở A": "cntt:so@hatinh.example.vn", "UBND xã B": "cntt@tỉnh.example.vn", "Sở C": SHARED}
    systems = [factories.system(f"s{n}", owner=owner) for n, owner in enumerate(contacts)]
    report = factories.report(
        [factories.finding(sys=s.id, host=f"127.0.206.{n}") for n, s in enumerate(systems, start=1)],
        systems,
        owners=tuple(Owner(name=o, contact=Contact(name="CNTT", email=e)) for o, e in contacts.items()),
        judged_by={s.id: "x" for s in systems},
    )
    index = packs(report, tmp_path / "out")
    with smtp_server(cert, key, PORT, host=HOST) as mailbox:
        records = mailed(store, report, tmp_path / "out", index, cert, 2)
    assert [str(m["To"]) for m in mailbox.messages] == [f"CNTT <{SHARED}>"]
    outcome = {r.recipient: (r.status, r.attempts, r.detail) for r in records}
    assert outcome[SHARED] == ("sent", 1, "")
    for address in (contacts["Sở A"], contacts["UBND xã B"]):
        assert outcome[address] == (
            "failed", 0, f"mail: {address!r} is not an address a mail can be sent to as written"
            " (an internationalised domain goes in its xn-- form)"
        )  # fmt: skip


# A server that offers no TLS: aiosmtpd warns that it would take a login in clear text.
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_a_server_without_starttls_gets_neither_the_login_nor_the_mail(
    mail: tuple[Path, Report, Store],
) -> None:
    tmp_path, report, store = mail
    cert, key = self_signed(tmp_path, HOST)
    index = packs(report, tmp_path / "out")
    with smtp_server(cert, key, PORT, host=HOST, plain=True) as mailbox:
        records = mailed(store, report, tmp_path / "out", index, cert, 2)
    assert mailbox.messages == []
    detail = "SMTPNotSupportedError: STARTTLS extension not supported by server."
    assert {(r.status, r.attempts, r.detail) for r in records} == {("failed", 2, detail)}


def test_a_connection_cut_after_mail_from_is_retried_and_the_mail_goes_once(
    mail: tuple[Path, Report, Store],
) -> None:
    tmp_path, report, store = mail
    cert, key = self_signed(tmp_path, HOST)
    index = packs(report, tmp_path / "out", first_only=True)
    with smtp_server(cert, key, PORT, host=HOST) as mailbox:
        mailbox.drops = 1
        (record,) = mailed(store, report, tmp_path / "out", index, cert, 3)
    assert (record.status, record.attempts) == ("sent", 2)
    assert len(mailbox.messages) == 1


def test_a_subject_never_reads_clean_when_hosts_could_not_be_evaluated(tmp_path: Path) -> None:
    # The agency's only host was unreachable from its zone's worker: nothing failed, nothing judged.
    report = factories.report(
        [factories.finding(sys="a-portal", host="127.0.206.1", status="error")],
        [factories.system("a-portal", owner=A)],
        owners=(Owner(name=A, contact=Contact(name="CNTT", email=SHARED)),),
        judged_by={"a-portal": "x"},
    )
    index = packs(report, tmp_path / "out")
    (entry,) = index.packs
    changes = changes_since(report, None)
    message = owner_email(report, entry, tmp_path / "out" / entry.directory, changes, SHARED)
    assert str(message["Subject"]) == (
        f"[attt] Hà Tĩnh · {A}: 0 lỗi mới / new failures, 1 chưa đánh giá được / not evaluated,"
        " 0 đã khắc phục / fixed"
    )


def test_a_rule_loosened_since_the_baseline_is_not_mailed_as_the_agencys_fix(tmp_path: Path) -> None:
    # The server did not change: the baseline's failure passes under the new content of the policy.
    def run(status: FindingStatus, sha: str, run_id: str) -> Report:
        policy = PolicyRef(id="vn-level-3", version="2026.1", sha256=sha * 64)
        finding = factories.finding(sys="a-portal", host="127.0.206.1", status=status)
        return factories.report(
            [finding],
            [factories.system("a-portal", owner=A)],
            owners=(Owner(name=A, contact=Contact(name="CNTT", email=SHARED)),),
            judged_by={"a-portal": "vn-level-3"},
            policies=(policy,),
            id=run_id,
        )

    previous, report = run("fail", "1", "run-1"), run("pass", "2", "run-2")
    changes = changes_since(report, previous)
    assert changes.fixed == () and changes.new_failures == ()
    index = packs(report, tmp_path / "out")
    (entry,) = index.packs
    message = owner_email(report, entry, tmp_path / "out" / entry.directory, changes, SHARED)
    assert "0 đã khắc phục / fixed" in str(message["Subject"])
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert f"policy vn-level-3 changed between the runs (sha256 {'1' * 12} → {'2' * 12})" in text
    assert "chính sách vn-level-3 đã thay đổi nội dung" in text
    assert "Judged otherwise: 1\n" in text and "(không đạt / fail → đạt / pass)" in text
    body = json.loads(webhook_body(report, index, changes))
    assert body["fixed"] == []
    assert [(r["rule_id"], r["was"], r["now"]) for r in body["rejudged"]] == [
        ("TLS-PROTO-LEGACY", "fail", "pass")
    ]
    assert body["policy_changes"][0]["en"].startswith("policy vn-level-3 changed")


def test_a_failure_last_weeks_run_could_not_see_is_mailed_as_first_seen_not_new(tmp_path: Path) -> None:
    # Last week the host did not answer; this week it answers and fails a rule.
    def run(run_id: str, finding: Finding) -> Report:
        return factories.report(
            [finding],
            [factories.system("a-portal", owner=A)],
            owners=(Owner(name=A, contact=Contact(name="CNTT", email=SHARED)),),
            judged_by={"a-portal": "vn-level-3"},
            id=run_id,
        )

    down = factories.finding(
        "TLS-PROBE-ERROR",
        "error",
        sys="a-portal",
        host="127.0.206.1",
        kind="probe_error",
        blocked=("TLS-PROTO-LEGACY",),
    )
    previous, report = run("run-1", down), run("run-2", factories.finding(sys="a-portal", host="127.0.206.1"))
    changes = changes_since(report, previous)
    assert changes.new_failures == () and len(changes.first_judged) == 1
    index = packs(report, tmp_path / "out")
    (entry,) = index.packs
    message = owner_email(report, entry, tmp_path / "out" / entry.directory, changes, SHARED)
    assert str(message["Subject"]).endswith(
        ": 0 lỗi mới / new failures, 1 lỗi lần đầu thấy / first seen, 0 đã khắc phục / fixed"
    )
    body = json.loads(webhook_body(report, index, changes))
    assert body["new_failures"] == [] and [f["rule_id"] for f in body["first_judged"]] == ["TLS-PROTO-LEGACY"]
