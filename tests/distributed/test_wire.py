"""The celery engine's parts that need no broker: broker settings and secrets, the task on the
wire, the worker's own scope, the plan of outside-vantage probes, and the CLI's refusals.

Loopback range: 127.0.185.0/24 (one listener the worker's task code probes for real).
"""

import json
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from attt.scanner.cli import main
from attt.scanner.config import BrokerSettings
from attt.scanner.distributed import (
    ProbeTask,
    WorkerScope,
    parse_networks,
    probe_task,
    redacted,
    resolve_broker,
    run_task,
    task_id,
)
from attt.scanner.errors import ConfigError
from attt.scanner.exitcodes import ExitCode
from attt.scanner.inventory import load_inventory, resolve_targets
from attt.scanner.models.observation import DATA_MODELS, Observation, observed_by, probe_check
from attt.scanner.models.target import Target
from attt.scanner.policy import load_policy
from attt.scanner.registry import Registry
from attt.scanner.runner import Runner, ScanPlan
from tests.servers.listeners import tcp_listeners

POLICY = Path(__file__).parents[1] / "scanner" / "e2e" / "policy.yaml"
HOST = "127.0.185.1"


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry.load()


def _inventory(tmp_path: Path, zones: str) -> Path:
    path = tmp_path / "inventory.yaml"
    path.write_text(
        "province: Test\nscope: [127.0.185.0/24]\n"
        + zones
        + "systems:\n  - id: web\n    name: Web\n    owner: Agency\n    level: 2\n"
        f"    hosts:\n      - {{address: {HOST}, services: [{{port: 8080, kind: http}}]}}\n"
    )
    return path


def _target(
    tmp_path: Path, zones: str = "zones:\n  - {id: dmz, name: DMZ, cidrs: [127.0.185.0/24]}\n"
) -> Target:
    return resolve_targets(load_inventory(_inventory(tmp_path, zones)).inventory)[0]


def test_the_broker_password_is_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATTT_BROKER_PASSWORD", "s3cret-from-env")
    broker = resolve_broker("redis://broker.example:6379/0", None)
    assert broker.password is not None and broker.password.get_secret_value() == "s3cret-from-env"
    assert "s3cret" not in repr(broker) + broker.shown
    inline = resolve_broker("rediss://attt:inline-pw@broker.example:6380/0", None)
    assert inline.shown == "rediss://attt:***@broker.example:6380/0"
    assert "inline-pw" not in repr(inline)
    assert redacted("amqp://guest:pw@mq.example//") == "amqp://guest:***@mq.example//"


@pytest.mark.parametrize(
    ("url", "settings", "says"),
    [
        (None, None, "needs a broker"),
        ("http://:pw@broker.example", None, "the scheme must be one of"),
        ("amqp://mq.example//", None, "result_backend"),
        ("redis://broker.example", BrokerSettings(password_env="ATTT_NO_SUCH_VARIABLE"), "is not set"),
    ],
)
def test_an_unusable_broker_is_one_configuration_error(
    url: str | None, settings: BrokerSettings | None, says: str
) -> None:
    with pytest.raises(ConfigError, match=says) as raised:
        resolve_broker(url, settings)
    assert "pw" not in str(raised.value)


def test_a_tls_broker_always_checks_the_certificate(tmp_path: Path) -> None:
    broker = resolve_broker("rediss://broker.example:6380/0", BrokerSettings(ca_file=tmp_path / "ca.pem"))
    assert broker.tls["ssl_ca_certs"] == str(tmp_path / "ca.pem")
    assert broker.tls["ssl_cert_reqs"].name == "CERT_REQUIRED"


def test_probe_keys_of_outside_vantages_are_probes_of_their_own() -> None:
    assert probe_check("tls", None) == "tls"
    assert probe_check("tls", "internet") == "tls@internet"
    assert task_id("RUN", "tls", "internet", "web", "10.0.0.1") == "RUN:tls@internet:web:10.0.0.1"
    # A worker of the host's own zone makes the inside probe; any other vantage its own one.
    assert observed_by("tls", "dmz", "dmz") == "tls"
    assert observed_by("tls", None, "dmz") == "tls"
    assert observed_by("tls", "internet", "dmz") == "tls@internet"
    # A local scan run from the Internet side (`--vantage internet`) makes the host's own probe.
    assert observed_by("tls", "internet", "dmz", local="internet") == "tls"


def _task(registry: Registry, target: Target, check: str = "ports") -> ProbeTask:
    policy = load_policy(str(POLICY), registry)
    runner = Runner(registry, lambda *_: None)
    plan = ScanPlan(targets=[target], checks=[check], policies={"web": (policy,)}, timeout=5)
    ctx = runner._context(plan, target, registry.check(check), {})
    task = probe_task("RUN", check, target, ctx, None)
    # What travels is JSON, and comes back the same.
    wire = json.loads(json.dumps(task.model_dump(mode="json")))
    assert ProbeTask.model_validate(wire, context={DATA_MODELS: registry.data_models}) == task
    return task


def test_a_task_carries_no_credential_and_its_rules_come_back_typed(
    registry: Registry, tmp_path: Path
) -> None:
    task = _task(registry, _target(tmp_path))
    assert "credential" not in json.dumps(task.model_dump(mode="json"))
    assert [r["id"] for r in task.rules] == ["E2E-TELNET", "E2E-DECLARED"]
    assert task.key == f"RUN:ports:web:{HOST}"


