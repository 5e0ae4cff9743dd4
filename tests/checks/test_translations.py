"""Every verdict a built-in control can give has a Vietnamese sentence: auditors read the
report in Vietnamese, and an untranslated message would fall back to English."""

import ast
import inspect
import sys

import pytest

from attt.scanner.registry import Registry


def _control_modules() -> list[str]:
    registry = Registry.load()
    return sorted(
        {
            control.judge.__module__
            for name, registered in registry.checks.items()
            if registered.distribution == "attt-scanner"
            for control in registered.check.controls.values()
        }
    )


def verdict_calls(module_name: str) -> list[ast.Call]:
    source = inspect.getsource(sys.modules[module_name])
    return [
        node
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "Verdict"
    ]


def _translated(call: ast.Call) -> bool:
    return any(
        k.arg == "vi" and not (isinstance(k.value, ast.Constant) and not k.value.value) for k in call.keywords
    )


def test_the_builtin_control_modules_are_all_found() -> None:
    assert _control_modules() == [
        "attt.checks.ports.controls",
        "attt.checks.ssh.controls",
        "attt.checks.tls.controls",
        "attt.checks.web.controls",
    ]


@pytest.mark.parametrize("module_name", _control_modules())
def test_every_verdict_has_a_vietnamese_sentence(module_name: str) -> None:
    calls = verdict_calls(module_name)
    assert len(calls) >= 5  # the walk still sees the calls (Verdict not imported under another name)
    untranslated = [call.lineno for call in calls if not _translated(call)]
    assert untranslated == [], f"{module_name} lines without vi=: {untranslated}"
