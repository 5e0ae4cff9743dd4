"""attt.toml and the secret files it names, as a careless or hostile hand leaves them: each ends
in one line and exit 2 (no traceback), in bounded time and memory."""

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from attt.scanner.cli import main
from attt.scanner.config import load_config, read_secret
from attt.scanner.errors import ConfigError
from tests.robustness.conftest import run_attt


def history_with(config: Path) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["--config", str(config), "history"])
    assert isinstance(result.exception, SystemExit), result.exception  # no traceback
    return result.exit_code, result.stderr


@pytest.mark.parametrize(
    "text",
    ["x = " + "[" * 5000 + "]" * 5000, "x = " + "{a = " * 2000 + "1" + "}" * 2000, "a." * 5000 + "b = 1"],
    ids=["arrays", "inline-tables", "dotted-keys"],
)
def test_toml_nested_beyond_reason_is_one_line(text: str, tmp_path: Path) -> None:
    config = tmp_path / "attt.toml"
    config.write_text(text)
    code, err = history_with(config)
    assert code == 2 and err.splitlines() == [f"attt: error: {config}: not valid TOML: nested too deeply"], (
        err
    )


def test_a_config_file_over_1_mib_is_refused_unread(tmp_path: Path) -> None:
    config = tmp_path / "attt.toml"
    config.write_text('inventory = "' + "a" * (2 << 20) + '"\n')
    code, err = history_with(config)
    assert code == 2 and err.splitlines() == [
        f"attt: error: {config}: larger than 1 MiB; not a configuration"
    ]


@pytest.mark.parametrize("special", ["/dev/zero", "fifo"])
def test_a_config_that_is_no_regular_file_is_refused(special: str, tmp_path: Path) -> None:
    """/dev/zero was read until memory ran out; a FIFO blocked the nightly job for ever."""
    config = tmp_path / "attt.toml"
    if special == "fifo":
        os.mkfifo(config)
    else:
        config.symlink_to(special)
    ran = run_attt(
        ["--config", str(config), "history"], timeout=30, wrapper=("prlimit", f"--as={1 << 30}", "--")
    )
    assert ran.returncode == 2, ran.terminal
    assert ran.stderr.splitlines() == [f"attt: error: {config}: not a regular file"]


def test_a_secret_file_that_is_not_utf8_names_the_file_not_its_bytes(tmp_path: Path) -> None:
    secret = tmp_path / "smtp.pass"
    secret.write_bytes(b"\xff\xfepw\x00")
    secret.chmod(0o600)
    with pytest.raises(ConfigError) as raised:
        read_secret(None, secret, "mail password")
    assert str(raised.value) == f"{secret}: the mail password file is not UTF-8 text"
    secret.write_bytes(b"x" * (1 << 20))
    with pytest.raises(ConfigError, match="the mail password file is larger than 64 KiB"):
        read_secret(None, secret, "mail password")


def test_a_sender_on_two_lines_is_refused_when_the_config_is_read(tmp_path: Path) -> None:
    # It becomes the From header; the mail library refused it only while writing the first mail,
    # after the scan, with a traceback.
    config = tmp_path / "attt.toml"
    two_lines = "attt@hatinh.gov.vn\\nBcc: ngoai@example.com"  # TOML's own escape: a line break
    config.write_text(f'[notify.email]\nhost = "mail"\nsender = "{two_lines}"\n')
    code, err = history_with(config)
    assert code == 2, err
    (line,) = err.splitlines()
    assert "notify.email.sender" in line and "one line of printable text" in line
    named = "Trung tâm CNTT <attt@hatinh.gov.vn>"
    config.write_text(f'[notify.email]\nhost = "mail"\nsender = "{named}"\n')
    settings = load_config(config).notify
    assert settings is not None and settings.email is not None and settings.email.sender == named
