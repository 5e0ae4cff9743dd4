"""A library's warning that quotes what a target sent reaches the terminal as attt's, on one
bounded line, with every control character made inert."""

import logging

import pytest

from attt.scanner.logs import MAX_LOG_CHARS, TerminalLog, log_to_terminal

HOSTILE = "Unexpected value in HSTS header: '\x1b[2J\x1b]0;pwn\x07=1; " + "A" * 1500 + "; \u202epreload'"


def test_a_librarys_warning_is_one_bounded_inert_line_of_attts(capsys: pytest.CaptureFixture[str]) -> None:
    log_to_terminal()
    try:
        logging.getLogger("sslyze.plugins.http_headers_plugin").warning(HOSTILE)
    finally:
        root = logging.getLogger()
        for handler in [h for h in root.handlers if isinstance(h, TerminalLog)]:
            root.removeHandler(handler)
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("attt: warning: sslyze.plugins.http_headers_plugin: Unexpected value in HSTS")
    assert "\x1b" not in line and "\x07" not in line and "\u202e" not in line
    assert len(line) < MAX_LOG_CHARS + 120
