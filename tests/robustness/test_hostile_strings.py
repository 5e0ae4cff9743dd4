"""Inventory text on its way into the outputs that the hostile-target lab does not read: the
department's index of owner packs and the mail each agency gets.

People write inventories (and `inventory import` copies spreadsheet cells), so an owner or a
contact name can hold a NUL, a terminal escape, a bidi override or a line break. Each must reach
a reader as visible, inert text on the line it belongs to; the mail goes through a real SMTP
server on 127.0.221.0/24.
"""

import csv
import io
import json
import re
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from attt.reports.csv import CsvRenderer
from attt.reports.owners import write_owner_packs
from attt.reports.pdf import PdfRenderer
from attt.reports.sarif import SarifRenderer
from attt.scanner.config import EmailSettings, NotifySettings
from attt.scanner.models.report import Report
from attt.scanner.models.target import Contact, Owner
from attt.scanner.notify import changes_since, notify
from attt.scanner.store import Store
from tests import factories
from tests.robustness.conftest import run_attt
from tests.servers.mail import SMTP_PASSWORD, SMTP_USER, smtp_server
from tests.servers.mail import self_signed as mail_cert

NET = "127.0.221"
HOST = f"{NET}.25"
PORT = 2589
RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069]")
"""Characters that act on a terminal or a mail reader, or reorder what it shows."""
OWNER = "Sở A\x00\x1b[2J\u202e<script>alert(1)</script>"
CONTACT = "Phòng CNTT\n\nĐã khắc phục / Fixed: 99\x1b]0;pwn\x07"
"""A contact name that, taken as written, forges a line of the mail's body."""
EMAIL = "cntt@hatinh.example.vn"


def hostile_owner_report() -> Report:
    owners = (Owner(name=OWNER, contact=Contact(name=CONTACT, email=EMAIL)),)
    findings = [factories.finding(sys="a-portal", host="127.0.221.1")]
    systems = [factories.system("a-portal", owner=OWNER)]
    return factories.report(
        findings, systems, owners=owners, judged_by={"a-portal": "x"}, province="Hà\x1bTĩnh"
    )


def test_the_owner_index_shows_owner_and_contact_as_inert_text(tmp_path: Path) -> None:
    write_owner_packs(hostile_owner_report(), ["html"], tmp_path, "en")
    page = (tmp_path / "index.html").read_text("utf-8")
    assert not RAW.findall(page)
    assert "<script>alert" not in page
    assert "Sở A\\x00\\x1b[2J\\u202e&lt;script&gt;" in page
    assert "Hà\\x1bTĩnh" in page


