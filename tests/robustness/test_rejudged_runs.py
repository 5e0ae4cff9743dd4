"""A stored run judged again, by `attt scan --resume` or `attt report RUN`: it is judged by the
policies the report names. A resumed run whose policy files changed since it started is refused
(its report would name the policy it started with and judge by another); `attt report RUN
--waivers FILE` lays the waivers over the run's own policies, not over the level policies; a
policy whose probe settings differ from those the run probed with (trust anchors) cannot judge
that check's observations: its rules are `error`, never a pass resting on another policy's trust.

The runs are real scans: the ports check of one listener on 127.0.205.10 (stored, then made to
look as if its process died after its last probe ended: resuming it probes nothing again), and
the tls check of `openssl s_server` on 127.0.205.20 with a certificate of a private CA.
"""

import datetime as dt
import json
import sqlite3
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from cryptography.hazmat.primitives.asymmetric import ec

from attt.scanner.cli import main
from tests.servers.listeners import tcp_listeners
from tests.servers.tls import TlsServer, _leaf, _make_ca, _process, _s_server

HOST = "127.0.205.10"
OPEN = 8080

POLICY = """\
id: mine
title: Mine
version: "1"
rules:
  - id: PORT-OPEN-8080
    control: ports.forbidden
    params: {ports: [%d]}
    severity: high
    title: {vi: "Không mở cổng %d", en: "Port %d is closed"}
    remediation: {vi: "Đóng cổng.", en: "Close the port."}
"""

WAIVERS = """\
waivers:
  - rule: PORT-OPEN-8080
    system: he-thong
    reason: "Cổng quản trị tạm thời / temporary admin port"
    approved_by: "Giám đốc Sở"
    expires: 2099-12-31
"""


PORTAL = TlsServer("portal", "127.0.205.20", 8443, "portal.test")

TRUST_POLICY = """\
id: trust
title: Trust
version: "1"
%s
rules:
  - id: CERT-TRUSTED
    control: tls.certificate_trusted
    severity: high
    title: {vi: "Chứng thư số được tin cậy", en: "The certificate is trusted"}
    remediation: {vi: "Dùng chứng thư số của CA tin cậy.", en: "Use a certificate from a trusted CA."}
"""


def attt(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), env={"CI": "true", "ATTT_LANG": "en"})


def report_of(out: Path) -> dict[str, Any]:
    return dict(json.loads((out / "report.json").read_text()))


@pytest.fixture(scope="module")
def listener() -> Iterator[None]:
    with tcp_listeners([(HOST, OPEN)]):
        yield


def one_system_inventory(directory: Path) -> Path:
    """One level-3 system of one host, HOST."""
    inventory = directory / "inventory.yaml"
    inventory.write_text(
        textwrap.dedent(f"""\
            province: Hà Tĩnh
            scope: [127.0.205.0/24]
            systems:
              - id: he-thong
                name: Hệ thống
                owner: Sở Khoa học và Công nghệ
                level: 3
                hosts:
                  - {{address: {HOST}}}
            """)
    )
    return inventory


@pytest.fixture
def scanned(tmp_path: Path, listener: None) -> tuple[Path, Path, str]:
    """(store, policy file, run id) of a finished scan that found the forbidden port open."""
    inventory = one_system_inventory(tmp_path)
    policy = tmp_path / "mine.yaml"
    policy.write_text(POLICY % (OPEN, OPEN, OPEN))
    db = tmp_path / "runs.db"
    first = attt("scan", "-i", str(inventory), "-p", str(policy), "--check", "ports", "--db", str(db),
                 "--out", str(tmp_path / "first"), "--format", "json")  # fmt: skip
    assert first.exit_code == 1, first.output
    return db, policy, report_of(tmp_path / "first")["run"]["id"]


def died_after_its_last_probe(db: Path) -> None:
    """The run as a process killed between its last probe and its end leaves it."""
    with sqlite3.connect(db) as conn:
        (body,) = conn.execute("SELECT info FROM runs").fetchone()
        info = json.loads(body) | {"status": "running", "finished": None}
        conn.execute("UPDATE runs SET status = 'running', info = ?, lease_pid = NULL", (json.dumps(info),))


