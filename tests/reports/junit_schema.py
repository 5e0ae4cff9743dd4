"""A JUnit XML checker for tests: the element and attribute grammar that CI tools accept.

It follows the widely used Ant/Jenkins JUnit schema (no XSD validator is installed here): which
elements may appear where, which attributes are required and allowed, integer counters, at most
one outcome per test case, and counters that agree with the cases.
"""

import re
from xml.etree import ElementTree as ET

_ATTRS = {
    "testsuites": (set(), {"name", "tests", "failures", "errors", "skipped", "disabled", "time"}),
    "testsuite": (
        {"name", "tests"},
        {
            "failures",
            "errors",
            "skipped",
            "disabled",
            "time",
            "timestamp",
            "hostname",
            "id",
            "package",
            "file",
        },
    ),
    "properties": (set(), set()),
    "property": ({"name", "value"}, set()),
    "testcase": ({"name", "classname"}, {"time", "assertions", "status", "file", "line"}),
    "failure": (set(), {"message", "type"}),
    "error": (set(), {"message", "type"}),
    "skipped": (set(), {"message"}),
    "system-out": (set(), set()),
    "system-err": (set(), set()),
}
_CHILDREN = {
    "testsuites": {"testsuite"},
    "testsuite": {"properties", "testcase", "system-out", "system-err"},
    "properties": {"property"},
    "property": set(),
    "testcase": {"failure", "error", "skipped", "system-out", "system-err"},
    "failure": set(),
    "error": set(),
    "skipped": set(),
    "system-out": set(),
    "system-err": set(),
}
_COUNTERS = {"tests", "failures", "errors", "skipped", "disabled"}
_TIMESTAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}")
_OUTCOME = {"failure": "failures", "error": "errors", "skipped": "skipped"}


def junit_problems(xml: bytes) -> list[str]:
    """Everything that makes `xml` an invalid JUnit report; empty when it is valid."""
    root = ET.fromstring(xml)  # noqa: S314 - the renderer's own output, made in the test
    if root.tag != "testsuites":
        return [f"root element is <{root.tag}>, not <testsuites>"]
    problems: list[str] = []
    _check(root, problems)
    totals = dict.fromkeys(("tests", "failures", "errors", "skipped"), 0)
    for suite in root.iter("testsuite"):
        cases = suite.findall("testcase")
        counted = {"tests": len(cases), "failures": 0, "errors": 0, "skipped": 0}
        for case in cases:
            outcomes = [c.tag for c in case if c.tag in _OUTCOME]
            if len(outcomes) > 1:
                problems.append(f"testcase {case.get('name')!r} has several outcomes: {outcomes}")
            for tag in outcomes:
                counted[_OUTCOME[tag]] += 1
        for key, value in counted.items():
            if suite.get(key, "0") != str(value):
                problems.append(
                    f"testsuite {suite.get('name')!r}: {key}={suite.get(key)} but counted {value}"
                )
            totals[key] += value
    for key, value in totals.items():
        if root.get(key) is not None and root.get(key) != str(value):
            problems.append(f"testsuites: {key}={root.get(key)} but counted {value}")
    return problems


def _check(element: ET.Element, problems: list[str]) -> None:
    required, optional = _ATTRS[element.tag]
    attributes = set(element.attrib)
    if missing := required - attributes:
        problems.append(f"<{element.tag}> lacks {sorted(missing)}")
    if unknown := attributes - required - optional:
        problems.append(f"<{element.tag}> has unknown attributes {sorted(unknown)}")
    if "timestamp" in attributes and not _TIMESTAMP.fullmatch(element.attrib["timestamp"]):
        problems.append(f"<{element.tag} timestamp> is not an ISO 8601 time without zone")
    for name in attributes & _COUNTERS:
        if not element.attrib[name].isdigit():
            problems.append(f"<{element.tag} {name}> is not a non-negative integer")
    for child in element:
        if child.tag not in _CHILDREN[element.tag]:
            problems.append(f"<{child.tag}> may not appear in <{element.tag}>")
        else:
            _check(child, problems)
