"""The tls probe's scan of named endpoints, each outcome in the form controls see on
re-evaluation (stored, then read back)."""

from attt.checks.tls import _sslyze
from attt.checks.tls.models import TlsData


def scan_stored(endpoints: dict[str, _sslyze.Endpoint], options: _sslyze.ScanOptions) -> dict[str, TlsData]:
    """Name -> what the scan of that endpoint observed; a scan that failed fails the test."""
    outcomes = _sslyze.scan(list(endpoints.values()), options)
    found: dict[str, TlsData] = {}
    for name, endpoint in endpoints.items():
        outcome = outcomes[endpoint]
        assert isinstance(outcome, TlsData), (name, outcome)
        found[name] = TlsData.model_validate(outcome.model_dump(mode="json"))
    return found
