"""Text a target, an inventory or a policy carries is printed inert everywhere attt prints:
the progress lines, the terminal summary and `policy show`, through a pipe as on a terminal."""

import io
import re
from pathlib import Path

from click.testing import CliRunner

from attt.scanner.cli import main
from attt.scanner.models.observation import Observation
from attt.scanner.progress import LineProgress
from tests import factories as F

RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
E2E_POLICY = Path(__file__).resolve().parents[1] / "scanner" / "e2e" / "policy.yaml"


def test_progress_lines_show_a_hostile_address_inert() -> None:
    # Addresses are validated on load; a run stored before scope ids were refused still has one.
    hostile = "::1%\x1b]0;pwned\x07;$(id)\u202e"
    target = F.target()
    target = target.model_copy(update={"host": target.host.model_copy(update={"address": hostile})})
    stream = io.StringIO()
    progress = LineProgress(1, stream)
    progress.started(target, "tls")
    progress.finished(target, "tls", [Observation.failed("tls", target, "banner \x1b[31mred\u202e")])
    line = stream.getvalue()
    assert not RAW.search(line.rstrip("\n"))
    assert "::1%\\x1b]0;pwned\\x07;$(id)\\u202e" in line


def test_policy_show_prints_escapes_in_a_policy_as_text(tmp_path: Path) -> None:
    evil = tmp_path / "evil.yaml"
    evil.write_text(
        E2E_POLICY.read_text(encoding="utf-8")
        .replace("title: End-to-end test policy", 'title: "Evil \\e]0;pwned\\a policy \\u202e"')
        .replace('en: "Telnet is closed"', 'en: "Telnet \\e[31mRED\\e[0m closed"'),
        encoding="utf-8",
    )
    for fmt in ("md", "yaml"):
        shown = CliRunner().invoke(main, ["policy", "show", str(evil), "--lang", "en", "--format", fmt])
        assert shown.exit_code == 0, shown.output
        assert not RAW.search(shown.output.replace("\n", ""))
        if fmt == "md":
            assert "# Evil \\x1b]0;pwned\\x07 policy \\u202e" in shown.output
