"""Progress while a scan runs: a rich bar on a terminal, plain lines in CI and logs."""

import sys
import threading
import time
from collections.abc import Sequence
from types import TracebackType
from typing import TextIO

from attt.scanner.models.observation import Observation
from attt.scanner.models.target import Target
from attt.scanner.runner import ProgressSink
from attt.scanner.text import safe


class LineProgress(ProgressSink):
    """One line per finished probe, for logs and CI (no cursor tricks)."""

    def __init__(self, total: int, stream: TextIO = sys.stderr) -> None:
        self._total = total
        self._done = 0
        self._stream = stream
        self._lock = threading.Lock()
        self._started: dict[tuple[str, str, str], float] = {}

    def started(self, target: Target, check: str) -> None:
        with self._lock:
            self._started[(*target.key, check)] = time.monotonic()

    def finished(self, target: Target, check: str, observations: Sequence[Observation]) -> None:
        with self._lock:
            self._done += 1
            elapsed = time.monotonic() - self._started.pop((*target.key, check), time.monotonic())
            errors = [o for o in observations if o.status == "error"]
            outcome = f"{len(observations)} observation(s)" if not errors else f"error: {errors[0].error}"
            width = len(str(self._total))
            print(
                f"[{self._done:>{width}}/{self._total}] {safe(check):<6} {target.system.id}"
                f" {safe(target.address)} {safe(outcome)} ({elapsed:.1f}s)",
                file=self._stream,
                flush=True,
            )

    def __enter__(self) -> "LineProgress":
        return self

    def __exit__(self, *exc: object) -> None:
        return None


class RichProgress(ProgressSink):
    """A live bar on an interactive terminal."""

    def __init__(self, total: int) -> None:
        # Imported here: only a terminal shows the bar, and rich costs a scan in CI or cron
        # a tenth of its start-up.
        from rich.console import Console
        from rich.markup import escape
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[current]}"),
            console=Console(stderr=True),
            transient=False,
        )
        self._task = self._progress.add_task("scanning", total=total, current="")
        self._escape = escape
        self._lock = threading.Lock()

    def started(self, target: Target, check: str) -> None:
        with self._lock:
            # rich reads [brackets] as markup: the text is escaped for it after the sanitiser.
            self._progress.update(self._task, current=self._escape(f"{safe(check)} {safe(target.address)}"))

    def finished(self, target: Target, check: str, observations: Sequence[Observation]) -> None:
        with self._lock:
            self._progress.advance(self._task)

    def __enter__(self) -> "RichProgress":
        self._progress.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._progress.stop()


def progress_for(total: int, interactive: bool) -> LineProgress | RichProgress:
    return RichProgress(total) if interactive else LineProgress(total)
