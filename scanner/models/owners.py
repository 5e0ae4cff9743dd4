"""The department's index of per-owner packs: what the index page, the webhook and the mails read."""

from attt.scanner.models.base import Frozen
from attt.scanner.models.target import Contact


class PackEntry(Frozen):
    """One owner agency's pack."""

    owner: str
    directory: str
    """The pack's directory, relative to the index."""
    contact: Contact | None
    systems: tuple[str, ...]
    score: float | None
    open_critical: int
    open_high: int
    errors: int


class PackIndex(Frozen):
    format: str = "attt-owner-index/1"
    run_id: str
    province: str
    packs: tuple[PackEntry, ...]
