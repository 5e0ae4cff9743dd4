"""After a run: each owner agency's contact gets an email with its pack, the department a webhook.

Each message carries what changed since the baseline run (new failures, new errors, fixed),
or, when asked, every open failure. A message is sent once per run: what was sent is recorded
in the store and never sent again (a resumed or re-notified run sends only what is missing).
Each is tried `retries` times with doubling waits; a message that still fails is recorded with
its reason. Nothing here changes the run, its findings or its exit code.
"""

import io
import json
import re
import smtplib
import ssl
import time
import zipfile
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formataddr, make_msgid
from functools import partial
from pathlib import Path

from attt.scanner.changes import Rejudged, Side, compare_runs, finding_key
from attt.scanner.config import EmailSettings, NotifySettings, WebhookSettings, read_secret
from attt.scanner.errors import ConfigError
from attt.scanner.models.base import Text
from attt.scanner.models.finding import Finding
from attt.scanner.models.owners import PackEntry, PackIndex
from attt.scanner.models.report import Report
from attt.scanner.store import NotificationRecord, Store
from attt.scanner.text import clean_line, safe

Sleep = Callable[[float], None]


@dataclass(frozen=True)
class Changes:
    baseline: str | None
    new_failures: tuple[Finding, ...]
    new_errors: tuple[Finding, ...]
    fixed: tuple[Finding, ...]
    everything: bool = False
    """`new_failures` and `new_errors` hold every open one, not only the new ones."""
    rejudged: tuple[Rejudged, ...] = ()
    """Verdicts that changed while the policy judging the system changed: neither new nor fixed."""
    first_judged: tuple[Finding, ...] = ()
    """Failures the baseline could not judge (its probe failed, the host was not in it): news to
    the agency, but not shown as new, since they may have been there before."""
    policy_changes: tuple[Text, ...] = ()
    """How the judging changed since the baseline (`changes.Rejudging.notes`)."""

    def only(self, systems: set[str]) -> "Changes":
        def keep(items: tuple[Finding, ...]) -> tuple[Finding, ...]:
            return tuple(f for f in items if f.system in systems)

        return Changes(
            self.baseline,
            keep(self.new_failures),
            keep(self.new_errors),
            keep(self.fixed),
            self.everything,
            tuple(r for r in self.rejudged if r.finding.system in systems),
            keep(self.first_judged),
            self.policy_changes,
        )


def changes_since(report: Report, previous: Report | None, everything: bool = False) -> Changes:
    """What is news in `report` against its baseline `previous` (None: there is none), by the
    one comparison `attt diff` and the HTML use (`compare_runs`): new failures (and failures whose
    waiver expired since), new errors, fixed, and what changed with a changed policy (neither new
    nor fixed). With `everything`, every open failure and error."""
    before = previous.findings if previous is not None else ()
    was = previous or report  # without a baseline, nothing is before: how it ran is moot
    diff = compare_runs(Side(was.run, was.targets, before), Side(report.run, report.targets, report.findings))
    was_waived = {finding_key(f) for f in before if f.status == "waived"}
    old_errors = set() if everything else {finding_key(f) for f in before if f.status == "error"}
    if everything or previous is None:  # without a baseline, every failure is news
        failures = tuple(f for f in report.findings if f.status == "fail")
    else:
        expired = (f for f in diff.still if f.status == "fail" and finding_key(f) in was_waived)
        failures = (*(f for f in diff.new if f.status == "fail"), *expired)
    return Changes(
        baseline=None if previous is None else previous.run.id,
        new_failures=failures,
        new_errors=tuple(
            f for f in report.findings if f.status == "error" and finding_key(f) not in old_errors
        ),
        fixed=diff.fixed,
        everything=everything,
        rejudged=diff.rejudged,
        first_judged=() if everything or previous is None else diff.first_judged,
        policy_changes=diff.notes,
    )


