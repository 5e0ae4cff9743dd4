"""Session-wide pytest setup. Server fixtures live in tests/servers/, one module per kind."""

import ipaddress
import socket
from collections.abc import Iterator
from typing import Any

import pytest

pytest_plugins = [
    "tests.servers.listeners",
    "tests.servers.tls",
    "tests.servers.sshd",
    "tests.servers.hostile",
    "tests.servers.ssh_hostile",
    "tests.servers.verdicts",
    "tests.servers.upgrade",
    "tests.servers.web",
    "tests.servers.web_tricks",
    "tests.servers.postgres",
]

_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


@pytest.fixture(autouse=True, scope="session")
def _no_dns_queries_leave_the_machine() -> Iterator[None]:
    """Resolving a name other than localhost would send a query to the machine's resolver, which
    is off this machine: tests (fuzzed inventories included) get "unknown name" instead."""
    real = socket.getaddrinfo

    def local_only(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if name is None or name.lower() in _LOCAL_NAMES or _is_address(name):
            return real(host, *args, **kwargs)
        raise socket.gaierror(socket.EAI_NONAME, f"tests resolve no names but localhost: {name!r}")

    socket.getaddrinfo = local_only
    try:
        yield
    finally:
        socket.getaddrinfo = real


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name.split("%", 1)[0])
    except ValueError:
        return False
    return True