def test_the_owners_mail_body_keeps_each_name_on_its_line_and_inert(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ATTT_SMTP_PASSWORD", SMTP_PASSWORD)
    report = hostile_owner_report()
    store = Store(tmp_path / "runs.db")
    store.create_run(report.run, report.systems, report.targets)
    index = write_owner_packs(report, ["json"], tmp_path / "out", "en").index
    cert, key = mail_cert(tmp_path, HOST)
    email = EmailSettings(host=HOST, port=PORT, username=SMTP_USER, password_env="ATTT_SMTP_PASSWORD",
                          sender=SMTP_USER, ca_file=cert, timeout=5)  # fmt: skip
    settings = NotifySettings(email=email, retries=1, backoff_seconds=0)
    with smtp_server(cert, key, PORT, host=HOST) as mailbox:
        (record,) = notify(store, report, tmp_path / "out", index, changes_since(report, None), settings)
    assert record.status == "sent", record.detail
    (message,) = mailbox.messages
    body = message.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    assert not RAW.findall(text)
    assert not RAW.findall(str(message["Subject"]))
    # The forged line is not a line of its own: the name stays on the greeting's line.
    assert not any(line.startswith("Đã khắc phục / Fixed: 99") for line in text.splitlines())
    assert "Kính gửi Phòng CNTT Đã khắc phục / Fixed: 99\\x1b]0;pwn\\x07," in text
    assert "Sở A\\x00\\x1b[2J\\u202e<script>" in text


TLS_HOST = f"{NET}.26"
HSTS = b"max-age=31536000; \x1b[2J\x1b]0;pwn\x07=1; " + b"A" * 1500 + b"; \xe2\x80\xaepreload"
"""An HSTS header of directives no one knows, full of terminal escapes: sslyze's own parser
logged each one as sent; attt's (checks/tls/_pool.py) reads the max-age and logs nothing."""
MAX_TERMINAL_LINE = 1100


@pytest.fixture(scope="module")
def hostile_hsts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An HTTPS server on TLS_HOST:443 answering every request with the HSTS header above; it
    takes at most 200 connections and stops with the module."""
    cert, key = mail_cert(tmp_path_factory.mktemp("hsts"), TLS_HOST)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listener = socket.create_server((TLS_HOST, 443))
    listener.settimeout(0.2)
    stop = threading.Event()
    reply = b"HTTP/1.1 200 OK\r\nStrict-Transport-Security: " + HSTS + b"\r\nContent-Length: 2\r\n"
    reply += b"Connection: close\r\n\r\nok"

    def answer(conn: socket.socket) -> None:
        conn.settimeout(5)
        try:
            with context.wrap_socket(conn, server_side=True) as tls:
                tls.recv(4096)
                tls.sendall(reply)
        except OSError:
            pass  # a scanner's probe hangs up mid-handshake on purpose

    def serve() -> None:
        for _ in range(200):
            while not stop.is_set():
                try:
                    conn, _ = listener.accept()
                    break
                except TimeoutError:
                    continue
            else:
                return
            threading.Thread(target=answer, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield TLS_HOST
    stop.set()
    thread.join(5)
    listener.close()


def test_a_hostile_hsts_header_is_read_and_never_reaches_the_terminal_raw(
    hostile_hsts: str, tmp_path: Path
) -> None:
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        f"province: Hà Tĩnh\nscope: [{NET}.0/24]\nsystems:\n  - id: hsts\n    name: HSTS\n"
        f"    owner: Sở A\n    level: 3\n    hosts:\n      - address: {hostile_hsts}\n"
        "        services: [{port: 443, kind: tls}]\n"
    )
    started = time.monotonic()
    run = run_attt(
        ["scan", "-i", str(inventory), "--check", "tls", "--out", str(tmp_path / "out"), "--format", "json",
         "--timeout", "20", "--db", f"sqlite:///{tmp_path / 'runs.db'}"],
        timeout=120,
    )  # fmt: skip
    assert run.returncode in (1, 3), run.terminal
    assert time.monotonic() - started < 120
    assert "Traceback" not in run.terminal
    assert not RAW.findall(run.terminal)
    for line in run.stderr.splitlines():
        assert line.startswith(("attt", "[")), line[:200]
        assert len(line) <= MAX_TERMINAL_LINE, line[:200]
    [observation] = json.loads((tmp_path / "out" / "report.json").read_text())["observations"]
    assert observation["data"]["hsts"]["max_age"] == 31536000, observation


LINK = "[open the fix](https://evil.example/x) \\[0](javascript:alert(1))"
"""Text that, in a SARIF message, is an embedded link (SARIF 2.1.0 §3.11.6) a viewer renders as
one; the second hides its bracket behind a backslash of its own."""


def _has_link(text: str) -> bool:
    """Whether `text` holds an embedded link as SARIF reads one: an unescaped `[`, then an
    unescaped `]` followed at once by `(`; a backslash escapes the character after it."""
    opened, escaped = False, False
    for i, char in enumerate(text):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "[":
            opened = True
        elif char == "]" and opened and text[i + 1 : i + 2] == "(":
            return True
    return False


def _messages(node: object) -> list[str]:
    """Every SARIF message object's text in `node`."""
    if isinstance(node, dict):
        found = [node["text"]] if set(node) >= {"text"} and isinstance(node["text"], str) else []
        return found + [t for v in node.values() for t in _messages(v)]
    if isinstance(node, list):
        return [t for v in node for t in _messages(v)]
    return []


def test_sarif_messages_never_carry_a_link_a_target_wrote() -> None:
    findings = [
        factories.finding("TLS-CERT-SUBJECT", "fail", message=LINK, evidence={"observed": LINK}),
        factories.finding("SSH-BANNER", "error", port=22, check="ssh", message=LINK),
    ]
    observations = [factories.observation("ssh", port=22, error=LINK)]
    report = factories.report(findings, observations=observations)
    log = json.loads(SarifRenderer().render(report, "en"))
    texts = _messages(log["runs"][0])
    assert _has_link(LINK)
    assert any("open the fix" in t for t in texts)
    for text in texts:
        assert not _has_link(text), text
    result = log["runs"][0]["results"][0]
    # Unescaped as the standard says a viewer does, the message reads as the target sent it.
    assert re.sub(r"\\(.)", r"\1", result["message"]["text"]).endswith(LINK)
    notification = log["runs"][0]["invocations"][0]["toolExecutionNotifications"][0]
    assert re.sub(r"\\(.)", r"\1", notification["message"]["text"]) == LINK


def _unreachable_inventory(path: Path) -> Path:
    """One system whose TLS port nobody listens on: the scan ends at once, with `error`."""
    path.write_text(
        f"province: Hà Tĩnh\nscope: [{NET}.0/24]\nsystems:\n  - id: gone\n    name: Gone\n"
        f"    owner: Sở A\n    level: 3\n    hosts:\n      - address: {NET}.27\n"
        "        services: [{port: 443, kind: tls}]\n"
    )
    return path


@pytest.mark.parametrize("where", ["inventory", "out"])
def test_a_path_that_is_not_utf8_is_a_one_line_usage_error(tmp_path: Path, where: str) -> None:
    # What `os.fsdecode` makes of a Latin-1 file name: the run could store it nowhere.
    odd = tmp_path / "h\udcf4-so.yaml"
    inventory = _unreachable_inventory(tmp_path / "inventory.yaml")
    args = ["--check", "tls", "--timeout", "3", "--db", f"sqlite:///{tmp_path / 'runs.db'}"]
    if where == "inventory":
        args += ["-i", str(odd), "--out", str(tmp_path / "out")]
        odd.write_bytes(inventory.read_bytes())
    else:
        args += ["-i", str(inventory), "--out", str(odd)]
    run = run_attt(["scan", *args], timeout=60)
    assert run.returncode == 2, run.terminal
    assert "Traceback" not in run.terminal
    assert len(run.stderr.splitlines()) == 1 and "UTF-8" in run.stderr, run.stderr
    assert "h\\xf4-so.yaml" in run.stderr


def test_a_login_name_that_is_not_utf8_is_recorded_as_visible_text(tmp_path: Path) -> None:
    inventory = _unreachable_inventory(tmp_path / "inventory.yaml")
    args = ["-i", str(inventory), "--check", "tls", "--timeout", "3", "--out", str(tmp_path / "out"),
            "--format", "json", "--db", f"sqlite:///{tmp_path / 'runs.db'}"]  # fmt: skip
    run = run_attt(["scan", *args], timeout=60, env={"USER": "ng\udcf4\x1b[2J", "LOGNAME": "ng\udcf4\x1b[2J"})
    assert run.returncode == 3, run.terminal
    assert "Traceback" not in run.terminal
    history = run_attt(["history", "--db", f"sqlite:///{tmp_path / 'runs.db'}"], timeout=60)
    assert "manual:ng\\xf4\\x1b[2J" in history.stdout, history.terminal


SPREADSHEET_CELL_CHARS = 32_767
"""The most a cell of Excel or LibreOffice Calc holds; past it their import cuts or refuses."""


def test_a_csv_cell_never_outgrows_what_a_spreadsheet_holds_and_says_where_the_rest_is() -> None:
    # A hostile web server's hundred long cookies, as the cookie rule's evidence lists them.
    cookies = [{"name": f"c{i}" + "x" * 1000, "secure": False} for i in range(100)]
    report = factories.report([factories.finding("WEB-COOKIES", "fail", evidence={"observed": cookies})])
    rows = list(csv.reader(io.StringIO(CsvRenderer().render(report, "en").decode("utf-8-sig"), newline="")))
    cells = [cell for row in rows for cell in row]
    assert max(len(cell) for cell in cells) <= SPREADSHEET_CELL_CHARS
    (observed,) = [cell for cell in cells if cell.startswith('[{"name": "c0')]
    assert observed.endswith("report.json)")


A4_WIDTH_PT = 595.28
RIGHT_MARGIN_PT = 12 / 25.4 * 72
"""report.css: `@page { size: A4; margin: 16mm 12mm 20mm }`."""


def _long_texts_report() -> Report:
    """Inventory and target text of the longest length attt keeps, none with a place to break."""
    name, owner = "N" + "x" * 298 + "Z", "O" + "o" * 298 + "W"
    findings = [
        factories.finding("TLS-CERT-SUBJECT", "fail", sys="a-portal", message="M" + "m" * 1000,
                          evidence={"observed": "E" + "y" * 1022, "expected": "CN=a"}),
        factories.finding("PORT-TELNET", "waived", sys="a-portal", port=23,
                          waiver=factories.waiver(reason="R" + "r" * 600, approved_by="A" + "a" * 300)),
        factories.finding("SSH-BANNER", "error", sys="a-portal", port=22, check="ssh", message="B" * 500),
    ]  # fmt: skip
    observations = [factories.observation("ssh", sys="a-portal", port=22, error="T" + "t" * 290)]
    return factories.report(
        findings, [factories.system("a-portal", name=name, owner=owner)], observations=observations
    )


def test_the_pdf_keeps_long_unbroken_names_and_texts_inside_the_page(tmp_path: Path) -> None:
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(PdfRenderer().render(_long_texts_report(), "en"))
    boxes = tmp_path / "boxes.html"
    subprocess.run(["pdftotext", "-bbox", str(pdf), str(boxes)], check=True, timeout=60)
    right = [
        float(x)
        for x in re.findall(r'<word xMin="[0-9.]+" yMin="[0-9.]+" xMax="([0-9.]+)"', boxes.read_text())
    ]
    assert right, "pdftotext found no words"
    # A word past the right margin is cut off where the page ends, on paper and on screen.
    assert max(right) <= A4_WIDTH_PT - RIGHT_MARGIN_PT + 1


def test_file_names_are_shown_inert_by_the_commands_that_name_them(tmp_path: Path) -> None:
    # A name as a file manager lets anyone save it: an escape that clears the screen, a bidi override.
    odd = "\x1b[2J\u202eiv.yaml"
    inventory = _unreachable_inventory(tmp_path / odd)
    policy = tmp_path / f"{odd}-policy.yaml"
    policy.write_text("id: p\ntitle: P\nextends: [vn-level-1]\n")
    bad = tmp_path / f"{odd}-bad.yaml"
    bad.write_text("id: p\ntitle: P\nrules: 3\nwaivers: 4\n")
    for args in (["inventory", "validate", str(inventory)], ["policy", "validate", str(policy), str(bad)]):
        run = run_attt(args, timeout=60)
        assert run.returncode in (0, 2) and "Traceback" not in run.terminal, run.terminal
        assert not RAW.findall(run.terminal), run.terminal
        assert "\\x1b[2J\\u202eiv.yaml" in run.terminal
