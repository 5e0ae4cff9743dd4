"""Real SMTP servers (aiosmtpd) on 127.0.233.0/24 for the SMTP STARTTLS rule, one behaviour each:
STARTTLS offered with a working TLS handshake (on 25 and on 587), STARTTLS not offered, STARTTLS
listed and then declined with 454, a hang-up in answer to EHLO, and silence after EHLO.

Each server stops with its `with` block; aiosmtpd's controller cancels every task of its loop
on stop, so the silent server's wait ends there too."""

import asyncio
import ssl
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, Literal

from aiosmtpd.controller import Controller

from tests.servers.mail import self_signed

NET = "127.0.233"
Behaviour = Literal["starttls", "starttls-submission", "plain", "declines", "hangs-up", "silent"]
SERVERS: dict[Behaviour, tuple[str, int]] = {
    "starttls": (f"{NET}.10", 25),
    "starttls-submission": (f"{NET}.15", 587),
    "plain": (f"{NET}.11", 25),
    "declines": (f"{NET}.12", 25),
    "hangs-up": (f"{NET}.13", 25),
    "silent": (f"{NET}.14", 25),
}
SILENCE_SECONDS = 120.0
"""How long the silent server withholds its EHLO reply: longer than any probe waits."""


class _Ehlo:
    """The EHLO reply of each misbehaviour, as aiosmtpd's `handle_EHLO` hook."""

    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour

    async def handle_EHLO(
        self, server: Any, _session: Any, _envelope: Any, _hostname: str, responses: list[str]
    ) -> list[str]:
        if self.behaviour == "declines":
            # Listed without a TLS context: aiosmtpd answers the command with 454.
            return [*responses[:-1], "250-STARTTLS", responses[-1]]
        if self.behaviour == "hangs-up":
            server.transport.close()
            return []
        if self.behaviour == "silent":
            await asyncio.sleep(SILENCE_SECONDS)
        return responses


@contextmanager
def smtp_servers(workdir: Path) -> Iterator[dict[Behaviour, tuple[str, int]]]:
    with ExitStack() as stack:
        for behaviour, (ip, port) in SERVERS.items():
            tls: dict[str, Any] = {}
            if behaviour.startswith("starttls"):
                (workdir / ip).mkdir(parents=True, exist_ok=True)
                context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
                context.load_cert_chain(*self_signed(workdir / ip, ip))
                tls = {"tls_context": context}
            controller = Controller(_Ehlo(behaviour), hostname=ip, port=port, ready_timeout=10, **tls)
            controller.start()
            stack.callback(controller.stop)
        yield SERVERS
