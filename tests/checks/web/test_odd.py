"""The web check against servers whose answers only a browser's reading judges right
(tests/servers/web_odd.py): each verdict rests on what a browser would see."""

import pytest

from tests.checks.web.probing import Probed
from tests.servers.web_odd import VERSION_HEADERS
from tests.servers.web_tricks import TrickyWeb


@pytest.fixture(scope="module")
def probed(odd_web: TrickyWeb) -> Probed:
    return Probed(odd_web)


@pytest.mark.parametrize("case", list(VERSION_HEADERS))
def test_a_version_in_a_header_of_the_application_is_announced(probed: Probed, case: str) -> None:
    verdict = probed.verdict(case, "web.version_disclosure")
    value = VERSION_HEADERS[case][1]
    assert (verdict.status, value in verdict.message) == ("fail", True), verdict.message
