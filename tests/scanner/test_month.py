"""A month of a province's weekly cycle, end to end: the register imported from .xlsx (one bad
row), four scheduled scans of a changing fleet of loopback listeners, a pack and an email per
owner agency every week (read back from a real SMTP server), the department's webhook, a waiver
that expires in week three, and a prune at the end.

The weeks are dated through the pipeline's one clock (`pipeline.utcnow`): nothing sleeps.
"""

import io
import json
import textwrap
import zipfile
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import pytest
from click.testing import CliRunner
from openpyxl import Workbook

from attt.scanner import pipeline
from attt.scanner.cli import main
from tests.servers.listeners import tcp_listeners
from tests.servers.mail import (
    MAIL_HOST,
    SMTP_PASSWORD,
    SMTP_USER,
    Mailbox,
    self_signed,
    smtp_server,
    webhook_receiver,
)

SMTP_PORT = 2587
A, B, C = "Sở Khoa học và Công nghệ", "UBND xã Thạch Hà", "UBND phường Bắc Hồng"
HOSTS = {A: "127.0.17.1", B: "127.0.17.2", C: "127.0.17.3"}
SYSTEMS = {A: "cong-dich-vu-cong", B: "mot-cua-xa-thach-ha", C: "cong-thong-tin-phuong-bac-hong"}
EMAILS = {A: "vana@sokhcn.example.vn", B: "thib@thachha.example.vn", C: "vanc@bachong.example.vn"}
WEEKS = [datetime(2027, 3, d, 2, 0, tzinfo=UTC) for d in (1, 8, 15, 22)]
FLEET = [
    {A: (8080,), B: (8080, 2323), C: (8080,)},
    {A: (8080,), B: (8080, 2323), C: (8080, 2323)},  # week 2: the ward opens telnet
    {A: (8080,), B: (8080, 2323), C: (8080,)},  # week 3: the ward closes it; the commune's waiver expired
    {A: (), B: (8080, 2323), C: (8080,)},  # week 4: the department's portal is down
]

POLICY = """\
id: month
title: Weekly cycle test policy
settings:
  ports: {ports: [8080, 2323]}
rules:
  - id: MONTH-TELNET
    control: ports.forbidden
    params: {ports: [2323]}
    severity: high
    title: {vi: "Không mở Telnet", en: "Telnet is closed"}
    remediation: {vi: "Tắt Telnet.", en: "Turn Telnet off."}
  - id: MONTH-DECLARED
    control: ports.declared_reachable
    severity: medium
    title: {vi: "Dịch vụ đã khai báo hoạt động", en: "Declared services answer"}
    remediation: {vi: "Kiểm tra dịch vụ.", en: "Check the service."}
"""

WAIVERS = """\
waivers:
  - rule: MONTH-TELNET
    system: mot-cua-xa-thach-ha
    reason: "Thiết bị một cửa cũ, thay trong tháng 3"
    approved_by: "Giám đốc Trung tâm CNTT tỉnh"
    decision: "QĐ 45/QĐ-SKHCN"
    expires: 2027-03-14
"""


def register(path: Path) -> None:
    """The register as a province keeps it: Vietnamese headers, a running number, one bad row."""
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["STT", "Tên hệ thống", "Cơ quan chủ quản", "Cấp độ", "Địa chỉ IP / Tên miền",
                  "Cổng dịch vụ", "Người liên hệ", "Email", "Điện thoại", "Số quyết định",
                  "Ngày quyết định"])  # fmt: skip
    sheet.append([1, "Cổng dịch vụ công", A, 3, HOSTS[A], "8080", "Nguyễn Văn A", EMAILS[A], "0239 3855 001",
                  "QĐ 123/QĐ-UBND", datetime(2025, 9, 1)])  # fmt: skip
    sheet.append([2, "Một cửa xã Thạch Hà", B, 2, HOSTS[B], 8080, "Trần Thị B", EMAILS[B], None, None, None])
    sheet.append(
        [3, "Cổng thông tin phường Bắc Hồng", C, "Cấp độ 2", HOSTS[C], "8080", "Lê Văn C", EMAILS[C]]
    )
    sheet.append([4, "Camera phường", C, 1, "127.0.17.4-9", "554", None, None])
    book.save(path)


