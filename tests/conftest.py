"""Session-wide pytest setup. Server fixtures live in tests/servers/, one module per kind."""

import ipaddress
import json
import os
import socket
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.isolation import enter_own_network_namespace

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
    "tests.servers.web_odd",
    "tests.servers.web_truth",
    "tests.servers.postgres",
]


def pytest_configure(config: pytest.Config) -> None:
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker is not None:
        enter_own_network_namespace(worker)


FUZZ_COUNTS: Counter[str] = Counter()
"""Documents fed to each loader (and CLI samples) during this session, by every worker; reported
at the end of the session and written to test-artifacts/ for the closing note."""
ARTIFACTS = Path("test-artifacts")


def pytest_sessionfinish(session: pytest.Session) -> None:
    if hasattr(session.config, "workeroutput"):  # a pytest-xdist worker: its counts go to the controller
        session.config.workeroutput["fuzz_counts"] = dict(FUZZ_COUNTS)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    FUZZ_COUNTS.update(getattr(node, "workeroutput", {}).get("fuzz_counts", {}))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not FUZZ_COUNTS:
        return
    terminalreporter.section("robustness: fuzz examples per loader")
    for kind, count in sorted(FUZZ_COUNTS.items()):
        terminalreporter.write_line(f"{kind:<16} {count}")
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "fuzz-counts.json").write_text(json.dumps(dict(FUZZ_COUNTS), indent=2, sort_keys=True))


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
