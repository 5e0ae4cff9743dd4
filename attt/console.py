"""The `attt` program's entry point.

Importing the command (click, pydantic's schemas of every model, SQLAlchemy, the checks) makes
a few hundred thousand objects that all live until the process exits; with the collector on,
about 140 collections walk them while they are made, a full one among them (some 0.1 s of a
second's start-up). None of them can be garbage yet, so the collector waits until the import is
done: `attt.scanner.cli.run` freezes what the import made and turns it back on.
"""

import gc


def run() -> None:
    gc.disable()
    from attt.scanner.cli import run as run_command

    run_command()
