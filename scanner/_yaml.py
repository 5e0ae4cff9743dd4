"""Safe YAML loading that remembers where every node came from, so errors name file and line.

Inventories and policies are small, hand-written files. The loader accepts plain YAML only:
no anchors or aliases (a few aliases expand to gigabytes), no custom tags, no duplicate keys
(PyYAML would silently keep the last one), bounded nesting and size.
"""

import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import yaml
from pydantic import BaseModel, ValidationError

from attt.scanner.errors import ConfigError, Problem

MAX_BYTES = 2 * 1024 * 1024
MAX_NODES = 100_000
"""About ten times the values of a province's whole inventory."""
MAX_DEPTH = 50
MAX_MESSAGE_CHARS = 300

Loc = tuple[Any, ...]
"""A path into the data: mapping keys and sequence indexes, as pydantic's error `loc`."""

M = TypeVar("M", bound=BaseModel)

_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_STR_TAG = "tag:yaml.org,2002:str"
_SCALAR_TAGS = frozenset(
    f"tag:yaml.org,2002:{name}" for name in ("str", "int", "float", "bool", "null", "timestamp")
)
_QUOTE_HINT = "; quote a value that starts with * or &"
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]+")


@dataclass(frozen=True)
class YamlDoc:
    """A loaded YAML file: plain Python values plus the line of every key and item."""

    data: dict[str, Any]
    path: Path
    name: str
    """How errors name the file (the path as given, or `bundled:<id>`)."""
    sha256: str
    """Hash of the exact bytes that were parsed."""
    lines: Mapping[Loc, int]

    def line_of(self, loc: Sequence[Any]) -> int:
        """Line of the node at `loc`, or of its nearest parent that exists in the file."""
        best = self.lines.get((), 1)
        for end in range(1, len(loc) + 1):
            line = self.lines.get(tuple(loc[:end]))
            if line is None:
                break
            best = line
        return best

    def error(self, loc: Sequence[Any], message: str, *, field: str | None = None) -> ConfigError:
        """A one-line `file:line: where: message` error for the node at `loc`, the place named
        as a user names it (`place_steps`), or by `field` when given."""
        from attt.scanner.messages import problem_text  # the catalog module imports this one's errors

        place = place_steps(self.data, tuple(loc)) if field is None else (("place_field", one_line(field)),)
        problem = Problem(self.name, self.line_of(loc), place, "other", one_line(message))
        return ConfigError(problem_text(problem, "en"), (problem,))


def dotted(loc: Sequence[Any]) -> str:
    """`systems[0].hosts[1].address` for ('systems', 0, 'hosts', 1, 'address')."""
    out = ""
    for part in loc:
        if isinstance(part, int) and not isinstance(part, bool):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def one_line(text: str) -> str:
    """Collapse control characters and bound the length so a message stays one readable line."""
    flat = _CONTROL_CHARS.sub(" ", text).strip()
    return flat if len(flat) <= MAX_MESSAGE_CHARS else flat[: MAX_MESSAGE_CHARS - 1] + "…"


