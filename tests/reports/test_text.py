"""Neutralising hostile characters before any renderer sees them."""

import pytest

from attt.reports._text import as_text, clean_json, spreadsheet_cell
from attt.scanner.text import clean, clean_line


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"),
        ("a\x00b\x7fc\x85d", "a\\x00b\\x7fc\\x85d"),
        ("abc\u202egnp.exe", "abc\\u202egnp.exe"),
        ("zero\u200bwidth\ufeff", "zero\\u200bwidth\\ufeff"),
        ("Sở Khoa học và Công nghệ", "Sở Khoa học và Công nghệ"),
        ("line\nnext\ttab", "line\nnext\ttab"),
    ],
)
def test_clean_makes_control_and_format_characters_visible(raw, shown):
    assert clean(raw) == shown


def test_clean_line_keeps_a_value_on_one_line():
    assert clean_line("a\nb\tc\rd") == "a\\nb\\tc\\x0dd"


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_spreadsheet_cell_neutralises_formula_starts(start):
    cell = spreadsheet_cell(start + "1+1")
    assert cell.startswith("'")
    assert "\t" not in cell
    assert "\r" not in cell


def test_spreadsheet_cell_leaves_plain_text_alone():
    assert spreadsheet_cell("TLS 1.0 bật") == "TLS 1.0 bật"


def test_as_text_and_clean_json_clean_nested_values():
    value = {"k\x1b": ["v\u202e", 3, None]}
    assert clean_json(value) == {"k\\x1b": ["v\\u202e", 3, None]}
    assert "\u202e" not in as_text(value)
    assert "\x1b" not in as_text(value)