def test_a_run_whose_policy_file_changed_is_not_resumed_under_the_new_one(
    tmp_path: Path, scanned: tuple[Path, Path, str]
) -> None:
    db, policy, run_id = scanned
    died_after_its_last_probe(db)
    started_with = policy.read_text()
    policy.write_text(started_with.replace("severity: high", "severity: info"))
    out = tmp_path / "resumed"
    resumed = attt("scan", "--resume", run_id, "--db", str(db), "--out", str(out))
    assert resumed.exit_code == 2, resumed.output
    assert "mine.yaml" in resumed.output and "changed since run" in resumed.output
    assert "Traceback" not in resumed.output
    assert not out.exists()
    # Nothing was touched: with the policy it started with, the run resumes and ends.
    policy.write_text(started_with)
    again = attt("scan", "--resume", run_id, "--db", str(db), "--out", str(out), "--format", "json")
    assert again.exit_code == 1, again.output
    report = report_of(out)
    assert report["run"]["status"] == "complete"
    assert [(f["rule_id"], f["status"], f["severity"]) for f in report["findings"]] == [
        ("PORT-OPEN-8080", "fail", "high")
    ]


def test_a_resumed_run_says_in_vietnamese_which_policy_changed(scanned: tuple[Path, Path, str]) -> None:
    db, policy, run_id = scanned
    died_after_its_last_probe(db)
    policy.write_text(policy.read_text() + "\n# edited\n")
    resumed = CliRunner().invoke(main, ["--lang", "vi", "scan", "--resume", run_id, "--db", str(db)])
    assert resumed.exit_code == 2, resumed.output
    assert "mine.yaml" in resumed.output and "đã thay đổi" in resumed.output


def test_report_with_waivers_only_keeps_the_policies_the_run_was_judged_by(
    tmp_path: Path, scanned: tuple[Path, Path, str]
) -> None:
    db, _policy, run_id = scanned
    waivers = tmp_path / "waivers.yaml"
    waivers.write_text(WAIVERS)
    out = tmp_path / "waived"
    rendered = attt("report", run_id, "--db", str(db), "--waivers", str(waivers), "--out", str(out),
                    "--format", "json")  # fmt: skip
    assert rendered.exit_code == 0, rendered.output
    report = report_of(out)
    assert report["run"]["judged_by"] == {"he-thong": "mine"}
    assert [(f["rule_id"], f["status"]) for f in report["findings"]] == [("PORT-OPEN-8080", "waived")]