def load_yaml(path: Path, name: str | None = None) -> YamlDoc:
    """Read and parse a YAML file whose top level is a mapping; refuse anything unsafe."""
    label = name if name is not None else str(path)
    try:
        if not path.is_file():
            raise ConfigError(f"{label}: no such file")
        with path.open("rb") as stream:
            raw = stream.read(MAX_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{label}: cannot read: {exc.strerror or exc}") from None
    return _parse(raw, path, label)


def load_yaml_text(text: str, name: str = "<text>") -> YamlDoc:
    """Parse YAML given as text (tests, stdin); errors name it `name`."""
    return _parse(text.encode("utf-8"), Path(name), name)


MAX_PROBLEMS = 20
"""Problems one error lists; a file with more is mostly wrong, and the count says so."""
_COLLECTIONS = {"systems": ("place_system", "id"), "hosts": ("place_host", "address"),
                "services": ("place_service", "port"), "rules": ("place_rule", "id"),
                "waivers": ("place_waiver", "rule")}  # fmt: skip
"""Lists whose items a user knows by a field: `system 'qlvb'` rather than `systems[4]`."""


def validate(model: type[M], doc: YamlDoc, data: Any = None, *, at: Loc = ()) -> M:
    """Validate `data` (default: the whole document) found at `at` in `doc` with `model`.

    Raises ConfigError listing every problem (up to MAX_PROBLEMS), each with file, line, and the
    place in the user's terms: the system, host or rule by its id, items counted from 1.
    """
    value = doc.data if data is None else data
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        raise problems_error(doc, exc, value, at) from None


def problems_error(doc: YamlDoc, exc: ValidationError, value: Any, at: Loc = ()) -> ConfigError:
    """A ConfigError holding every problem of a validation, its English text one per line."""
    from attt.scanner.messages import problem_text  # the catalog module imports this one's errors

    raw = exc.errors(include_url=False)
    # A list whose item failed is reported short of items too: the item's own error says it all.
    errors = [e for e in raw if not any(_under(tuple(o["loc"]), tuple(e["loc"])) for o in raw)]
    problems = tuple(_problem(doc, e, value, at) for e in errors[:MAX_PROBLEMS])
    more = max(0, len(errors) - MAX_PROBLEMS)
    # One line, as every attt error: the first problem and how many follow. The command line
    # prints them all, one per line, in the user's language (`ConfigError.problems`).
    others = len(problems) - 1 + more
    suffix = f" (+{others} more problem{'s' if others > 1 else ''})" if others else ""
    return ConfigError(problem_text(problems[0], "en") + suffix, problems, more)


def _under(loc: Loc, parent: Loc) -> bool:
    return len(loc) > len(parent) and loc[: len(parent)] == parent


def _problem(doc: YamlDoc, error: Any, value: Any, at: Loc) -> Problem:
    loc = tuple(error["loc"])
    path = data_path(value, loc)
    ctx = {k: str(v) for k, v in (error.get("ctx") or {}).items()}
    given = error.get("input")
    values = {"value": _shown(given), **ctx} if not isinstance(given, dict | list) else dict(ctx)
    return Problem(
        file=doc.name,
        line=doc.line_of((*at, *loc)),
        place=place_steps(doc.data, (*at, *path)),
        kind=error["type"],
        detail=_message(error["type"], error["msg"]),
        values=values,
    )


def _shown(value: Any) -> str:
    return one_line(str(value))[:80]


def _short(text: str, limit: int = 60) -> str:
    """An id naming a place: bounded, so a hostile one cannot crowd out the message."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def place_steps(root: Any, path: Loc) -> tuple[tuple[str, ...], ...]:
    """Where `path` points, as a user names it: ("place_system", "qlvb"), ("place_field", "tags"),
    ("place_item", "tags", "1")."""
    steps: list[tuple[str, ...]] = []
    node = root
    for part in path:
        if isinstance(part, int) and isinstance(node, list) and 0 <= part < len(node):
            key = steps.pop()[1] if steps and steps[-1][0] == "place_field" else ""
            item = node[part]
            named = _COLLECTIONS.get(key)
            if named and isinstance(item, dict) and item.get(named[1]) is not None:
                steps.append((named[0], _short(one_line(str(item[named[1]])))))
            else:
                steps.append(("place_item", key, str(part + 1)))
            node = item
        else:
            steps.append(("place_field", one_line(str(part))))
            node = node.get(part) if isinstance(node, dict) else None
    return tuple(steps)


def first_error(exc: ValidationError) -> tuple[Loc, str, int]:
    """The first error's loc and a readable message, and how many errors follow it."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    return tuple(first["loc"]), _message(first["type"], first["msg"]), len(errors) - 1


def with_more(message: str, more: int) -> str:
    if more == 0:
        return message
    return f"{message} (+{more} more error{'s' if more > 1 else ''})"


def data_path(data: Any, loc: Loc) -> Loc:
    """The part of a pydantic `loc` that names data: the keys and indexes that exist, plus the
    first missing key; pydantic's union and validator tags after that are dropped."""
    out: list[Any] = []
    node = data
    for part in loc:
        if isinstance(node, dict):
            out.append(part)
            if part not in node:
                break
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            out.append(part)
            node = node[part]
        else:
            break
    return tuple(out)


def _message(kind: str, msg: str) -> str:
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    return msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")


class _Refused(yaml.MarkedYAMLError):
    """YAML that is well formed but not accepted here (anchors, tags, depth, duplicates)."""

    def __init__(self, problem: str, mark: Any) -> None:
        super().__init__(problem=problem, problem_mark=mark)


class _Loader(yaml.CSafeLoader):
    """libyaml's safe loader: several times faster than the pure-Python one, same node marks."""


def _parse(raw: bytes, path: Path, label: str) -> YamlDoc:
    if len(raw) > MAX_BYTES:
        raise ConfigError(f"{label}: larger than {MAX_BYTES // (1024 * 1024)} MiB; refused")
    try:
        text = raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{label}:{line}: not valid UTF-8 (byte offset {exc.start})") from None
    lines: dict[Loc, int] = {}
    try:
        loader = _Loader(text)
        try:
            data = _Builder(loader, lines, label).document()
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        problem = ", ".join(part for part in (exc.context, exc.problem) if part) or "invalid YAML"
        if exc.context is not None and ("alias" in exc.context or "anchor" in exc.context):
            problem += _QUOTE_HINT
        raise ConfigError(f"{label}:{line}: {one_line(problem)}") from None
    except yaml.reader.ReaderError as exc:
        line = text[: exc.position].count("\n") + 1
        raise ConfigError(f"{label}:{line}: {one_line(exc.reason)} (character {exc.character!r})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{label}: {one_line(str(exc))}") from None
    return YamlDoc(data, path, label, hashlib.sha256(raw).hexdigest(), lines)


class _Builder:
    """Plain Python values straight from libyaml's event stream, in one pass, recording the line
    of every key and item; no node tree is built. What no inventory or policy needs is refused
    as soon as its event arrives: anchors and aliases (billion laughs), tags other than the plain
    ones, merge keys, keys that are not scalars, duplicate keys, deep nesting, and more nodes than
    a real file has (a dense file would otherwise take seconds to load). Building PyYAML's node
    tree first, after a pass over the events to refuse those, read a province's inventory three
    times over (0.09 s for 1,000 systems, against 0.04 s in one pass)."""

    def __init__(self, loader: _Loader, lines: dict[Loc, int], label: str) -> None:
        self._loader = loader
        self._lines = lines
        self._label = label
        self._nodes = 0
        self._tags: dict[str, str] = {}
        """Plain scalar -> its resolved tag: a province's file repeats the same few keys."""
        # libyaml's own methods, called once or twice per event. The stubs type an event as
        # optional and its marks as either of two classes; the stream checked with `check_event`
        # always has one, and both classes have the same fields.
        self._next: Callable[[], Any] = loader.get_event
        self._peek: Callable[[], Any] = loader.peek_event
        self._at: Callable[[type[yaml.Event]], bool] = loader.check_event

    def document(self) -> dict[str, Any]:
        """The one document of the stream, a mapping."""
        self._next()  # the stream's start
        if self._at(yaml.StreamEndEvent):
            raise ConfigError(f"{self._label}:1: the file is empty; expected a mapping")
        start = self._next()  # the document's start
        if not self._at(yaml.MappingStartEvent):
            line = self._peek().start_mark.line + 1
            raise ConfigError(f"{self._label}:{line}: the top level must be a mapping")
        data = self._value((), 0)
        self._next()  # the document's end
        if not self._at(yaml.StreamEndEvent):
            raise yaml.composer.ComposerError(
                "expected a single document in the stream",
                start.start_mark,
                "but found another document",
                self._next().start_mark,
            )
        return cast(dict[str, Any], data)

    def _value(self, loc: Loc, depth: int) -> Any:
        """The node whose first event comes next, at `loc`, with `depth` collections around it."""
        event = self._next()
        if event.anchor is not None:  # an anchor, or an alias (which names one)
            raise _Refused("anchors and aliases (& and *) are not allowed" + _QUOTE_HINT, event.start_mark)
        self._nodes += 1
        if self._nodes > MAX_NODES:
            raise _Refused(f"more than {MAX_NODES} values; refused", event.start_mark)
        if type(event) is yaml.ScalarEvent:
            return self._scalar(event, loc)
        if depth + 1 > MAX_DEPTH:
            raise _Refused(f"nested deeper than {MAX_DEPTH} levels", event.start_mark)
        if not loc:
            self._lines[()] = event.start_mark.line + 1
        if type(event) is yaml.MappingStartEvent:
            self._collection_tag(event, _MAP_TAG)
            return self._mapping(loc, depth + 1)
        self._collection_tag(event, _SEQ_TAG)
        items: list[Any] = []
        while not self._at(yaml.SequenceEndEvent):
            self._lines[(*loc, len(items))] = self._peek().start_mark.line + 1
            items.append(self._value((*loc, len(items)), depth + 1))
        self._next()
        return items

    def _mapping(self, loc: Loc, depth: int) -> dict[Any, Any]:
        mapping: dict[Any, Any] = {}
        while not self._at(yaml.MappingEndEvent):
            key_event = self._peek()
            at = key_event.start_mark
            if type(key_event) is not yaml.ScalarEvent:
                raise _Refused("mapping keys must be plain scalars", at)
            if self._tag(key_event) == _MERGE_TAG:
                raise _Refused("merge keys (<<) are not allowed", at)
            key = self._value(loc, depth)
            if key in mapping:
                raise _Refused(f"duplicate key {key!r}", at)
            self._lines[(*loc, key)] = at.line + 1
            mapping[key] = self._value((*loc, key), depth)
        self._next()
        return mapping

    def _collection_tag(self, event: Any, plain: str) -> None:
        if event.tag not in (None, "!", plain):
            raise _Refused(f"tag {event.tag} is not allowed", event.start_mark)

    def _tag(self, event: Any) -> str:
        if event.tag not in (None, "!"):
            return str(event.tag)
        if not event.implicit[0]:
            return _STR_TAG  # quoted: a string whatever it spells
        tag = self._tags.get(event.value)
        if tag is None:
            resolved: str = self._loader.resolve(yaml.ScalarNode, event.value, (True, False))  # type: ignore[no-untyped-call]
            tag = self._tags[event.value] = resolved
        return tag

    def _scalar(self, event: Any, loc: Loc) -> Any:
        tag = self._tag(event)
        if tag == _STR_TAG:
            return event.value  # what the constructor gives a string, without its bookkeeping per node
        if tag not in _SCALAR_TAGS:
            raise _Refused(f"tag {tag} is not allowed", event.start_mark)
        node = yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark, event.style)
        try:
            return self._loader.construct_object(node, deep=True)
        except ValueError as exc:  # e.g. an integer longer than Python converts, or a bad date
            where = f"{dotted(loc)}: " if loc else ""
            raise _Refused(f"{where}bad value: {exc}", event.start_mark) from None
