"""The generator meta tag as the page wrote it: decoded by the charset the page declares (its
Content-Type, then a meta charset), else as UTF-8, against real HTTPS servers on 127.0.231.0/24
(tests/servers/tls_truth.py). Read as Latin-1, "Hà Tĩnh" came out as "HÃ  TÄ©nh"."""

from collections.abc import Iterator

import pytest

from attt.checks.web import WebCheck, WebData, WebSettings
from attt.scanner.models.target import Host, Service, Target
from attt.scanner.plugin import ProbeContext
from tests.factories import system
from tests.servers.tls_truth import GENERATOR, GENERATOR_PAGES, TruthLab, truth_lab


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TruthLab]:
    with truth_lab(tmp_path_factory.mktemp("charset")) as running:
        yield running


@pytest.mark.parametrize("case", list(GENERATOR_PAGES))
def test_the_generator_is_read_in_the_pages_charset(lab: TruthLab, case: str) -> None:
    server, _, _ = GENERATOR_PAGES[case]
    host = Host(address=server.ip, hostname=server.hostname, services=(Service(port=443, kind="tls"),))
    target = Target(system=system(id="charset", tags=("portal",)), host=host, ip=server.ip)
    context = ProbeContext(timeout=10, settings=WebSettings(min_interval=0))
    [observation] = [o for o in WebCheck().probe(target, context) if o.port == 443]
    assert observation.status == "ok", observation.error
    data = WebData.model_validate(observation.data)
    generators = [d.value for d in data.disclosures if d.source == "meta:generator"]
    assert generators == [GENERATOR], generators
