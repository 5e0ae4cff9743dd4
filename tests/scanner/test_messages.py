"""The command line speaks the user's language: --lang, ATTT_LANG, the locale; and a bad file's
problems come all at once, each with file:line and the place named as the user wrote it."""

from pathlib import Path

import pytest
from click.testing import CliRunner

from attt.scanner.cli import main
from attt.scanner.messages import catalog, language
from attt.scanner.store import Store

BAD = """\
province: Hà Tĩnh
scope: [127.0.0.0/8]
systems:
  - id: cong-dvc
    name: Cổng dịch vụ công
    owner: Văn phòng UBND tỉnh
    level: 7
    tags: [Internet Facing]
    hosts:
      - address: 127.0.0.1
  - id: qlvb
    name: Quản lý văn bản
    owner: Sở KH&CN
    level: 2
    hosts:
      - address: 127.0.0.2
        services: [{port: 70000, kind: tls}]
"""


def test_both_catalogs_have_the_same_keys():
    assert catalog("vi").keys() == catalog("en").keys()


@pytest.mark.parametrize(
    ("explicit", "environ", "expected"),
    [
        ("en", {"ATTT_LANG": "vi"}, "en"),
        (None, {"ATTT_LANG": "en", "LANG": "vi_VN.UTF-8"}, "en"),
        (None, {"LANG": "en_US.UTF-8"}, "en"),
        (None, {"LC_ALL": "vi_VN.UTF-8", "LANG": "en_US.UTF-8"}, "vi"),
        (None, {"LANG": "C.UTF-8"}, "en"),
        (None, {"ATTT_LANG": "fr"}, "en"),
    ],
)
def test_language_comes_from_option_then_environment_then_locale(explicit, environ, expected):
    assert language(explicit, environ) == expected


def run(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    result = CliRunner().invoke(main, args, env={"LANG": "C.UTF-8", "LC_ALL": "", **env})
    return result.exit_code, result.output


def test_inventory_errors_all_at_once_in_vietnamese(tmp_path: Path):
    path = tmp_path / "inventory.yaml"
    path.write_text(BAD, encoding="utf-8")
    code, out = run(["inventory", "validate", str(path)], {"ATTT_LANG": "vi"})
    assert code == 2
    assert out.splitlines() == [
        f"attt: lỗi: {path}: 3 lỗi",
        f"  {path}:7: hệ thống 'cong-dvc', level: '7' quá lớn: tối đa 5",
        f"  {path}:8: hệ thống 'cong-dvc', tags mục 1: 'Internet Facing' không hợp lệ ở đây: chỉ dùng"
        " chữ thường a-z, chữ số và '-', bắt đầu bằng chữ hoặc số, tối đa 63 ký tự",
        f"  {path}:17: hệ thống 'qlvb', máy chủ '127.0.0.2', cổng 70000, port: '70000' quá lớn: tối đa 65535",
    ]
    assert "Traceback" not in out


def test_inventory_errors_in_english_with_lang(tmp_path: Path):
    path = tmp_path / "inventory.yaml"
    path.write_text(BAD, encoding="utf-8")
    code, out = run(["--lang", "en", "inventory", "validate", str(path)], {"ATTT_LANG": "vi"})
    assert code == 2
    assert out.splitlines()[0] == f"attt: error: {path}: 3 problems"
    assert f"{path}:7: system 'cong-dvc', level: '7' is too large: at most 5" in out


def test_messages_follow_the_locale(tmp_path: Path):
    db = str(tmp_path / "attt.db")
    Store(Path(db)).close()
    assert run(["history", "--db", db], {"LANG": "vi_VN.UTF-8"})[1] == "chưa lưu lượt quét nào\n"
    assert run(["history", "--db", db], {"LANG": "en_GB.UTF-8"})[1] == "no runs stored yet\n"


def test_without_a_language_messages_are_english_and_reports_vietnamese():
    assert language(None, {"LANG": "C.UTF-8"}, fallback="vi") == "vi"
