"""The report directory: every format written, a manifest that catches tampering, signatures."""

import json
import os
import subprocess
import sys

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from attt.reports.base import RenderContext
from attt.reports.bundle import RENDERERS, render_bundle, write_bundle
from attt.reports.manifest import TMP_SUFFIX, verify_bundle, write_atomically
from attt.scanner.changes import Comparison
from attt.scanner.errors import ConfigError, ReportDirError
from attt.scanner.models.base import Text
from tests import factories as F
from tests.bench import bench_report

ALL = ["html", "json", "junit", "sarif", "csv", "pdf"]


@pytest.fixture
def report():
    return F.report(F.all_statuses())


@pytest.fixture
def keys(tmp_path):
    """An Ed25519 key pair in PEM files, and a second, unrelated public key."""
    private = Ed25519PrivateKey.generate()
    paths = {}
    for name, key in (("private", private), ("other", Ed25519PrivateKey.generate())):
        pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        (tmp_path / f"{name}.pem").write_bytes(pem)
        (tmp_path / f"{name}.pem").chmod(0o600)
        (tmp_path / f"{name}.pub").write_bytes(
            key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
        )
        paths[name] = tmp_path / f"{name}.pem"
        paths[name + ".pub"] = tmp_path / f"{name}.pub"
    return paths


def test_renderers_cover_every_format():
    assert set(RENDERERS) == set(ALL)


def test_bundle_writes_every_format_and_a_manifest(tmp_path, report):
    out = tmp_path / "out"
    written = write_bundle(report, ALL, out, "vi")
    names = sorted(p.name for p in written)
    assert names == sorted([r.filename for r in RENDERERS.values()] + ["manifest.json"])
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["run_id"] == report.run.id
    assert manifest["tool_version"] == "0.1.0"
    assert manifest["created"] == report.run.finished.isoformat().replace("+00:00", "Z")
    assert set(manifest["files"]) == {r.filename for r in RENDERERS.values()}
    assert verify_bundle(out).ok


def test_bundle_is_reproducible(tmp_path, report):
    for name in ("a", "b"):
        write_bundle(report, ALL, tmp_path / name, "en")
    for path in sorted((tmp_path / "a").iterdir()):
        assert path.read_bytes() == (tmp_path / "b" / path.name).read_bytes(), path.name


def test_unknown_format_is_a_config_error_and_writes_nothing(tmp_path, report):
    with pytest.raises(ConfigError, match="docx"):
        write_bundle(report, ["html", "docx"], tmp_path / "out", "vi")
    assert not (tmp_path / "out").exists()


def test_verify_catches_a_one_byte_change(tmp_path, report):
    write_bundle(report, ALL, tmp_path, "vi")
    page = tmp_path / "report.html"
    body = bytearray(page.read_bytes())
    body[len(body) // 2] ^= 0x01
    page.write_bytes(bytes(body))
    result = verify_bundle(tmp_path)
    assert not result.ok
    assert result.problems == ("changed: report.html",)


def test_verify_catches_missing_and_added_files(tmp_path, report):
    write_bundle(report, ALL, tmp_path, "vi")
    (tmp_path / "report.csv").unlink()
    (tmp_path / "notes.txt").write_text("added later")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "x.html").write_text("added later")
    assert verify_bundle(tmp_path).problems == (
        "missing: report.csv",
        "added: notes.txt",
        "added: sub/x.html",
    )


def test_verify_names_a_fifo_added_or_put_in_a_files_place_and_never_reads_it(tmp_path, report):
    # A named pipe is a file of the directory like any other: added, it is named; in a listed
    # file's place, that file changed (and reading it would wait for a writer forever).
    write_bundle(report, ["json", "csv"], tmp_path, "vi")
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "report.csv").unlink()
    os.mkfifo(tmp_path / "report.csv")
    assert verify_bundle(tmp_path).problems == ("changed: report.csv", "added: pipe")