def notify(
    store: Store,
    report: Report,
    packs_dir: Path,
    index: PackIndex,
    changes: Changes,
    settings: NotifySettings,
    *,
    sleep: Sleep = time.sleep,
) -> list[NotificationRecord]:
    """Send what this run has not sent yet; record and return every attempt's outcome.

    `packs_dir` holds the packs `index` lists (`attt report RUN --per-owner`)."""
    done = {(n.channel, n.recipient) for n in store.notifications(report.run.id) if n.status == "sent"}
    records: list[NotificationRecord] = []

    def attempt(channel: str, recipient: str, send: Callable[[], None] | ConfigError) -> None:
        """`send` sends it, or says why it cannot be sent at all."""
        if (channel, recipient) in done:
            return
        if isinstance(send, ConfigError):  # not worth retrying: recorded at once, for `attt history`
            record = NotificationRecord(channel, recipient, "failed", 0, str(send), datetime.now(UTC))
        else:
            record = _with_retries(channel, recipient, send, settings, sleep)
        store.record_notification(report.run.id, record)
        records.append(record)

    if settings.email is not None:
        email = settings.email
        password = _secret(email.password_env, email.password_file, "mail password")
        if password is None and email.username is not None:
            # Known before any connection: each mail is recorded unsent, the webhook still goes.
            password = ConfigError(_LOGIN_WITHOUT_SECRET)
        mailed = [(e, e.contact.email) for e in index.packs if e.contact is not None and e.contact.email]
        shared = Counter(address for _, address in mailed)
        for entry, address in mailed:
            send: Callable[[], None] | ConfigError
            if isinstance(password, ConfigError):
                send = password
            elif not _MAILBOX.fullmatch(address):
                send = ConfigError(
                    f"mail: {address!r} is not an address a mail can be sent to as written"
                    " (an internationalised domain goes in its xn-- form)"
                )
            else:
                message = owner_email(report, entry, packs_dir / entry.directory, changes, email.sender)
                send = partial(send_email, email, password, message)
            # A message is recorded under its recipient; an address that is several agencies'
            # contact gets one message per agency, each recorded (and so sent once) on its own.
            recipient = address if shared[address] == 1 else f"{address} ({entry.owner})"
            attempt("email", recipient, send)
    if settings.webhook is not None:
        hook = settings.webhook
        token = _secret(hook.token_env, hook.token_file, "webhook token")
        body = webhook_body(report, index, changes)
        attempt(
            "webhook",
            hook.url,
            token if isinstance(token, ConfigError) else partial(post_webhook, hook, token, body),
        )
    return records


_LOGIN_WITHOUT_SECRET = "mail: a username is set but no password_env or password_file"  # noqa: S105 (a message)
_MAILBOX = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
)
"""An address as a mail header holds it unchanged: the inventory's looser pattern lets through
some (`so:cntt@…` reads as a group named `so`; a non-ASCII one cannot be written) that would go
to another mailbox or not at all."""
_Secret = str | None | ConfigError
"""A secret, none configured, or why it could not be read."""


def _secret(env: str | None, file: Path | None, what: str) -> _Secret:
    try:
        return read_secret(env, file, what)
    except ConfigError as exc:
        return exc


def _with_retries(
    channel: str, recipient: str, send: Callable[[], None], settings: NotifySettings, sleep: Sleep
) -> NotificationRecord:
    detail = ""
    for attempt in range(1, settings.retries + 1):
        try:
            send()
        except (OSError, smtplib.SMTPException, ssl.SSLError, _HttpError) as exc:
            detail = safe(f"{type(exc).__name__}: {exc}", 300)
            if attempt < settings.retries:
                sleep(settings.backoff_seconds * 2 ** (attempt - 1))
            continue
        return NotificationRecord(channel, recipient, "sent", attempt, "", datetime.now(UTC))
    return NotificationRecord(channel, recipient, "failed", settings.retries, detail, datetime.now(UTC))


