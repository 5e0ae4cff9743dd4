"""The docs are real: the code in docs/writing-a-check.md imports, registers through its entry
point, probes a live HTTP server, judges, and its policy loads; docs/architecture.md quotes the
import contracts as .importlinter has them."""

import http.server
import re
import sys
import threading
import tomllib
from collections.abc import Iterator
from importlib.metadata import EntryPoint
from pathlib import Path
from types import ModuleType

import pytest

from attt.scanner.catalog import check_lines
from attt.scanner.models.target import Host, Service, SystemInfo, Target
from attt.scanner.plugin import NoSettings, ProbeContext
from attt.scanner.policy import load_policy
from attt.scanner.registry import ENTRY_POINT_GROUP, Registry

DOC = Path(__file__).resolve().parents[1] / "docs" / "writing-a-check.md"
ADDRESS = "127.0.93.1"
"""This test's own loopback address (127.0.93.0/24 is used nowhere else)."""


def _blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", DOC.read_text("utf-8"), re.DOTALL | re.MULTILINE)


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """The page's module, imported under the name its first comment line gives it."""
    [code] = _blocks("python")
    path = code.splitlines()[0].removeprefix("# ").strip()
    assert path == "my_attt_checks/http_headers.py"
    package = tmp_path_factory.mktemp("doc-example") / "my_attt_checks"
    package.mkdir()
    (package / "__init__.py").write_text("", "utf-8")
    (package / "http_headers.py").write_text(code, "utf-8")
    sys.path.insert(0, str(package.parent))
    try:
        [ep] = _entry_points()
        yield sys.modules[ep.load().__module__]
    finally:
        sys.path.remove(str(package.parent))
        for name in [n for n in sys.modules if n.split(".")[0] == "my_attt_checks"]:
            del sys.modules[name]


def _entry_points() -> list[EntryPoint]:
    [toml] = _blocks("toml")
    group = tomllib.loads(toml)["project"]["entry-points"][ENTRY_POINT_GROUP]
    return [EntryPoint(name, value, ENTRY_POINT_GROUP) for name, value in group.items()]


@pytest.fixture(scope="module")
def registry(example: ModuleType) -> Registry:
    plugin = Registry.from_entry_points(_entry_points())
    assert plugin.failures == () and list(plugin.checks) == ["headers"]
    return Registry.of({**Registry.load().checks, **plugin.checks})


class _Handler(http.server.BaseHTTPRequestHandler):
    def version_string(self) -> str:
        return "nginx/1.18.0"

    def do_HEAD(self) -> None:
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the test reads results, not logs."""


@pytest.fixture(scope="module")
def web_port() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer((ADDRESS, 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _target(*ports: int) -> Target:
    system = SystemInfo(id="web", name="Web", owner="Sở", level=2)
    host = Host(address=ADDRESS, services=tuple(Service(port=p, kind="http") for p in ports))
    return Target(system=system, host=host, ip=ADDRESS)


def test_the_example_probes_a_real_server_and_its_control_judges(registry: Registry, web_port: int) -> None:
    check = registry.check("headers")
    closed = web_port + 1 if web_port < 65535 else web_port - 1
    ok, failed = check.probe(_target(web_port, closed), ProbeContext(timeout=10, settings=NoSettings()))
    assert (ok.status, ok.port) == ("ok", web_port)
    data = check.data_model.model_validate(ok.data)
    assert data.model_dump() == {"server": "nginx/1.18.0"}
    assert (failed.status, failed.port) == ("error", closed) and failed.error is not None
    assert failed.error.startswith("HEAD / failed:")
    [(control_id, control)] = check.controls.items()
    assert control_id == "headers.no_server_banner"
    assert control.judge(data, control.params_model(), _target()).status == "fail"
    allowed = control.params_model(allowed=("nginx/1.18.0",))
    assert control.judge(data, allowed, _target()).status == "pass"


def test_the_example_policy_loads_against_the_example_check(registry: Registry, tmp_path: Path) -> None:
    [text] = _blocks("yaml")
    path = tmp_path / "my-policy.yaml"
    path.write_text(text, "utf-8")
    policy = load_policy(str(path), registry)
    [rule] = [r for r in policy.rules if r.id == "HTTP-SERVER-BANNER"]
    assert rule.control == "headers.no_server_banner"
    assert len(policy.rules) > 1  # and everything `baseline` brings


def test_the_example_lists_with_its_reason_and_describe(registry: Registry) -> None:
    lines = list(check_lines("headers", registry.checks["headers"], verbose=True))
    assert lines[1].startswith("    One observation per port the inventory declares as http:")
    assert "    requests: HEAD / on every port the inventory declares as http" in lines
    assert any("OWASP ASVS 4.0, V14.3.3" in line for line in lines)
    assert any(line.strip().startswith("source: my_attt_checks.http_headers:") for line in lines)


def test_architecture_page_shows_the_import_contracts_as_they_are() -> None:
    page = (DOC.parent / "architecture.md").read_text("utf-8")
    contracts = (DOC.parents[1] / ".importlinter").read_text("utf-8")
    sections = re.split(r"\n(?=\[importlinter:contract:)", contracts.strip())[1:]
    assert sections, "the contracts are in .importlinter"
    for section in sections:
        assert section.strip() in page, f"docs/architecture.md lacks or misquotes {section.splitlines()[0]}"