def test_verify_without_manifest(tmp_path):
    assert verify_bundle(tmp_path).problems == ("missing: manifest.json",)


def test_verify_rejects_a_manifest_pointing_outside(tmp_path, report):
    write_bundle(report, ["json"], tmp_path / "out", "vi")
    manifest_path = tmp_path / "out" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["files"]["../secret"] = manifest["files"]["report.json"]
    manifest_path.write_text(json.dumps(manifest))
    (tmp_path / "secret").write_text("{}")
    assert any("may not" in p for p in verify_bundle(tmp_path / "out").problems)


def test_signing_round_trip(tmp_path, report, keys):
    out = tmp_path / "out"
    written = write_bundle(report, ALL, out, "vi", sign_key=keys["private"])
    assert out / "manifest.sig" in written
    assert verify_bundle(out, keys["private.pub"]).ok
    # The manifest itself rewritten to match a changed file: only the signature catches it.
    (out / "report.csv").write_bytes(b"forged")
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["files"]["report.csv"] = {
        "sha256": "a1c50f7d6d4bd1a1c15ed8bab4b72cf3cb8ad5b5d7d3d2b09c3e7c5d6e3b9cb1",
        "size": 6,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    problems = verify_bundle(out, keys["private.pub"]).problems
    assert any(p.startswith("bad signature") for p in problems)


def test_signature_from_another_key_or_missing_is_rejected(tmp_path, report, keys):
    write_bundle(report, ["json"], tmp_path / "signed", "vi", sign_key=keys["private"])
    assert not verify_bundle(tmp_path / "signed", keys["other.pub"]).ok
    write_bundle(report, ["json"], tmp_path / "unsigned", "vi")
    assert verify_bundle(tmp_path / "unsigned").ok
    problems = verify_bundle(tmp_path / "unsigned", keys["private.pub"]).problems
    assert problems and problems[0].startswith("missing: manifest.sig")


def test_a_key_that_is_not_ed25519_is_a_config_error(tmp_path, report):
    (tmp_path / "garbage.pem").write_text("not a key")
    with pytest.raises(ConfigError, match=r"garbage\.pem"):
        write_bundle(report, ["json"], tmp_path / "out", "vi", sign_key=tmp_path / "garbage.pem")
    assert not (tmp_path / "out").exists()
    with pytest.raises(ConfigError, match="cannot read"):
        verify_bundle(tmp_path, tmp_path / "absent.pub")


def test_openssh_format_keys_sign_and_verify(tmp_path, report):
    key = Ed25519PrivateKey.generate()
    (tmp_path / "id_ed25519").write_bytes(
        key.private_bytes(Encoding.PEM, PrivateFormat.OpenSSH, NoEncryption())
    )
    (tmp_path / "id_ed25519").chmod(0o600)
    (tmp_path / "id_ed25519.pub").write_bytes(
        key.public_key().public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH)
    )
    write_bundle(report, ["json"], tmp_path / "out", "en", sign_key=tmp_path / "id_ed25519")
    assert verify_bundle(tmp_path / "out", tmp_path / "id_ed25519.pub").ok


def test_bench_runs_on_a_small_report(monkeypatch, capsys):
    monkeypatch.setattr("sys.argv", ["bench_report", "--systems", "4", "--findings", "40"])
    assert bench_report.main() == 0
    out = capsys.readouterr().out
    assert all(f"\n{name} " in out for name in RENDERERS)


def test_bundle_with_a_previous_run_shows_the_changes(tmp_path, report):
    previous = F.report([F.finding("GONE-RULE", "fail")], id="run-before")
    why = Text(vi="lý do", en="the latest comparable run")
    write_bundle(report, ["html"], tmp_path, "en", context=RenderContext(baseline=Comparison(previous, why)))
    page = (tmp_path / "report.html").read_text("utf-8")
    assert 'id="changes"' in page and "run-before" in page and "GONE-RULE" in page
    assert "the latest comparable run" in page
    assert verify_bundle(tmp_path).ok