@pytest.fixture
def office(tmp_path: Path) -> Iterator[tuple[Path, Mailbox, list[dict[str, object]]]]:
    """The department's side: mail server, webhook receiver and an attt.toml pointing at them."""
    cert, key = self_signed(tmp_path, MAIL_HOST)
    (tmp_path / "month.yaml").write_text(POLICY)
    (tmp_path / "waivers.yaml").write_text(WAIVERS)
    with smtp_server(cert, key, SMTP_PORT) as mailbox, webhook_receiver() as (url, hooks):
        (tmp_path / "attt.toml").write_text(
            textwrap.dedent(f"""\
                inventory = "inventory.yaml"
                db = "runs.db"
                report_dir = "reports"
                formats = ["html", "json"]
                policies = ["month.yaml"]
                waivers = ["waivers.yaml"]
                fail_on = "high"
                per_owner = true

                [notify]
                retries = 2
                backoff_seconds = 0

                [notify.email]
                host = "{MAIL_HOST}"
                port = {SMTP_PORT}
                security = "starttls"
                username = "{SMTP_USER}"
                password_env = "ATTT_SMTP_PASSWORD"
                sender = "{SMTP_USER}"
                ca_file = "{cert}"

                [notify.webhook]
                url = "{url}"
            """)
        )
        yield tmp_path / "attt.toml", mailbox, hooks.bodies


def attt(config: Path, *args: str) -> tuple[int, str, str]:
    env = {"CI": "true", "ATTT_SMTP_PASSWORD": SMTP_PASSWORD, "ATTT_TRIGGER": "schedule"}
    result = CliRunner().invoke(main, ["--config", str(config), *args], env=env)
    return result.exit_code, result.stdout, result.stderr


def by_recipient(messages: list[EmailMessage]) -> dict[str, EmailMessage]:
    return {str(m["To"]).rsplit("<", 1)[-1].rstrip(">"): m for m in messages}


