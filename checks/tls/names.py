"""Host names against a certificate's name entries: what a wildcard may stand for.

Kept out of x509.py, which reads certificates with cryptography: the controls use these too,
and every scan imports the controls, while only a TLS probe needs cryptography. The web check
uses them too (its own HTTPS client verifies with Python's `ssl`, which knows no public suffix):
one reading of a certificate's names for both checks.
"""

import functools
from collections.abc import Iterable

from publicsuffixlist import PublicSuffixList


def wildcard_over_suffix(name: str, entries: Iterable[str]) -> str | None:
    """The first wildcard of `entries` that has the shape of `name` but stands over a public
    suffix (`*.gov.vn` for `hatinh.gov.vn`), as written; None when there is none.

    The CA/Browser Forum's Baseline Requirements (3.2.2.6) forbid such a wildcard and browsers
    refuse it: a name under a registry belongs to whoever registered it, so no one certificate
    may speak for all of them."""
    wanted = labels(name)
    for entry in entries:
        written = labels(entry)
        if wildcard_fits(written, wanted) and public_suffix(written[1:]) is not None:
            return entry
    return None


def name_matches(name: str, entries: Iterable[str]) -> bool:
    """RFC 9525 matching of a DNS name against a certificate's DNS name entries: one equal to
    it, or a wildcard as the whole left-most label that does not stand over a public suffix
    (`wildcard_over_suffix`)."""
    wanted = labels(name)
    for entry in entries:
        written = labels(entry)
        if written == wanted or (wildcard_fits(written, wanted) and public_suffix(written[1:]) is None):
            return True
    return False


def labels(name: str) -> list[str]:
    return name.lower().rstrip(".").split(".")


def wildcard_fits(written: list[str], wanted: list[str]) -> bool:
    return written[0] == "*" and len(written) == len(wanted) and written[1:] == wanted[1:]


def public_suffix(parts: list[str]) -> str | None:
    """`parts` joined, when they are a public suffix of the ICANN section of the Public Suffix
    List (the registries: `com`, `gov.vn`, `co.uk`; any single label, whose TLD the list may not
    know, counts); None otherwise. The section of private domains (`github.io`) is left out, as
    browsers leave it out for wildcards."""
    suffix = ".".join(parts)
    return suffix if len(parts) < 2 or _suffix_list().is_public(suffix) else None


@functools.cache
def _suffix_list() -> PublicSuffixList:
    # The package's own copy of the list, read from disk once: it never fetches one.
    return PublicSuffixList(only_icann=True)
