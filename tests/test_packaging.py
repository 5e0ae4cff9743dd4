"""A plain, non-editable install from a wheel carries the checks, policies and templates, adds
one import name (`attt`) to site-packages, and loads a third-party check beside the built-ins."""

import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from tests.isolation import in_machine_network

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_installs_and_runs_from_a_fresh_venv(tmp_path: Path) -> None:
    source = tmp_path / "src"
    skip = shutil.ignore_patterns(".*", "*.egg-info", "build", "attt-reports", "__pycache__", "test-*")
    shutil.copytree(ROOT, source, ignore=skip)
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", dist, source],
                   check=True, capture_output=True, timeout=300)  # fmt: skip
    [wheel] = dist.glob("attt_scanner-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        top_level = archive.read(next(n for n in names if n.endswith("top_level.txt"))).decode()
    assert top_level.split() == ["attt"]
    assert {n.split("/")[0] for n in names} == {
        "attt",
        wheel.name.split("-")[0] + "-" + wheel.name.split("-")[1] + ".dist-info",
    }
    assert "attt/plugin.py" in names and "attt/policies/baseline.yaml" in names
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    pip = env_dir / "bin" / "pip"
    subprocess.run([pip, "install", "-q", wheel], check=True, capture_output=True, timeout=600,
                   preexec_fn=in_machine_network)  # fmt: skip
    third_party = source / "tests" / "plugin_example"
    subprocess.run(
        [pip, "install", "-q", "--no-deps", third_party], check=True, capture_output=True, timeout=600
    )
    attt = env_dir / "bin" / "attt"
    # Run from an empty directory so nothing of the source tree can be imported by accident.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    listed = subprocess.run([attt, "checks", "list"], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=120, check=False)  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    for name in ("ports", "tls", "ssh"):
        assert f"{name}  (from attt-scanner" in listed.stdout
    assert "banner  (from attt-example-check" in listed.stdout
    assert "banner.declared" in listed.stdout
    assert "NOT LOADED" not in listed.stdout
    shown = subprocess.run([attt, "policy", "show", "baseline"], cwd=tmp_path, env=env, capture_output=True,
                           text=True, timeout=120, check=False)  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert "baseline" in shown.stdout
    # The store's migrations ship in the wheel and build a new store from there.
    assert "attt/scanner/migrations/versions/rev0001_first_release.py" in names
    create = "import sys; from attt.scanner.store import Store; Store(sys.argv[1]).close()"
    made = subprocess.run([env_dir / "bin" / "python", "-c", create, tmp_path / "fresh.db"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert made.returncode == 0, made.stderr