def _tls_context(ca_file: Path | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def send_email(settings: EmailSettings, password: str | None, message: EmailMessage) -> None:
    context = _tls_context(settings.ca_file)
    smtp: smtplib.SMTP
    if settings.security == "tls":
        smtp = smtplib.SMTP_SSL(settings.host, settings.port, timeout=settings.timeout, context=context)
    else:
        smtp = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout)
    try:
        if settings.security == "starttls":
            smtp.starttls(context=context)  # refuses to go on in plain text if the server cannot
        if settings.username is not None:
            if password is None:
                raise ConfigError(_LOGIN_WITHOUT_SECRET)
            smtp.login(settings.username, password)
        smtp.send_message(message)
    finally:
        _hang_up(smtp)


def _hang_up(smtp: smtplib.SMTP) -> None:
    """Says QUIT and closes. Once the server has taken the message, its answer to QUIT (a 421,
    a dropped connection) changes nothing: taken as a failure, the retry would mail it twice."""
    try:
        smtp.quit()
    except (OSError, smtplib.SMTPException):
        smtp.close()


def owner_email(
    report: Report, entry: PackEntry, pack_dir: Path, changes: Changes, sender: str
) -> EmailMessage:
    """The mail to one agency: what changed in its systems, in Vietnamese then English, its pack attached."""
    assert entry.contact is not None  # the caller mails only owners with an address
    assert entry.contact.email is not None
    mine = changes.only(set(entry.systems))
    message = EmailMessage()
    message["From"] = sender
    message["To"] = formataddr((_header(entry.contact.name), entry.contact.email))
    # What the run could not judge is said up front: without it, an agency whose hosts were all
    # out of reach would read "0 new failures" as a clean week.
    unjudged = f" {entry.errors} chưa đánh giá được / not evaluated," if entry.errors else ""
    # A failure the last run could not see is not new, but an agency must not read "0" as calm.
    first = f" {len(mine.first_judged)} lỗi lần đầu thấy / first seen," if mine.first_judged else ""
    message["Subject"] = (
        f"[attt] {_header(report.run.province)} · {_header(entry.owner)}: {len(mine.new_failures)}"
        f" lỗi mới / new failures,{first}{unjudged} {len(mine.fixed)} đã khắc phục / fixed"
    )
    message["Message-ID"] = make_msgid(idstring=report.run.id, domain="attt.local")
    message.set_content(_owner_text(report, entry, mine))
    message.add_attachment(
        zip_directory(pack_dir), maintype="application", subtype="zip", filename=f"{entry.directory}.zip"
    )
    return message


def _header(text: str) -> str:
    """A name as a mail header, or a line of the body, holds it: on one line and inert. A
    register's cell broken over two lines (Alt+Enter) keeps its break up to here, a header with
    one is refused outright, and in the body it would start a line the name forged."""
    return clean_line(" ".join(text.split()))


def _owner_text(report: Report, entry: PackEntry, changes: Changes) -> str:
    score = "—" if entry.score is None else f"{entry.score * 100:.0f}%"
    since = changes.baseline or "—"
    owner = _header(entry.owner)
    lines = [
        f"Kính gửi {_header(entry.contact.name) if entry.contact else owner},",
        "",
        f"Kết quả rà soát an toàn thông tin lần {report.run.id} cho {owner}"
        f" ({len(entry.systems)} hệ thống): điểm tuân thủ {score}, {entry.open_critical} lỗi"
        f" nghiêm trọng và {entry.open_high} lỗi mức cao chưa khắc phục.",
        f"Scan {report.run.id} of {owner} ({len(entry.systems)} systems): compliance score"
        f" {score}, {entry.open_critical} critical and {entry.open_high} high failures open.",
        "",
    ]
    heading = "Mọi lỗi đang mở / Every open failure" if changes.everything else f"So với / Since {since}"
    lines.append(heading)
    for label, items in (
        ("Lỗi mới / New failures", changes.new_failures),
        (
            "Lỗi lần đầu thấy, lượt trước chưa đánh giá được / First seen, not judged last time",
            changes.first_judged,
        ),
        ("Chưa đánh giá được / Not evaluated", changes.new_errors),
        ("Đã khắc phục / Fixed", changes.fixed),
    ):
        lines.append(f"{label}: {len(items)}")
        lines.extend(f"  - {_line(f)}" for f in sorted(items, key=lambda f: (-f.severity.rank, f.rule_id)))
    if changes.policy_changes:
        # Without this, a rule loosened since the baseline would read as the agency's fix.
        lines += [
            "",
            "Điều kiện đánh giá đã thay đổi (chính sách, khai báo hoặc vùng quét): kết quả thay đổi"
            " theo đó không tính là lỗi mới hay đã khắc phục. / What judged it changed (the policy,"
            " the registration or the vantage): a verdict that changed with it counts neither as new"
            " nor as fixed.",
            *(f"  * {safe(n.vi, 480)} / {safe(n.en, 480)}" for n in changes.policy_changes),
            f"Đánh giá trong điều kiện khác / Judged otherwise: {len(changes.rejudged)}",
            *(f"  - {_line(r.finding)} ({_VERDICTS[r.was]} → {_VERDICTS[r.now]})" for r in changes.rejudged),
        ]
    lines += [
        "",
        "Gói báo cáo đính kèm (kiểm tra: attt verify THƯ-MỤC)."
        " / The pack is attached (check: attt verify DIR).",
    ]
    return "\n".join(lines) + "\n"


