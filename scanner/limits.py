"""The open-file limit: raised at start-up, and the concurrency it can carry.

Every connection is a file descriptor. A scan at `--concurrency 256` under the common default
soft limit of 1,024 used to fail in odd places (nmap "not installed", handshakes refused), so
the soft limit is raised to the hard one first, and what is left caps the concurrency, said
plainly, rather than let probes fail for attt's own lack of descriptors.
"""

import resource

FILES_PER_TARGET = 8
"""Descriptors one host in flight may hold: its TLS ports' first handshakes, SSH's connection,
an nmap run's pipes (the TLS worker pool is counted in `RESERVED`)."""
RESERVED = 160
"""Descriptors for the process itself: the store, logs, the shared TLS workers (64), nmap runs."""
_CEILING = 1 << 20
"""Raise no further even when the hard limit is unlimited."""


def raise_open_files() -> int:
    """Raise the soft open-file limit as far as the hard limit allows; return the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = _CEILING if hard == resource.RLIM_INFINITY else min(hard, _CEILING)
    if soft != resource.RLIM_INFINITY and wanted > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError):
            return soft
        return wanted
    return _CEILING if soft == resource.RLIM_INFINITY else soft


def concurrency_for(requested: int, open_files: int) -> int:
    """The hosts that may be probed at once within `open_files` descriptors (at least one)."""
    return max(1, min(requested, (open_files - RESERVED) // FILES_PER_TARGET))
