"""The credentials file loader: resolution, refusal of shared files, secrets kept out of text."""

import logging
from pathlib import Path

import pytest

from attt.scanner.credentials import load_credentials
from attt.scanner.errors import ConfigError
from attt.scanner.models.target import Host, SystemInfo, Target

SECRET = "correct-horse-battery-staple"


def _write(directory: Path, text: str, mode: int = 0o600) -> Path:
    path = directory / "credentials.yaml"
    path.write_text(text)
    path.chmod(mode)
    return path


def _target(system: str, address: str, ip: str | None = None) -> Target:
    info = SystemInfo(id=system, name="System", owner="Owner", level=3)
    return Target(system=info, host=Host(address=address), ip=ip or address)


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    key = tmp_path / "keys" / "id_ed25519"
    key.parent.mkdir()
    key.write_text("not parsed at load time")
    key.chmod(0o600)
    return key


def test_host_entry_wins_over_system_entry_and_paths_resolve(tmp_path: Path, key_file: Path) -> None:
    # Given a system entry with a relative key path and a host entry with a password
    path = _write(
        tmp_path,
        "systems:\n  portal: {user: audit, key_file: keys/id_ed25519, sudo: true}\n"
        f"hosts:\n  10.0.0.5: {{user: root, password: {SECRET}}}\n",
    )
    store = load_credentials(path)
    # When credentials are looked up per target
    by_system = store.for_target(_target("portal", "10.0.0.4"))
    by_host = store.for_target(_target("portal", "10.0.0.5"))
    other = store.for_target(_target("mail", "10.0.0.9"))
    # Then the host entry wins, the key path is absolute, and unknown targets get nothing
    assert by_system is not None and by_system.user == "audit" and by_system.sudo
    assert by_system.key_file == str(key_file.resolve())
    assert by_host is not None and by_host.password is not None
    assert by_host.password.get_secret_value() == SECRET
    assert other is None


def test_host_entry_matches_pinned_ip_of_a_named_host(tmp_path: Path) -> None:
    path = _write(tmp_path, f"hosts:\n  192.0.2.7: {{user: root, password: {SECRET}}}\n")
    credential = load_credentials(path).for_target(_target("portal", "portal.example.vn", "192.0.2.7"))
    assert credential is not None and credential.user == "root"


def test_password_env_is_read_at_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATTT_TEST_SSH_PW", SECRET)
    path = _write(tmp_path, "systems:\n  portal: {user: audit, password_env: ATTT_TEST_SSH_PW}\n")
    credential = load_credentials(path).for_target(_target("portal", "10.0.0.4"))
    assert credential is not None and credential.password is not None
    assert credential.password.get_secret_value() == SECRET


def test_missing_password_env_names_the_variable_and_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "systems:\n  portal:\n    user: audit\n    password_env: ATTT_UNSET_VAR_X\n")
    with pytest.raises(ConfigError, match=r"credentials.yaml:4: .*ATTT_UNSET_VAR_X is not set"):
        load_credentials(path)


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644])
def test_file_open_to_group_or_others_is_refused(tmp_path: Path, mode: int) -> None:
    path = _write(tmp_path, f"hosts:\n  10.0.0.5: {{user: root, password: {SECRET}}}\n", mode)
    with pytest.raises(ConfigError, match=f"mode {mode:04o}.*chmod 600") as caught:
        load_credentials(path)
    assert SECRET not in str(caught.value)


def test_shared_key_file_is_refused(tmp_path: Path, key_file: Path) -> None:
    key_file.chmod(0o644)
    path = _write(tmp_path, f"hosts:\n  10.0.0.5: {{user: root, key_file: {key_file}}}\n")
    with pytest.raises(ConfigError, match=r":2: hosts, 10.0.0.5, key_file: key file is accessible"):
        load_credentials(path)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (f"{{user: root, password: {SECRET}, key_file: /k}}", "exactly one of"),
        ("{user: root}", "exactly one of"),
        (f"{{user: root, pasword: {SECRET}}}", "unknown key"),
        (f"{{user: 'root; rm -rf /', password: {SECRET}}}", "user"),
    ],
)
def test_bad_entries_name_the_line_and_never_the_secret(tmp_path: Path, entry: str, message: str) -> None:
    path = _write(tmp_path, f"# comment\nhosts:\n  10.0.0.5: {entry}\n")
    with pytest.raises(ConfigError, match=message) as caught:
        load_credentials(path)
    assert "credentials.yaml:3" in str(caught.value)
    assert SECRET not in str(caught.value)


def test_secrets_stay_out_of_repr_and_logs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = _write(tmp_path, f"hosts:\n  10.0.0.5: {{user: root, password: {SECRET}}}\n")
    store = load_credentials(path)
    credential = store.for_target(_target("portal", "10.0.0.5"))
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("attt").debug("store %r credential %r %s", store, credential, credential)
    assert SECRET not in repr(store) + repr(credential) + str(credential) + caplog.text
