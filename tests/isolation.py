"""Each pytest-xdist worker runs in a network namespace of its own.

The test servers listen on fixed loopback addresses and ports (127.0.10.1:443, ...): two workers
starting the same session fixture would collide. In its own namespace a worker has a loopback of
its own, so every worker can start any server, and no packet of a test can reach another worker's
servers or any other machine. Python 3.11 has no `os.unshare`, hence the call through libc.
"""

import ctypes
import os
import subprocess

import pytest

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)
_machine_network: int | None = None
"""The network namespace the worker started in (an open file of it), once it has left it."""


def enter_own_network_namespace(worker: str) -> None:
    """Move this process (its calling thread, and every thread and child it starts later) into a
    new network namespace whose only interface is an up loopback."""
    global _machine_network
    _machine_network = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    if _libc.unshare(CLONE_NEWNET) != 0:
        why = os.strerror(ctypes.get_errno())
        raise pytest.UsageError(
            f"pytest worker {worker} cannot have a network namespace of its own ({why}):"
            " run the tests in parallel (-n) as root, or serially without -n"
        )
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True, capture_output=True)


def in_machine_network() -> None:
    """A `preexec_fn` for the one child that needs the machine's network, not the worker's: pip
    installing a wheel's dependencies from the package index, as `make install` does."""
    if _machine_network is not None and _libc.setns(_machine_network, CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "cannot rejoin the machine's network namespace")
