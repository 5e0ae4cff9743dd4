"""The safe YAML loader: what it refuses, the lines it reports, and the values it builds."""

import datetime
import hashlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import Field

from attt.scanner import _yaml
from attt.scanner._yaml import load_yaml, load_yaml_text, validate
from attt.scanner.errors import ConfigError
from attt.scanner.models.base import Frozen


def test_values_and_lines() -> None:
    doc = load_yaml_text(
        "# comment\nname: x\nwhen: 2027-03-31\nat: 2027-03-31 10:00:00\n"
        "items:\n  - 1\n  - {a: [true, null, 1.5]}\n",
        "f.yaml",
    )
    assert doc.data == {
        "name": "x",
        "when": datetime.date(2027, 3, 31),
        "at": datetime.datetime(2027, 3, 31, 10, 0),
        "items": [1, {"a": [True, None, 1.5]}],
    }
    assert type(doc.data["when"]) is datetime.date
    assert doc.line_of(("name",)) == 2
    assert doc.line_of(("items", 1, "a", 2)) == 7
    # A path that does not exist points at its nearest parent.
    assert doc.line_of(("items", 1, "missing", 0)) == 7
    assert doc.line_of(("nope",)) == 2
    assert doc.name == "f.yaml"


def test_file_and_sha256(tmp_path: Path) -> None:
    path = tmp_path / "f.yaml"
    path.write_bytes(b"\xef\xbb\xbfa: 1\n")
    doc = load_yaml(path)
    assert doc.data == {"a": 1}
    assert doc.path == path
    assert doc.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


REFUSED = [
    # (yaml text, line, text in the message)
    ("a: &x [1]\nb: *x\n", 1, "anchors and aliases"),
    ("a: 1\nb: *x\n", 2, ""),  # an alias with no anchor is a syntax error
    ("a: 1\nb:\n  c: 1\n  c: 2\n", 4, "duplicate key 'c'"),
    ("- 1\n", 1, "top level must be a mapping"),
    ("just text\n", 1, "top level must be a mapping"),
    ("", 1, "empty"),
    ("# only a comment\n", 1, "empty"),
    ("a: 1\nb: [\n", 3, "expected"),
    ("a: 1\n  b: 2\n", 2, "mapping values are not allowed"),
    ("a: 1\n---\nb: 2\n", 2, "expected a single document"),
    ("a: !!python/object/apply:os.system [ls]\n", 1, "tag tag:yaml.org,2002:python/object/apply:os.system"),
    ("a: !!binary aGk=\n", 1, "not allowed"),
    ("a: !!set {x: null}\n", 1, "not allowed"),
    ("a: !custom x\n", 1, "tag !custom is not allowed"),
    ("<<: {a: 1}\n", 1, "merge keys"),
    ("? [a]\n: 1\n", 1, "keys must be plain scalars"),
    ("a: \x07\n", 1, "characters are not allowed"),
    ("a: 1\nb: " + "9" * 5000 + "\n", 2, "b: bad value"),
    ("a:\n  b: 2027-02-30\n", 2, "a.b: bad value"),
    ("a: " + "[" * 60 + "]" * 60 + "\n", 1, "nested deeper than 50"),
]