_VERDICTS: dict[str | None, str] = {
    "pass": "đạt / pass",
    "fail": "không đạt / fail",
    "waived": "miễn trừ / waived",
    "error": "chưa đánh giá được / not evaluated",
    "not_applicable": "không áp dụng / not applicable",
    None: "không được đánh giá / not judged",
}


def _line(f: Finding) -> str:
    where = f.host if f.port is None else f"{f.host}:{f.port}"
    expired = ""
    if f.waiver is not None and f.waiver.expired:
        day = f.waiver.expires.isoformat()
        expired = f" (miễn trừ hết hạn {day} / waiver expired {day})"
    return safe(
        f"[{f.severity.value}] {f.rule_id} {f.system} {where}: {f.title.vi} / {f.title.en}{expired}", 480
    )


def zip_directory(directory: Path) -> bytes:
    """The pack as a zip, files in name order with a fixed time, so the same pack zips the same."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(p for p in directory.rglob("*") if p.is_file()):
            info = zipfile.ZipInfo(
                f"{directory.name}/{path.relative_to(directory).as_posix()}", (1980, 1, 1, 0, 0, 0)
            )
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())
    return buffer.getvalue()


def webhook_body(report: Report, index: PackIndex, changes: Changes) -> bytes:
    def items(findings: Sequence[Finding]) -> list[dict[str, object]]:
        return [
            {"rule_id": f.rule_id, "severity": f.severity.value, "system": f.system, "host": f.host,
             "port": f.port, "status": f.status}
            for f in findings
        ]  # fmt: skip

    body = {
        "format": "attt-run-notification/1",
        "run": {"id": report.run.id, "status": report.run.status, "province": report.run.province},
        "baseline": changes.baseline,
        "everything": changes.everything,
        "new_failures": items(changes.new_failures),
        "first_judged": items(changes.first_judged),
        "new_errors": items(changes.new_errors),
        "fixed": items(changes.fixed),
        "rejudged": [{**items([r.finding])[0], "was": r.was, "now": r.now} for r in changes.rejudged],
        "policy_changes": [{"vi": n.vi, "en": n.en} for n in changes.policy_changes],
        "packs": [p.model_dump(mode="json") for p in index.packs],
    }
    return json.dumps(body, ensure_ascii=False).encode("utf-8")


class _HttpError(Exception):
    """The department's receiver answered, but not with success."""


def post_webhook(settings: WebhookSettings, token: str | None, body: bytes) -> None:
    import httpx

    headers = {"Content-Type": "application/json", "User-Agent": "attt"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    try:
        response = httpx.post(
            settings.url,
            content=body,
            headers=headers,
            timeout=settings.timeout,
            verify=_tls_context(settings.ca_file),
            follow_redirects=False,
        )
    except httpx.HTTPError as exc:
        raise _HttpError(str(exc)) from None
    if not response.is_success:
        raise _HttpError(f"HTTP {response.status_code}")
