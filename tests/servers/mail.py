"""A real SMTP server (aiosmtpd: STARTTLS or implicit TLS, with login) and a real HTTP receiver
for the department's webhook, both on 127.0.17.0/24, the weekly-cycle tests' range (either
server may be put elsewhere, e.g. on the notification-hardening tests' 127.0.206.0/24)."""

import ipaddress
import json
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import MISSING, AuthResult, LoginPassword
from cryptography import x509
from cryptography.x509.oid import NameOID

from tests.servers.hostile import _certificate

MAIL_HOST = "127.0.17.50"
HOOK_HOST = "127.0.17.51"
SMTP_USER, SMTP_PASSWORD = "attt@sokhcn.example.vn", "mat-khau-thu"


def self_signed(directory: Path, address: str) -> tuple[Path, Path]:
    """A certificate for `address` (an IP SAN) and its key; the certificate is its own trust anchor."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "attt test mail")])
    return _certificate(directory, "mail", name, [x509.IPAddress(ipaddress.ip_address(address))])


@dataclass
class Mailbox:
    """What the SMTP server accepted, as parsed messages."""

    messages: list[EmailMessage] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)
    """A message whose subject holds one of these is answered "451, try again later" and dropped."""
    quit_reply: str | None = None
    """What QUIT is answered, once a message was taken (None: the usual 221)."""
    drops: int = 0
    """How many connections, from now, are cut just after MAIL FROM."""

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
        parsed = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        if any(word in str(parsed["Subject"]) for word in self.refuse):
            return "451 4.3.0 try again later"
        self.messages.append(parsed)
        return "250 OK"

    async def handle_MAIL(
        self, server: Any, _session: Any, _envelope: Any, _address: str, _options: Any
    ) -> object:
        if self.drops:
            self.drops -= 1
            server.transport.abort()
        return MISSING

    async def handle_QUIT(self, _server: Any, _session: Any, _envelope: Any) -> object:
        return self.quit_reply or MISSING


def _login(_server: Any, _session: Any, _envelope: Any, _mechanism: str, data: Any) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
        SMTP_USER.encode(),
        SMTP_PASSWORD.encode(),
    )
    return AuthResult(success=ok, auth_data=data)


@contextmanager
def smtp_server(
    cert: Path, key: Path, port: int, implicit_tls: bool = False, host: str = MAIL_HOST, plain: bool = False
) -> Iterator[Mailbox]:
    """An SMTP server that requires TLS (STARTTLS, or implicit) and a login; with `plain`, one
    that offers no TLS at all (and so would take a login in clear text)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    mailbox = Mailbox()
    # aiosmtpd does not count an implicit-TLS connection as TLS for its AUTH guard; it is TLS.
    tls: dict[str, Any] = (
        {"auth_require_tls": False}
        if plain
        else {"ssl_context": context, "auth_require_tls": False}
        if implicit_tls
        else {"tls_context": context, "require_starttls": True}
    )
    controller = Controller(
        mailbox,
        hostname=host,
        port=port,
        authenticator=_login,
        auth_required=True,
        ready_timeout=10,
        **tls,
    )
    controller.start()
    try:
        yield mailbox
    finally:
        controller.stop()


@dataclass
class Hooks:
    bodies: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    status: int = 200
    """What the receiver answers (set 500 to make the sender retry)."""
    attempts: int = 0


@contextmanager
def webhook_receiver(host: str = HOOK_HOST) -> Iterator[tuple[str, Hooks]]:
    """An HTTP server taking JSON POSTs; yields its URL and what it received."""
    hooks = Hooks()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            hooks.attempts += 1
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if hooks.status == 200:
                hooks.bodies.append(json.loads(body))
                hooks.headers.append(dict(self.headers))
            self.send_response(hooks.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer((host, 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_address[1]}/hooks/attt", hooks
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
