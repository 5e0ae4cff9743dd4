"""Property-based fuzzing of every loader of user-written YAML: inventory, policy, waivers,
credentials. Every generated document must load or end in one clean one-line ConfigError;
any other exception is a bug. YAML bombs must be refused quickly.

Two kinds of documents: random YAML (random values, and random text mixed with YAML syntax),
and near-valid documents (a valid file with a few random mutations), which reach the deeper
validation code that random YAML rarely gets past.
"""

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attt.scanner.cli import main
from attt.scanner.credentials import load_credentials
from attt.scanner.errors import ConfigError
from attt.scanner.inventory import load_inventory, resolve_targets
from attt.scanner.policy import load_policy
from tests.conftest import FUZZ_COUNTS
from tests.scanner import plugins

EXAMPLES = int(os.environ.get("ATTT_FUZZ_EXAMPLES", "300"))
"""Examples per property; `ATTT_FUZZ_EXAMPLES=5000` for a long local run."""
MAX_ERROR_CHARS = 1200
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

# --- valid documents to mutate --------------------------------------------------------------------

INVENTORY: dict[str, Any] = {
    "province": "Hà Tĩnh",
    "scope": ["127.0.50.0/24", "*.attt.test"],
    "systems": [
        {
            "id": "portal",
            "name": "Cổng dịch vụ công",
            "owner": "Sở Khoa học và Công nghệ",
            "level": 3,
            "tags": ["internet-facing"],
            "allowed_ports": [443],
            "hosts": [
                {
                    "address": "127.0.50.20",
                    "hostname": "good.attt.test",
                    "services": [{"port": 443, "kind": "tls"}, {"port": 22, "kind": "ssh"}],
                }
            ],
        }
    ],
}
POLICY: dict[str, Any] = {
    "id": "fuzz",
    "title": "Fuzz policy",
    "version": "1",
    "settings": {"count": {}},
    "rules": [
        {
            "id": "COUNT-SMALL",
            "control": "count.at_most",
            "params": {"limit": 5},
            "severity": "high",
            "applies_to": {"levels": [3], "tags": ["internet-facing"]},
            "title": {"vi": "Nhỏ", "en": "Small"},
            "remediation": {"vi": "Giảm", "en": "Reduce"},
            "references": [{"standard": "TCVN 11930:2017", "clause": "7.2"}],
        }
    ],
    "overrides": [{"rule": "COUNT-SMALL", "severity": "critical"}],
}
WAIVERS: dict[str, Any] = {
    **POLICY,
    "waivers": [
        {
            "rule": "COUNT-SMALL",
            "system": "portal",
            "host": "127.0.50.20",
            "port": 443,
            "reason": "Thay thế trong quý 3",
            "approved_by": "Giám đốc Sở",
            "decision": "QĐ 12/QĐ-STTTT",
            "expires": "2027-03-31",
        }
    ],
}
CREDENTIALS: dict[str, Any] = {
    "systems": {"portal": {"user": "attt-audit", "password": "s3cret", "sudo": True}},
    "hosts": {"127.0.50.20": {"user": "root", "password_env": "ATTT_FUZZ_PASSWORD"}},
}

NASTY_STRINGS = (
    "",
    " ",
    "-oX /tmp/x",
    "127.0.50.1-5",
    "127.0.50.0/24",
    "10.0.0.1; rm -rf /",
    "$(id)",
    "`id`",
    "a\nb",
    "\x1b[31m",
    "\u202e",
    "<script>",
    "../../etc/passwd",
    "~/.ssh/id_rsa",
    "0x7f000001",
    "9" * 400,
    "ℌ𝔞",
    "*.",
    "*",
    "::1",
    "[::1]",
    "localhost",
    "NaN",
    "2027-02-30",
)
YAML_FRAGMENTS = (
    "&a ",
    "*a",
    "!!python/object:os.system ",
    "!!binary ",
    "<<: ",
    "{",
    "}",
    "[",
    "]",
    ": ",
    "- ",
    "\n  ",
    "\t",
    "%YAML 1.1\n",
    "---\n",
    "...\n",
    "? ",
    "|\n",
    ">-\n",
    '"\\x',
    "'",
    "#",
    "\ufeff",
    "\x00",
    "\udcff",
)


def _scalars() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=30),
        st.dates(),
        st.sampled_from(NASTY_STRINGS),
    )


def _keys(known: Any) -> st.SearchStrategy[Any]:
    names = sorted(_field_names(known))
    return st.one_of(st.sampled_from(names), st.text(max_size=12), st.integers(0, 99), st.booleans())


def _values(known: Any) -> st.SearchStrategy[Any]:
    return st.recursive(
        _scalars(),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_keys(known), inner, max_size=4),
        max_leaves=16,
    )