def body(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def pack_files(message: EmailMessage) -> dict[str, bytes]:
    (attachment,) = list(message.iter_attachments())
    payload = attachment.get_payload(decode=True)
    assert isinstance(payload, bytes)
    with zipfile.ZipFile(io.BytesIO(payload)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def forms(text: str) -> list[bytes]:
    """A text as it may appear in a file: UTF-8, or JSON-escaped."""
    return [text.encode(), json.dumps(text)[1:-1].encode()]


def test_a_month_of_weekly_scans(
    office: tuple[Path, Mailbox, list[dict[str, object]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    config, mailbox, hooks = office
    home = config.parent
    register(home / "register.xlsx")

    # Given the register, the import takes every usable row and names the one it cannot use.
    code, _, err = attt(config, "inventory", "import", str(home / "register.xlsx"), "--province", "Hà Tĩnh",
                        "--scope", "127.0.17.0/24", "-o", str(home / "inventory.yaml"))  # fmt: skip
    assert code == 2
    assert "row 5: address '127.0.17.4-9' is not an IP address or a host name" in err
    assert "3 systems imported, 1 rows refused" in err
    assert "QĐ 123/QĐ-UBND" in (home / "inventory.yaml").read_text()

    runs: list[str] = []
    for week, (when, fleet) in enumerate(zip(WEEKS, FLEET, strict=True), start=1):
        monkeypatch.setattr(pipeline, "utcnow", lambda when=when: when)
        before = len(mailbox.messages)
        with ExitStack() as stack:
            endpoints = [(HOSTS[owner], port) for owner, ports in fleet.items() for port in ports]
            stack.enter_context(tcp_listeners(endpoints, banner=b"hello\r\n"))
            code, out, err = attt(config, "scan", "--check", "ports", "--timeout", "20")
        assert out.startswith("run "), out + err
        run_id = out.split()[1]
        runs.append(run_id)
        # The notifications never change the scan's own result.
        assert code == (0 if week == 1 else 1), out + err
        week_mail = by_recipient(mailbox.messages[before:])
        assert sorted(week_mail) == sorted(EMAILS.values()), f"week {week}: {out}{err}"
        for owner, address in EMAILS.items():
            files = pack_files(week_mail[address])
            assert all(name.startswith(f"{owner_dir(home, run_id, owner)}/") for name in files)
            assert {n.split("/", 1)[1] for n in files} == {"manifest.json", "report.html", "report.json"}
        texts = {owner: body(week_mail[address]) for owner, address in EMAILS.items()}
        for address, message in week_mail.items():  # kept beside the reports, for a person to read
            (home / f"week{week}-{address}.eml").write_bytes(message.as_bytes())
        if week == 2:
            assert "Lỗi mới / New failures: 1" in texts[C]
            assert "MONTH-TELNET cong-thong-tin-phuong-bac-hong 127.0.17.3:" in texts[C], texts[C]
            assert "Lỗi mới / New failures: 0" in texts[A]
        if week == 3:
            assert "waiver of MONTH-TELNET on mot-cua-xa-thach-ha expired on 2027-03-14" in err
            assert "MONTH-TELNET mot-cua-xa-thach-ha 127.0.17.2:" in texts[B]
            assert "(miễn trừ hết hạn 2027-03-14 / waiver expired 2027-03-14)" in texts[B]
            assert "Đã khắc phục / Fixed: 1" in texts[C]
        if week == 4:
            # The portal is down: a new error, never a pass, never "fixed".
            assert "Chưa đánh giá được / Not evaluated: 1" in texts[A]
            assert "PORTS-PROBE-ERROR cong-dich-vu-cong 127.0.17.1:" in texts[A]
            assert "Đã khắc phục / Fixed: 0" in texts[A]
            assert "Lỗi mới / New failures: 0" in texts[B]
        assert len(hooks) == week

    # Each pack holds its agency and nothing of any other.
    last = home / "reports" / runs[-1]
    index = json.loads((last / "index.json").read_text())
    assert [(p["owner"], p["open_high"]) for p in index["packs"]] == [(A, 0), (C, 0), (B, 1)]
    for owner in EMAILS:
        pack = last / owner_dir(home, runs[-1], owner)
        content = b"".join(p.read_bytes() for p in pack.rglob("*") if p.is_file())
        for other in set(EMAILS) - {owner}:
            for text in (other, SYSTEMS[other], HOSTS[other], EMAILS[other]):
                assert not any(form in content for form in forms(text)), (owner, text)
        assert attt(config, "verify", str(pack))[0] == 0
    assert attt(config, "verify", str(last))[0] == 0
    page = (last / owner_dir(home, runs[-1], A) / "report.html").read_text()
    assert "QĐ 123/QĐ-UBND, 2025-09-01" in page
    assert "Nguyễn Văn A · vana@sokhcn.example.vn · 0239 3855 001" in page
    assert "month" in page
    assert hooks[1]["new_failures"] == [
        {"rule_id": "MONTH-TELNET", "severity": "high", "system": SYSTEMS[C], "host": HOSTS[C], "port": None,
         "status": "fail"}
    ]  # fmt: skip

    # A run notifies once: asking again sends nothing more.
    sent = len(mailbox.messages)
    assert attt(config, "notify", runs[-1], "--out", str(home / "again"))[0] == 0
    assert len(mailbox.messages) == sent
    code, out, _ = attt(config, "history")
    assert out.count("schedule") == 4
    assert out.count("notify email") == 12

    # The end of the month: keep the last run; its baseline stays with it.
    code, out, _ = attt(config, "prune", "--keep-last", "1")
    assert code == 0, out
    assert f"removed {runs[0]}" in out
    assert f"removed {runs[1]}" in out
    assert f"kept {runs[2]}: a kept run uses it as its baseline" in out
    assert "2 run(s) removed" in out
    _, out, _ = attt(config, "history")
    assert [line.split()[0] for line in out.splitlines() if not line.startswith(" ")] == runs[:1:-1]


def owner_dir(home: Path, run_id: str, owner: str) -> str:
    index = json.loads((home / "reports" / run_id / "index.json").read_text())
    return next(str(p["directory"]) for p in index["packs"] if p["owner"] == owner)


def test_a_notification_that_fails_changes_nothing_of_the_scan_and_is_in_history(tmp_path: Path) -> None:
    (tmp_path / "month.yaml").write_text(POLICY)
    (tmp_path / "inventory.yaml").write_text(
        textwrap.dedent(f"""\
            province: Hà Tĩnh
            scope: [127.0.17.0/24]
            owners: [{{name: "{B}", contact: {{name: Trần Thị B, email: "{EMAILS[B]}"}}}}]
            systems:
              - {{id: {SYSTEMS[B]}, name: Một cửa, owner: "{B}", level: 2,
                  hosts: [{{address: "{HOSTS[B]}", services: [{{port: 8080}}]}}]}}
        """)
    )
    # Nothing listens on the mail port: every attempt is refused.
    (tmp_path / "attt.toml").write_text(
        textwrap.dedent(f"""\
            inventory = "inventory.yaml"
            db = "runs.db"
            report_dir = "reports"
            policies = ["month.yaml"]
            [notify]
            retries = 2
            backoff_seconds = 0
            [notify.email]
            host = "{MAIL_HOST}"
            port = {SMTP_PORT}
            sender = "{SMTP_USER}"
        """)
    )
    config = tmp_path / "attt.toml"
    with tcp_listeners([(HOSTS[B], 8080), (HOSTS[B], 2323)], banner=b"hello\r\n"):
        code, out, err = attt(config, "scan", "--check", "ports", "--timeout", "20")
    assert code == 1, out + err  # telnet is open: the scan's verdict, whatever the mail did
    assert f"notify: email {EMAILS[B]}: FAILED after 2 attempts: ConnectionRefusedError" in out
    _, out, _ = attt(config, "history")
    assert f"notify email {EMAILS[B]}: failed, 2 attempt(s) (ConnectionRefusedError" in out