def test_the_worker_probes_a_task_in_its_scope_and_marks_its_vantage(
    registry: Registry, tmp_path: Path
) -> None:
    task = _task(registry, _target(tmp_path))
    scope = WorkerScope("dmz", parse_networks(["127.0.185.0/24"]), registry, max_timeout=5)
    with tcp_listeners([(HOST, 8080)]):
        answer = run_task(scope, json.loads(json.dumps(task.model_dump(mode="json"))), threading.Event())
    seen = [Observation.model_validate(a, context={DATA_MODELS: registry.data_models}) for a in answer]
    assert [(o.check, o.host, o.status, o.zone) for o in seen] == [("ports", HOST, "ok", "dmz")]
    data = seen[0].data
    assert isinstance(data, registry.data_models["ports"])  # typed again by the check, as the store does
    assert [p["port"] for p in data.model_dump()["open"]] == [8080]


@pytest.mark.parametrize(
    ("zone", "networks", "check", "refusal"),
    [
        ("dmz", ["10.0.0.0/8"], "ports", f"refused by worker dmz: {HOST} is outside its scope"),
        ("internal", ["127.0.185.0/24"], "ports", "refused by worker internal: the task is for zone dmz"),
    ],
)
def test_the_worker_refuses_from_its_own_scope(
    registry: Registry, tmp_path: Path, zone: str, networks: list[str], check: str, refusal: str
) -> None:
    task = _task(registry, _target(tmp_path), check)
    scope = WorkerScope(zone, parse_networks(networks), registry)
    answer = run_task(scope, task.model_dump(mode="json"), threading.Event())
    assert [(a["status"], a["error"], a["zone"]) for a in answer] == [("error", refusal, zone)]


def test_a_malformed_task_is_refused(registry: Registry) -> None:
    scope = WorkerScope("dmz", parse_networks(["127.0.185.0/24"]), registry)
    with pytest.raises(ValueError, match="malformed task"):
        run_task(scope, {"run": "x", "check": "ports"}, threading.Event())


def test_outside_vantages_probe_the_checks_of_their_rules_after_the_inside_ones(
    registry: Registry, tmp_path: Path
) -> None:
    policy = load_policy(str(POLICY), registry)
    outside = policy.model_copy(
        update={"rules": (policy.rules[0].model_copy(update={"vantage": "internet"}), *policy.rules[1:])}
    )
    target = _target(tmp_path)
    runner = Runner(registry, lambda *_: None)
    plan = ScanPlan(
        targets=[target],
        checks=["ports", "tls"],
        policies={"web": (outside,)},
        vantages={"dmz": ("internet",)},
    )
    assert runner.steps(plan, [target]) == [("ports", None), ("tls", None), ("ports", "internet")]
    assert runner.planned(plan) == 3  # what the progress counts up to
    inside_only = ScanPlan(targets=[target], checks=["ports", "tls"], policies={"web": (policy,)})
    assert runner.steps(inside_only, [target]) == [("ports", None), ("tls", None)]


def test_the_celery_engine_refuses_an_inventory_without_zones(tmp_path: Path) -> None:
    inventory = _inventory(tmp_path, "")
    args = ["scan", "-i", str(inventory), "--engine", "celery", "--broker", "redis://:pw@broker.example/0"]
    result = CliRunner().invoke(main, [*args, "--db", str(tmp_path / "db"), "--check", "ports"])
    assert result.exit_code == ExitCode.CONFIG_ERROR, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and f"host {HOST} is in no zone" in lines[0]
    assert "Traceback" not in result.output


def test_a_worker_needs_its_own_scope(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["worker", "--zone", "dmz", "--broker", "redis://broker.example/0"])
    assert result.exit_code == ExitCode.CONFIG_ERROR
    assert "--scope" in result.output
    bad = CliRunner().invoke(main, ["worker", "--zone", "dmz", "--scope", "nonsense"])
    assert bad.exit_code == ExitCode.CONFIG_ERROR and "not a network" in bad.output


def test_a_worker_whose_broker_does_not_answer_says_so_in_one_line(tmp_path: Path) -> None:
    broker = f"redis+socket://{tmp_path}/no-broker.sock"
    args = ["worker", "--zone", "dmz", "--scope", "127.0.185.0/24", "--broker", broker]
    result = CliRunner().invoke(main, args, env={"ATTT_BROKER_PASSWORD": "never-shown"})
    assert result.exit_code == ExitCode.CONFIG_ERROR, result.output
    errors = [line for line in result.output.splitlines() if "error" in line]
    assert len(errors) == 1 and errors[0].startswith(f"attt: error: broker {broker} does not answer: ")
    assert "never-shown" not in result.output and "Traceback" not in result.output


def test_the_engine_and_broker_come_from_attt_toml(tmp_path: Path) -> None:
    config = tmp_path / "attt.toml"
    config.write_text('engine = "celery"\n[broker]\nurl = "redis://broker.example/0"\n')
    inventory = _inventory(tmp_path, "")
    args = ["--config", str(config), "scan", "-i", str(inventory), "--db", str(tmp_path / "db")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == ExitCode.CONFIG_ERROR
    assert "--engine celery: host 127.0.185.1 is in no zone" in result.output


def test_the_celery_engine_refuses_a_vantage(tmp_path: Path) -> None:
    """With workers, each observation carries its worker's zone: a `--vantage` would overwrite it."""
    inventory = _inventory(tmp_path, "zones:\n  - {id: dmz, cidrs: [127.0.185.0/24]}\n")
    args = ["scan", "-i", str(inventory), "--engine", "celery", "--vantage", "dmz", "--check", "ports"]
    result = CliRunner().invoke(
        main, [*args, "--broker", "redis://broker.example/0", "--db", str(tmp_path / "db")]
    )
    assert result.exit_code == ExitCode.CONFIG_ERROR, result.output
    assert "--engine celery with --vantage dmz" in result.output