def _field_names(node: Any) -> set[str]:
    if isinstance(node, dict):
        return {str(k) for k in node} | {n for v in node.values() for n in _field_names(v)}
    if isinstance(node, list):
        return {n for v in node for n in _field_names(v)}
    return set()


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            out += _paths(value, (*prefix, index))
    return out


def _copy(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _copy(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_copy(v) for v in node]
    return node


@st.composite
def near_valid(draw: st.DrawFn, base: dict[str, Any]) -> Any:
    """`base` with one to three mutations: a key deleted, a value replaced, a key added, an
    item duplicated, a value turned into a hostile string."""
    doc: Any = _copy(base)
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(doc) if p]
        if not paths:
            return doc
        path = draw(st.sampled_from(paths))
        parent = doc
        for part in path[:-1]:
            parent = parent[part]
        last = path[-1]
        op = draw(st.sampled_from(["delete", "replace", "add_key", "duplicate", "nasty"]))
        if op == "delete":
            del parent[last]
        elif op == "replace":
            parent[last] = draw(_values(base))
        elif op == "add_key" and isinstance(parent, dict):
            parent[draw(_keys(base))] = draw(_values(base))
        elif op == "duplicate" and isinstance(parent, list):
            parent.append(_copy(parent[last]))
        else:
            parent[last] = draw(st.sampled_from(NASTY_STRINGS))
    return doc


def random_text() -> st.SearchStrategy[str]:
    piece = st.one_of(st.sampled_from(YAML_FRAGMENTS), st.text(max_size=8), st.sampled_from(NASTY_STRINGS))
    return st.lists(piece, max_size=30).map("".join)


def dump(doc: Any) -> str:
    return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)


# --- the loaders under test ------------------------------------------------------------------------


def _load_inventory(path: Path) -> None:
    loaded = load_inventory(path)
    # Names are not resolved while fuzzing: any DNS lookup here could leave the machine.
    resolve_targets(loaded.inventory, resolve=lambda _name: ["127.0.50.20"])


def _load_policy(path: Path) -> None:
    load_policy(str(path), plugins.registry())


def _load_credentials(path: Path) -> None:
    path.chmod(0o600)
    load_credentials(path)


Loader = Callable[[Path], None]
LOADERS: dict[str, tuple[Loader, dict[str, Any]]] = {
    "inventory": (_load_inventory, INVENTORY),
    "policy": (_load_policy, POLICY),
    "waivers": (_load_policy, WAIVERS),
    "credentials": (_load_credentials, CREDENTIALS),
}


def _outcome(kind: str, text: str | bytes, tmp: Path) -> None:
    """Load `text` with the `kind` loader: success or one clean ConfigError, nothing else."""
    loader, _ = LOADERS[kind]
    path = tmp / f"{kind}.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8", errors="surrogateescape")
    FUZZ_COUNTS[kind] += 1
    try:
        loader(path)
        FUZZ_COUNTS[f"{kind} (loaded)"] += 1
    except ConfigError as exc:
        message = str(exc)
        assert message, "empty error message"
        assert "\n" not in message and "\r" not in message, f"multi-line error: {message!r}"
        assert len(message) <= MAX_ERROR_CHARS, f"error message of {len(message)} characters"
        assert "Traceback" not in message


@pytest.fixture(autouse=True)
def _fuzz_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATTT_FUZZ_PASSWORD", "from-the-environment")


@pytest.mark.parametrize("kind", list(LOADERS))
@FUZZ
@given(data=st.data())
def test_near_valid_documents_load_or_fail_cleanly(kind: str, data: st.DataObject, tmp_path: Path) -> None:
    doc = data.draw(near_valid(LOADERS[kind][1]))
    _outcome(kind, dump(doc), tmp_path)


@pytest.mark.parametrize("kind", list(LOADERS))
@FUZZ
@given(doc=st.one_of(_values(POLICY), st.dictionaries(st.text(max_size=10), _values(INVENTORY), max_size=5)))
def test_random_yaml_values_load_or_fail_cleanly(kind: str, doc: Any, tmp_path: Path) -> None:
    _outcome(kind, dump(doc), tmp_path)


@pytest.mark.parametrize("kind", list(LOADERS))
@FUZZ
@given(text=random_text())
def test_random_text_loads_or_fails_cleanly(kind: str, text: str, tmp_path: Path) -> None:
    _outcome(kind, text, tmp_path)


@pytest.mark.parametrize("kind", list(LOADERS))
@FUZZ
@given(raw=st.binary(max_size=200))
def test_random_bytes_load_or_fail_cleanly(kind: str, raw: bytes, tmp_path: Path) -> None:
    _outcome(kind, raw, tmp_path)


def test_valid_bases_load(tmp_path: Path) -> None:
    """The mutation bases themselves are valid, so mutations explore near the accepting path."""
    for kind, (loader, base) in LOADERS.items():
        path = tmp_path / f"{kind}.yaml"
        path.write_text(dump(base), encoding="utf-8")
        loader(path)


