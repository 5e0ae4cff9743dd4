"""The web check against servers whose answers only a browser's reading judges right
(tests/servers/web_odd.py): each verdict rests on what a browser would see."""

import pytest

from tests.checks.web.probing import Probed
from tests.servers.web_odd import NO_FRAME_ANCESTORS, VERSION_HEADERS
from tests.servers.web_tricks import TrickyWeb


@pytest.fixture(scope="module")
def probed(odd_web: TrickyWeb) -> Probed:
    return Probed(odd_web)


@pytest.mark.parametrize("case", list(VERSION_HEADERS))
def test_a_version_in_a_header_of_the_application_is_announced(probed: Probed, case: str) -> None:
    verdict = probed.verdict(case, "web.version_disclosure")
    value = VERSION_HEADERS[case][1]
    assert (verdict.status, value in verdict.message) == ("fail", True), verdict.message


@pytest.mark.parametrize(
    "case",
    [
        # IIS and the application each add the header: one line, the value twice.
        "repeated in one line",
        # Conflicting values: a browser falls back to refusing every frame.
        "conflicting frame options",
    ],
)
def test_frame_options_and_nosniff_are_read_as_a_browser_splits_them(probed: Probed, case: str) -> None:
    assert probed.data(case).answer.first("content-security-policy") == NO_FRAME_ANCESTORS[1]
    verdict = probed.verdict(case, "web.headers")
    assert verdict.status == "pass", verdict.message