# --- the report directory (issue 13) ---------------------------------------------------------


def test_a_staged_bundle_is_in_place_only_once_published(tmp_path, report):
    """`attt scan` stages its bundle while the store closes the run: until then the directory
    shows the earlier bundle whole, and a temporary file a killed write left goes at publishing."""
    out = tmp_path / "out"
    write_bundle(report, ["json", "csv"], out, "vi")
    earlier = {p.name: p.read_bytes() for p in out.iterdir()}
    (out / f".report.json.left{TMP_SUFFIX}").write_bytes(b"half")
    newer = F.report(F.all_statuses()[:2])
    staged = render_bundle(newer, ["json"], "vi").stage(out)
    assert {p.name: p.read_bytes() for p in out.iterdir() if not p.name.endswith(TMP_SUFFIX)} == earlier
    staged.publish()
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "report.json"]
    assert verify_bundle(out).ok
    assert (
        json.loads((out / "report.json").read_text())["findings"]
        == json.loads(newer.model_dump_json())["findings"]
    )
    # A staged bundle given up leaves nothing behind.
    render_bundle(report, ["json"], "vi").stage(out).discard()
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "report.json"]


def test_a_symlink_in_the_report_directory_is_replaced_never_written_through(tmp_path, report):
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me")
    out = tmp_path / "out"
    write_bundle(report, ["json"], out, "vi")
    (out / "report.json").unlink()
    (out / "report.json").symlink_to(precious)  # planted between two renders
    with pytest.raises(ReportDirError, match=r"report\.json"):
        write_bundle(report, ["json", "html"], out, "vi")
    assert precious.read_text() == "keep me"
    # Even when the check is raced, the file is renamed over the link, not written through it.
    write_atomically(out, "report.json", b"{}")
    assert precious.read_text() == "keep me"
    assert not (out / "report.json").is_symlink()


def test_a_directory_holding_other_files_is_refused_and_left_alone(tmp_path, report):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ReportDirError, match=r"notes\.txt"):
        write_bundle(report, ["json"], out, "vi")
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_rerender_with_fewer_formats_replaces_the_bundle_whole_and_leaves_no_temporary_file(
    tmp_path, report, keys
):
    out = tmp_path / "out"
    write_bundle(report, ALL, out, "vi", sign_key=keys["private"])
    (out / ".report.json.x.attt-tmp").write_bytes(b"left by a killed write")
    written = write_bundle(report, ["json"], out, "en")
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "report.json"]
    assert sorted(p.name for p in written) == ["manifest.json", "report.json"]
    assert verify_bundle(out).ok


def test_a_world_readable_signing_key_is_refused(tmp_path, report, keys):
    keys["private"].chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        write_bundle(report, ["json"], tmp_path / "out", "vi", sign_key=keys["private"])
    assert not (tmp_path / "out").exists()


def test_each_format_names_the_renderer_that_writes_it_and_its_file() -> None:
    """The bundle knows each renderer's file without importing it (`FORMATS`): it must be the one
    the renderer itself declares."""
    from attt.reports.bundle import FORMATS

    assert list(RENDERERS) == list(FORMATS)
    for name, (_, _, file) in FORMATS.items():
        assert (RENDERERS[name].format, RENDERERS[name].filename) == (name, file)


def test_checking_a_directory_that_holds_a_bundle_loads_no_html_renderer(tmp_path, report):
    """A scan checks its `--out` before any packet; a JSON scan into last week's directory must
    not pay there for the HTML templates it never writes (the owners' index is named in bundle)."""
    out = tmp_path / "out"
    write_bundle(report, ["json"], out, "vi")
    (out / "index.json").write_text("{}")
    code = (
        "import sys; from pathlib import Path; from attt.reports.bundle import check_report_dir;"
        f" check_report_dir(Path({str(out)!r}));"
        " print(sorted(m for m in ('attt.reports.html', 'attt.reports.owners', 'jinja2')"
        " if m in sys.modules))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]"
