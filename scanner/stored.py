"""What the run store keeps, and the form it writes it in, without the database code: importing this
loads no SQLAlchemy, so a scan can keep its store in a process of its own (`attt.scanner.storehost`).
The store itself is `attt.scanner.store.Store`."""

import os
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from pydantic import TypeAdapter

from attt.scanner.models.finding import Finding, FindingCodec
from attt.scanner.models.observation import Observation, ProbeKey
from attt.scanner.models.report import RunInfo
from attt.scanner.models.target import SystemInfo, Target

HEARTBEAT_SECONDS: Final = 10.0
"""How often a running scan renews its lease."""

EndedProbe = tuple[str, Target, Sequence[Observation]]
"""(probe check, target, what it saw): one probe that ended."""
SerialisedProbe = tuple[str, str, str, Sequence[tuple[str, str]]]
"""An `EndedProbe` as the store writes it: (probe check, system, host, (system, JSON) of each
observation)."""


SYSTEMS: Final = TypeAdapter(tuple[SystemInfo, ...])
TARGETS: Final = TypeAdapter(tuple[Target, ...])


@dataclass(frozen=True)
class SerialisedRun:
    """A new run as the store writes it (`serialise_run`)."""

    id: str
    started: str
    status: str
    info: str
    systems: str
    targets: str


@dataclass(frozen=True)
class Lease:
    """Who runs a run: this process, on this host."""

    pid: int
    host: str

    @classmethod
    def mine(cls) -> "Lease":
        return cls(os.getpid(), socket.gethostname())


@dataclass(frozen=True)
class StoredRun:
    info: RunInfo
    systems: tuple[SystemInfo, ...]
    targets: tuple[Target, ...]
    observations: tuple[Observation, ...]
    findings: tuple[Finding, ...]
    probes: frozenset[ProbeKey] = frozenset()
    """(check, system, host) of every probe that ended: a planned probe missing here never ran."""

    @property
    def judged(self) -> bool:
        """Whether the run's findings were written: a run's end writes them, so a run killed
        while probing (kill -9, a power cut, a second Ctrl-C) has observations and no finding."""
        return self.info.status == "complete" or bool(self.findings)


def serialise_probes(probes: Sequence[EndedProbe]) -> list[SerialisedProbe]:
    return [
        (check, target.system.id, target.address, [(o.system, o.model_dump_json()) for o in seen])
        for check, target, seen in probes
    ]


def serialise_findings(
    findings: Iterable[Finding], codec: FindingCodec | None = None
) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """The findings' rows as the store writes them, (JSON without the rule's text, the text's
    key), and each text they refer to by key; `codec` holds those already serialised."""
    codec = codec or FindingCodec()
    rows = [(row.row, row.text) for row in codec.encode(findings)]
    return rows, {key: codec.texts[key].stored for key in {text for _, text in rows}}


def serialise_run(info: RunInfo, systems: Iterable[SystemInfo], targets: Iterable[Target]) -> SerialisedRun:
    return SerialisedRun(
        id=info.id,
        started=info.started.isoformat(),
        status=info.status,
        info=info.model_dump_json(),
        systems=SYSTEMS.dump_json(tuple(systems)).decode(),
        targets=TARGETS.dump_json(tuple(targets)).decode(),
    )
