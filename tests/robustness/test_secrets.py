"""Secrets stay secret: a credential's password never reaches a report, the store, a log line,
the terminal or an error message; a credentials file others may read is refused (exit 2).
"""

import secrets
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from attt.scanner.cli import main
from attt.scanner.credentials import load_credentials
from attt.scanner.errors import ConfigError
from tests.robustness.conftest import run_attt
from tests.servers.hostile import NET, HostileLab

FORMATS = "html,json,junit,sarif,csv"


def _marker(kind: str) -> str:
    return f"ATTT-SECRET-{kind}-{secrets.token_hex(8)}"


def _inventory(path: Path) -> Path:
    def hosts() -> list[dict[str, object]]:
        return [{"address": f"{NET}.20", "services": [{"port": 22, "kind": "ssh"}]}]

    systems = [
        {"id": system_id, "name": system_id, "owner": "Sở KH&CN", "level": 3, "hosts": hosts()}
        for system_id in ("file-password", "env-password")
    ]
    path.write_text(yaml.safe_dump({"province": "Hà Tĩnh", "scope": [f"{NET}.0/24"], "systems": systems}))
    return path


def _credentials(path: Path, password: str, mode: int = 0o600) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "systems": {
                    "file-password": {"user": "audit", "password": password, "sudo": True},
                    "env-password": {"user": "audit", "password_env": "ATTT_TEST_SSH_PASSWORD"},
                }
            }
        )
    )
    path.chmod(mode)
    return path


def test_no_secret_anywhere_after_a_scan(hostile: HostileLab, tmp_path: Path) -> None:
    in_file, in_env = _marker("file"), _marker("env")
    home = tmp_path / "home"
    home.mkdir()
    inventory = _inventory(tmp_path / "inventory.yaml")
    credentials = _credentials(tmp_path / "credentials.yaml", in_file)
    out, db = tmp_path / "out", tmp_path / "store.sqlite"
    options = ["--check", "ssh", "--timeout", "10", "--format", FORMATS, "--out", str(out), "--db", str(db)]
    run = run_attt(
        ["scan", "-i", str(inventory), "--credentials", str(credentials), *options],
        env={
            "ATTT_TEST_SSH_PASSWORD": in_env,
            "HOME": str(home),
            "XDG_DATA_HOME": str(home / "data"),
            "XDG_STATE_HOME": str(home / "state"),
            "XDG_CACHE_HOME": str(home / "cache"),
        },
        timeout=60,
    )
    assert run.returncode in (0, 1, 3), run.terminal[-2000:]
    # The credential was really used: the probe logged in (and was refused by this sshd).
    assert "config_error" in (out / "report.json").read_text(encoding="utf-8")

    searched = [p for p in tmp_path.rglob("*") if p.is_file() and p != credentials]
    assert {p.name for p in searched} >= {"report.html", "report.json", "report.sarif", "store.sqlite"}
    hits = [
        (str(p.relative_to(tmp_path)), marker)
        for p in searched
        for marker in (in_file, in_env)
        if marker.encode() in p.read_bytes()
    ]
    hits += [("terminal", m) for m in (in_file, in_env) if m in run.terminal]
    assert hits == [], f"secret leaks: {hits}"


def test_a_credentials_file_others_can_read_is_refused(tmp_path: Path) -> None:
    inventory = _inventory(tmp_path / "inventory.yaml")
    marker = _marker("shared")
    credentials = _credentials(tmp_path / "credentials.yaml", marker, mode=0o644)
    db = tmp_path / "store.sqlite"
    result = CliRunner().invoke(
        main, ["scan", "-i", str(inventory), "--credentials", str(credentials), "--db", str(db)]
    )
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "chmod 600" in lines[0], result.stderr
    assert marker not in result.output + result.stderr
    assert not db.exists(), "nothing may be scanned with a refused credentials file"


@pytest.mark.parametrize(
    "text",
    [
        "hosts:\n  127.0.50.20: {user: 'bad user!', password: MARKER}\n",
        "hosts:\n  127.0.50.20: {user: audit, password: MARKER, password_env: X}\n",
        "hosts:\n  127.0.50.20: {user: audit, password: [MARKER]}\n",
        "hosts:\n  127.0.50.20: {user: audit, password: {MARKER: 1}}\n",
        "hosts:\n  127.0.50.20: {user: audit, key_file: MARKER}\n",
        "hosts:\n  127.0.50.20:\n    user: audit\n    password:MARKER\n",
        "hosts:\n  127.0.50.20:\n    user: audit\n    password: MARKER\n   sudo: true\n",
        "hosts:\n  127.0.50.20: {user: audit, password: 'MARKER\n",
        "hosts:\n  127.0.50.20: {user: audit, password: !!binary MARKER}\n",
        "hosts:\n  127.0.50.20: {user: audit, password: MARKER}\n  127.0.50.20: {user: x}\n",
    ],
)
def test_errors_about_a_credential_never_quote_its_secret(text: str, tmp_path: Path) -> None:
    """Mistakes in the file (wrong types, bad YAML around the password) end in an error that
    names the place, never the password."""
    marker = _marker("error")
    path = tmp_path / "credentials.yaml"
    path.write_text(text.replace("MARKER", marker))
    path.chmod(0o600)
    with pytest.raises(ConfigError) as raised:
        load_credentials(path)
    assert marker not in str(raised.value), str(raised.value)


def test_a_loaded_credential_does_not_show_its_secret(tmp_path: Path) -> None:
    marker = _marker("repr")
    path = _credentials(tmp_path / "credentials.yaml", marker)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ATTT_TEST_SSH_PASSWORD", marker)
        store = load_credentials(path)
    texts = [repr(store), str(store), *(repr(c) for c in store.by_system.values())]
    assert not [t for t in texts if marker in t]