# --- the CLI turns the same faults into exit 2 and one line ---------------------------------------

CLI_SAMPLES = {
    "inventory": ["inventory", "validate"],
    "policy": ["policy", "validate"],
}


@pytest.mark.parametrize("kind", list(CLI_SAMPLES))
@settings(FUZZ, max_examples=25)
@given(data=st.data())
def test_cli_exits_2_with_one_line(kind: str, data: st.DataObject, tmp_path: Path) -> None:
    doc = data.draw(near_valid(LOADERS[kind][1]))
    path = tmp_path / "doc.yaml"
    path.write_text(dump(doc), encoding="utf-8")
    result = CliRunner().invoke(main, [*CLI_SAMPLES[kind], str(path)])
    FUZZ_COUNTS[f"cli {kind}"] += 1
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code in (0, 2), result.output
    if result.exit_code == 2:
        # one line; or, for a file with several problems, a line saying how many, then one
        # indented line per problem, each naming the file (and line)
        first, *problems = result.stderr.strip().splitlines()
        assert first.startswith("attt: error: "), result.stderr
        assert all(p.startswith(f"  {path}:") or p.startswith("  … and ") for p in problems), result.stderr


def test_scan_with_bad_inventory_exits_2_before_any_probe(tmp_path: Path) -> None:
    bad = _copy(INVENTORY)
    bad["systems"][0]["hosts"][0]["address"] = "127.0.50.1 -oN /tmp/owned"
    inventory = tmp_path / "inv.yaml"
    inventory.write_text(dump(bad), encoding="utf-8")
    result = CliRunner().invoke(main, ["scan", "-i", str(inventory), "--db", str(tmp_path / "db.sqlite")])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "address" in result.stderr
    assert not (tmp_path / "db.sqlite").exists() or "127.0.50.1" not in (tmp_path / "db.sqlite").read_text(
        errors="replace"
    )


# --- YAML bombs ------------------------------------------------------------------------------------

BILLION_LAUGHS = "\n".join(
    [
        "province: x",
        'a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
        *(f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)),
        "scope: *a9",
    ]
)
BOMBS: dict[str, Callable[[], str]] = {
    "billion laughs": lambda: BILLION_LAUGHS,
    "deep flow nesting": lambda: "province: " + "[" * 100_000 + "]" * 100_000,
    "deep block nesting": lambda: "".join(f"{'  ' * i}k{i}:\n" for i in range(2000)) + "  " * 2000 + "v",
    "huge file": lambda: "province: x\n" + "# padding\n" * 1_000_000,
    "huge scalar": lambda: "province: " + "x" * (9 * 1024 * 1024),
    "merge key": lambda: "base: {a: 1}\nprovince:\n  <<: {a: 1}\n",
    "python tag": lambda: "province: !!python/object/apply:os.system ['id']\n",
}


@pytest.mark.parametrize("kind", ["inventory", "policy", "credentials"])
@pytest.mark.parametrize("bomb", list(BOMBS))
def test_yaml_bombs_are_refused_quickly(kind: str, bomb: str, tmp_path: Path) -> None:
    path = tmp_path / f"{kind}.yaml"
    path.write_text(BOMBS[bomb](), encoding="utf-8")
    loader, _ = LOADERS[kind]
    started = time.process_time()  # work, not waiting: unmoved by the machine's load
    with pytest.raises(ConfigError) as raised:
        loader(path)
    elapsed = time.process_time() - started
    assert elapsed < 1.0, f"{bomb}: {elapsed:.2f} CPU-s before refusing"
    assert "\n" not in str(raised.value)


DENSE_LOAD = """
import sys, time
from pathlib import Path
from attt.scanner._yaml import load_yaml
from attt.scanner.errors import ConfigError
started = time.monotonic()
try:
    load_yaml(Path(sys.argv[1]))
    outcome = "loaded"
except ConfigError:
    outcome = "refused"
print(outcome, time.monotonic() - started)
"""


def test_huge_dense_file_under_the_byte_limit_is_refused_quickly(tmp_path: Path) -> None:
    """7 MB of tiny nodes: PyYAML would need minutes for it, so the loader must refuse it up front.

    Run in a child process with a hard timeout, so a regression costs seconds, not minutes.
    """
    path = tmp_path / "dense.yaml"
    path.write_text("province: x\nitems:\n" + "  - {a: 1, b: [1, 2, 3]}\n" * 280_000, encoding="utf-8")
    try:
        child = subprocess.run(
            [sys.executable, "-c", DENSE_LOAD, str(path)], capture_output=True, text=True, timeout=5
        )
    except subprocess.TimeoutExpired:
        pytest.fail("a 7 MB YAML file of tiny nodes was still being parsed after 5 s")
    outcome, seconds = child.stdout.split()
    assert outcome == "refused" and float(seconds) < 1.0, child.stdout
