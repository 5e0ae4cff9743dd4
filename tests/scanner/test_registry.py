"""Checks arrive through the `attt.checks` entry-point group, built-ins and third parties alike."""

import pkgutil
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

import attt.checks
from attt.scanner.registry import ENTRY_POINT_GROUP, Registry


def ep(name: str, value: str) -> EntryPoint:
    return EntryPoint(name=name, value=value, group=ENTRY_POINT_GROUP)


def test_every_builtin_check_module_is_registered_under_its_own_name() -> None:
    declared = {e.name: e.value for e in entry_points(group=ENTRY_POINT_GROUP)}
    modules = {m.name for m in pkgutil.iter_modules([str(Path(attt.checks.__file__).parent)])}
    builtins = {m for m in modules if not m.startswith("_") and m != "base"}
    assert builtins <= set(declared), "a check module without an entry point is never loaded"
    for name in builtins:
        assert declared[name].startswith(f"attt.checks.{name}:")
    registry = Registry.load()
    assert not registry.failures
    assert {name: r.distribution for name, r in registry.checks.items() if name in builtins} == dict.fromkeys(
        builtins, "attt-scanner"
    )


def test_control_ids_are_unique_and_named_after_their_check() -> None:
    registry = Registry.load()
    seen: set[str] = set()
    for name, registered in registry.checks.items():
        for control_id in registered.check.controls:
            assert control_id.startswith(f"{name}.")
            assert control_id not in seen
            seen.add(control_id)
            assert registry.control(control_id) is not None


def test_a_third_party_check_is_a_peer_of_the_builtins() -> None:
    registry = Registry.from_entry_points([ep("count", "tests.scanner.plugins:CountCheck")])
    assert list(registry.checks) == ["count"]
    found = registry.control("count.at_most")
    assert found is not None
    assert found[0] == "count"


def test_broken_plugins_are_reported_and_never_stop_the_others() -> None:
    registry = Registry.from_entry_points(
        [
            ep("count", "tests.scanner.plugins:CountCheck"),
            ep("missing", "no_such_module:Check"),
            ep("misnamed", "tests.scanner.plugins:EchoCheck"),  # declares the name "echo"
        ]
    )
    assert list(registry.checks) == ["count"]
    reasons = {f.name: f.reason for f in registry.failures}
    assert "ModuleNotFoundError" in reasons["missing"]
    assert "entry point says 'misnamed'" in reasons["misnamed"]


def test_duplicate_entry_points_from_editable_installs_count_once() -> None:
    twice = [ep("count", "tests.scanner.plugins:CountCheck")] * 2
    registry = Registry.from_entry_points(twice)
    assert list(registry.checks) == ["count"]
    assert not registry.failures


def test_checks_run_after_the_checks_they_read() -> None:
    registry = Registry.from_entry_points(
        [ep("echo", "tests.scanner.plugins:EchoCheck"), ep("count", "tests.scanner.plugins:CountCheck")]
    )
    assert registry.ordered(["echo", "count"]) == ["count", "echo"]
    assert Registry.load().ordered(["ssh", "tls", "ports"])[0] == "ports"