@pytest.fixture(scope="module")
def private_ca_portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A TLS server whose certificate only the CA it yields (a PEM file) anchors."""
    workdir = tmp_path_factory.mktemp("private-ca")
    now = dt.datetime.now(dt.UTC)
    issuer, ca = _make_ca(workdir, now)
    cert, key = _leaf(workdir, "portal", PORTAL.hostname, ec.generate_private_key(ec.SECP256R1()), issuer,
                      now - dt.timedelta(days=1), now + dt.timedelta(days=90))  # fmt: skip
    with _process(_s_server(PORTAL, cert, key), PORTAL, workdir):
        yield ca


def test_a_policy_with_other_trust_anchors_does_not_judge_trust_seen_through_the_runs(
    tmp_path: Path, private_ca_portal: Path
) -> None:
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        textwrap.dedent(f"""\
            province: Hà Tĩnh
            scope: [127.0.205.0/24]
            systems:
              - id: cong
                name: Cổng
                owner: Sở Khoa học và Công nghệ
                level: 3
                hosts:
                  - address: {PORTAL.ip}
                    hostname: {PORTAL.hostname}
                    services: [{{port: {PORTAL.port}, kind: tls}}]
            """)
    )
    anchored, bare = tmp_path / "anchored.yaml", tmp_path / "bare.yaml"
    anchored.write_text(TRUST_POLICY % f"settings: {{tls: {{trust_anchors: [{private_ca_portal}]}}}}")
    bare.write_text(TRUST_POLICY % "")
    db = tmp_path / "runs.db"
    scanned = attt("scan", "-i", str(inventory), "-p", str(anchored), "--check", "tls", "--db", str(db),
                   "--out", str(tmp_path / "scan"), "--format", "json")  # fmt: skip
    assert scanned.exit_code == 0, scanned.output
    run_id = report_of(tmp_path / "scan")["run"]["id"]
    # The same anchors again: the trust the probe saw is the policy's own.
    same = attt("report", run_id, "--db", str(db), "-p", str(anchored), "--out", str(tmp_path / "same"),
                "--format", "json")  # fmt: skip
    assert same.exit_code == 0, same.output
    assert [f["status"] for f in report_of(tmp_path / "same")["findings"]] == ["pass"]
    # Without them, a scan would find the chain untrusted: the stored `trusted` is not this policy's fact.
    rendered = attt("report", run_id, "--db", str(db), "-p", str(bare), "--out", str(tmp_path / "bare"),
                    "--format", "json,html,csv,sarif,junit")  # fmt: skip
    assert rendered.exit_code == 0, rendered.output
    [finding] = report_of(tmp_path / "bare")["findings"]
    assert (finding["rule_id"], finding["status"]) == ("CERT-TRUSTED", "error")
    assert "trust_anchors" in finding["message"]["en"] and "trust_anchors" in finding["message"]["vi"]
    assert "scan again with this policy" in finding["message"]["en"]


def test_a_run_killed_before_it_was_judged_is_judged_when_rendered(
    tmp_path: Path, scanned: tuple[Path, Path, str]
) -> None:
    # kill -9, a power cut or a second Ctrl-C while probing: what the probes saw is stored, no
    # finding is. Its report judges what was seen by the run's own policy and names what never ran.
    db, _policy, run_id = scanned
    died_after_its_last_probe(db)
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM findings")
    rendered = attt(
        "report", run_id, "--db", str(db), "--out", str(tmp_path / "seen"), "--format", "json,csv"
    )
    assert rendered.exit_code == 0, rendered.output
    report = report_of(tmp_path / "seen")
    assert report["run"]["status"] == "incomplete"
    assert [(f["rule_id"], f["status"]) for f in report["findings"]] == [("PORT-OPEN-8080", "fail")]
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM probes")
        conn.execute("DELETE FROM observations")
    rendered = attt("report", run_id, "--db", str(db), "--out", str(tmp_path / "none"), "--format", "json")
    assert rendered.exit_code == 0, rendered.output
    report = report_of(tmp_path / "none")
    assert [(f["rule_id"], f["status"], f["kind"]) for f in report["findings"]] == [
        ("PORTS-NOT-PROBED", "error", "not_probed")
    ]
    assert report["summary"]["overall"]["not_probed"] == 1


def test_scan_for_the_pack_of_an_owner_the_inventory_lacks_scans_nothing(tmp_path: Path) -> None:
    # A typo in --owner used to cost the whole scan and then its report.
    inventory = one_system_inventory(tmp_path)
    db = tmp_path / "runs.db"
    refused = attt("scan", "-i", str(inventory), "--check", "ports", "--db", str(db),
                   "--owner", "Sở Khoa học", "--out", str(tmp_path / "out"))  # fmt: skip
    assert refused.exit_code == 2, refused.output
    assert "Sở Khoa học và Công nghệ" in refused.output  # the owners it could have meant
    assert not db.exists() and not (tmp_path / "out").exists()


def test_report_for_the_pack_of_an_owner_the_run_lacks_is_a_usage_error(
    tmp_path: Path, scanned: tuple[Path, Path, str]
) -> None:
    db, _policy, run_id = scanned
    refused = attt("report", run_id, "--db", str(db), "--owner", "UBND xã Không Có", "--out", str(tmp_path))
    assert refused.exit_code == 2, refused.output
    assert "Sở Khoa học và Công nghệ" in refused.output and "write it elsewhere" not in refused.output