@pytest.mark.parametrize(("text", "line", "message"), REFUSED)
def test_refused(text: str, line: int, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_yaml_text(text, "f.yaml")
    assert str(info.value).startswith(f"f.yaml:{line}: "), str(info.value)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_nesting_up_to_the_limit_loads() -> None:
    depth = _yaml.MAX_DEPTH - 1  # the top-level mapping is one level
    doc = load_yaml_text("a: " + "[" * depth + "]" * depth + "\n")
    node, levels = doc.data["a"], 0
    while node:
        node, levels = node[0], levels + 1
    assert levels == depth - 1


def test_billion_laughs_is_refused_at_the_first_anchor() -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [
        f"{c}: &{c} [*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p}]"
        for p, c in zip("abcdefgh", "bcdefghi", strict=True)
    ]
    with pytest.raises(ConfigError, match=r"^bomb:1: anchors and aliases"):
        load_yaml_text("\n".join(lines), "bomb")


def test_non_utf8(tmp_path: Path) -> None:
    path = tmp_path / "f.yaml"
    path.write_bytes(b"a: 1\nb: caf\xe9\n")
    with pytest.raises(ConfigError, match=r":2: not valid UTF-8"):
        load_yaml(path)


def test_too_large(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_yaml, "MAX_BYTES", 1024)
    path = tmp_path / "f.yaml"
    path.write_text("a: " + "x" * 2000 + "\n")
    with pytest.raises(ConfigError, match=r"larger than"):
        load_yaml(path)


def test_default_limits_leave_room_for_a_province() -> None:
    # A 1,000-system inventory is about 300 KB and 20,000 values.
    assert _yaml.MAX_BYTES == 2 * 1024 * 1024
    assert _yaml.MAX_NODES == 100_000


def test_more_values_than_the_cap_are_refused_with_a_line(tmp_path: Path) -> None:
    path = tmp_path / "dense.yaml"
    path.write_text("items:\n" + "  - [1, 2, 3, 4]\n" * 30_000)
    with pytest.raises(ConfigError, match=r"dense.yaml:\d+: more than 100000 values"):
        load_yaml(path)


@pytest.mark.parametrize("make", [lambda p: p / "missing.yaml", lambda p: p])
def test_not_a_file(tmp_path: Path, make) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_yaml(make(tmp_path))


class Inner(Frozen):
    port: int = Field(ge=1, le=65535)


class Outer(Frozen):
    name: str
    items: tuple[Inner, ...] = ()
    when: datetime.date | None = None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "name: x\nitems:\n  - port: 1\n  - port: 0\n",
            "f.yaml:4: items item 2, port: '0' is too small: at least 1",
        ),
        ("name: x\nitems:\n  - port: 1\n  - {}\n", "f.yaml:4: items item 2, port: required, but missing"),
        ("name: x\nitems:\n  - port: 1\n    prot: 2\n", "f.yaml:4: items item 1, prot: unknown key"),
        ("items: []\n", "f.yaml:1: name: required, but missing"),
        ("name: x\nwhen: soon\n", "f.yaml:2: when: 'soon' is not a date (YYYY-MM-DD)"),
        (
            "name: [x]\nitems: [{port: 0}]\n",
            "f.yaml:1: name: must be text (+1 more problem)",
        ),
    ],
)
def test_validate_names_line_and_field(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        validate(Outer, load_yaml_text(text, "f.yaml"))
    assert str(info.value).startswith(expected), str(info.value)


def test_validate_subtree_at_a_prefix() -> None:
    doc = load_yaml_text("x:\n  y:\n    port: 99999\n", "f.yaml")
    with pytest.raises(ConfigError, match=r"^f\.yaml:3: x, y, port: "):
        validate(Inner, doc, doc.data["x"]["y"], at=("x", "y"))


def test_hostile_key_stays_on_one_line() -> None:
    doc = load_yaml_text('name: x\n"evil\\nkey\\u2028": 1\n', "f.yaml")
    with pytest.raises(ConfigError) as info:
        validate(Outer, doc)
    assert str(info.value).startswith("f.yaml:2: evil key: unknown key")
    assert "\n" not in str(info.value)


def test_date_stays_a_date_through_validation() -> None:
    assert validate(Outer, load_yaml_text("name: x\nwhen: 2027-03-31\n")).when == datetime.date(2027, 3, 31)


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_loads_or_fails_with_one_line(text: str) -> None:
    try:
        load_yaml_text(text, "f.yaml")
    except ConfigError as exc:
        message = str(exc)
    else:
        return
    assert message.startswith("f.yaml:")
    assert "\n" not in message
