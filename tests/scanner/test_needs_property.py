"""The property behind every verdict: for every control, when a fact it needs is missing or
comes from a probe step that did not complete, the status is `error`, never `pass` and never
`not_applicable`. And the other way round: a control's verdict never moves when the facts of
a step it does *not* declare are taken away, so its declared needs are the whole truth. A
control that judges partial facts may still fail on what the other steps saw, never pass.

Pure: observations are built here and judged by the real evaluator with every registered check
and every rule of every bundled policy. A new check needs samples below, or this test fails.
"""

import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pydantic import BaseModel

from attt.scanner.evaluate import evaluate
from attt.scanner.models.finding import Finding
from attt.scanner.models.observation import Observation, probe_check
from attt.scanner.models.policy import AppliesTo, ResolvedPolicy, ResolvedRule
from attt.scanner.models.target import Host, SystemInfo, Target
from attt.scanner.policy import bundled_policy_ids, load_policy
from attt.scanner.registry import Registry

REGISTRY = Registry.load()
NOW = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
Data = dict[str, Any]


def _certificate(weak: bool) -> Data:
    return {
        "subject": "CN=x.attt.test",
        "issuer": "CN=x.attt.test" if weak else "CN=ca",
        "sans": ("x.attt.test",),
        "serial": "1",
        "not_before": NOW - dt.timedelta(days=900 if weak else 10),
        "not_after": NOW + dt.timedelta(days=5 if weak else 80),
        "key_type": "RSA" if weak else "EC",
        "key_bits": 1024 if weak else 256,
        "curve": None if weak else "secp256r1",
        "signature_algorithm": "sha1WithRSAEncryption" if weak else "ecdsa-with-SHA256",
        "signature_hash": "sha1" if weak else "sha256",
        "chain_keys": (),
        "self_signed": weak,
        "trusted": not weak,
        "hostname": "x.attt.test",
        "hostname_matches": not weak,
        "expired": False,
        "lifetime_days": 905 if weak else 90,
    }


def _tls(weak: bool) -> Data:
    suites = (
        {"TLSv1.0": ("TLS_RSA_WITH_3DES_EDE_CBC_SHA",), "TLSv1.2": ("TLS_RSA_WITH_AES_128_CBC_SHA",)}
        if weak
        else {"TLSv1.2": ("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",), "TLSv1.3": ("TLS_AES_128_GCM_SHA256",)}
    )
    return {
        "scanned_at": NOW,
        "sni": "x.attt.test",
        "protocols": tuple(suites),
        "cipher_suites": suites,
        "forward_secrecy": not weak,
        "key_exchange": {"dh_min_bits": None, "ecdh_min_bits": None if weak else 256},
        "groups": ("secp256r1",) if weak else ("x25519", "secp256r1"),
        "certificate": _certificate(weak),
        "ocsp_responder": None,
        "ocsp_stapling": False,
        "vulnerabilities": dict.fromkeys(
            (
                "heartbleed",
                "robot",
                "ccs_injection",
                "insecure_renegotiation",
                "client_renegotiation",
                "compression",
                "fallback_scsv",
                "extended_master_secret",
            ),
            weak,
        ),
        "http": True,
        "hsts": None if weak else {"max_age": 63072000, "include_subdomains": True, "preload": False},
    }


def _blank_tls(data: Data, step: str) -> Data:
    """The facts `step` gives, taken away, and the step marked as not completed."""
    from attt.checks.tls.models import SUITE_STEPS, VULNERABILITY_STEPS

    out = dict(data)
    out["incomplete"] = (step,)
    suites = {p: s for p, s in data["cipher_suites"].items() if SUITE_STEPS[p] != step}
    out["cipher_suites"], out["protocols"] = suites, tuple(suites)
    if step == "certificate_info":
        out["certificate"], out["ocsp_responder"] = None, None
    if step == "elliptic_curves":
        out["groups"] = None
    if step == "http_headers":
        out["http"], out["hsts"] = False, None
    out["vulnerabilities"] = {
        name: None if VULNERABILITY_STEPS[name] == step else value
        for name, value in data["vulnerabilities"].items()
    }
    return out


def _ssh(weak: bool) -> Data:
    return {
        "banner": "SSH-2.0-OpenSSH_7.4" if weak else "SSH-2.0-OpenSSH_9.9",
        "protocol": "2.0",
        "software": "OpenSSH_7.4" if weak else "OpenSSH_9.9",
        "kex": ("diffie-hellman-group1-sha1",)
        if weak
        else ("sntrup761x25519-sha512", "kex-strict-s-v00@openssh.com"),
        "host_key_algorithms": ("ssh-rsa",) if weak else ("ssh-ed25519",),
        "ciphers": ("aes128-cbc",) if weak else ("aes256-gcm@openssh.com",),
        "macs": ("hmac-sha1-etm@openssh.com",) if weak else ("hmac-sha2-512-etm@openssh.com",),
        "compression": ("none",),
        "strict_kex": not weak,
        "ext_info": False,
        "auth_methods": ("publickey", "password") if weak else ("publickey",),
        "host_keys": ({"type": "ssh-rsa", "bits": 1024, "sha256": "SHA256:x"},)
        if weak
        else ({"type": "ssh-ed25519", "bits": 256, "sha256": "SHA256:y"},),
        "config": {"permitrootlogin": "yes" if weak else "no", "maxauthtries": "6" if weak else "3"},
        "config_match": {},
    }


def _blank_ssh(data: Data, step: str) -> Data:
    out = dict(data) | {"incomplete": (step,), "step_errors": {step: "refused"}}
    if step == "auth_methods":
        out["auth_methods"] = None
    if step == "sshd_t":
        out["config"], out["config_error"], out["config_match"] = None, "refused", None
    if step == "sshd_match":
        out["config_match"] = None
    return out


def _ports(weak: bool) -> Data:
    open_ports = [(22, "ssh"), (23, "telnet"), (3389, "ms-wbt-server")] if weak else [(443, "https")]
    return {
        "scanned": (),
        "full_range": True,
        "open": tuple({"port": p, "service": s} for p, s in open_ports),
        "service_detection": True,
        "nmap_version": "7.93",
    }


def _blank_ports(data: Data, step: str) -> Data:
    return dict(data) | {"service_detection": False, "service_detection_error": "timed out"}


def _web(weak: bool) -> Data:
    url = "https://x.attt.test/"
    good = {
        "content-security-policy": "default-src 'self'; frame-ancestors 'none'",
        "x-content-type-options": "nosniff",
        "referrer-policy": "no-referrer",
        "strict-transport-security": "max-age=63072000",
    }
    headers = {"server": "nginx/1.22.1"} if weak else good
    answer = {
        "url": url,
        "status": 200,
        "headers": tuple({"name": k, "value": v} for k, v in headers.items()),
    }
    flags = {"secure": False, "http_only": False, "same_site": None} if weak else {
        "secure": True, "http_only": True, "same_site": "Lax"}  # fmt: skip
    return {
        "scheme": "https",
        "name": "x.attt.test",
        "url": url,
        "answer": answer,
        "redirects": (answer | {"url": url + "home"},),
        "cookies": ({"name": "PHPSESSID", "url": url} | flags,),
        "cors": {"origin": "https://o.invalid", "allow_origin": None, "allow_credentials": None},
        "disclosures": ({"source": "header:server", "value": "nginx/1.22.1"},) if weak else (),
        "certificate_verified": True,
        "paths": ({"id": "git-head", "path": "/.git/HEAD", "status": 200, "served": weak},),
        "site": {"serves_web": ("tag portal",), "https_ok": (443,), "http_chain": ("http://x.attt.test/",)},
    }


def _blank_web(data: Data, step: str) -> Data:
    out = dict(data) | {"incomplete": (step,), "step_errors": {step: "timed out"}}
    if step == "redirects":
        out["redirects"] = ()
    if step == "cors":
        out["cors"] = None
    return out


SAMPLES: dict[str, tuple[Callable[[bool], Data], Callable[[Data, str], Data], tuple[str, ...]]] = {
    "tls": (
        _tls,
        _blank_tls,
        (
            "ssl_2_0_cipher_suites",
            "ssl_3_0_cipher_suites",
            "tls_1_0_cipher_suites",
            "tls_1_1_cipher_suites",
            "tls_1_2_cipher_suites",
            "tls_1_3_cipher_suites",
            "certificate_info",
            "elliptic_curves",
            "heartbleed",
            "robot",
            "openssl_ccs_injection",
            "session_renegotiation",
            "tls_compression",
            "tls_fallback_scsv",
            "tls_extended_master_secret",
            "http_headers",
        ),
    ),
    "ssh": (_ssh, _blank_ssh, ("auth_methods", "sshd_t", "sshd_match")),
    "ports": (_ports, _blank_ports, ("service_detection",)),
    "web": (_web, _blank_web, ("redirects", "cors")),
}
"""Check -> (sample data, weak or strong; take a step's facts away; every step the probe has)."""


def _bundled_rules() -> Iterator[ResolvedRule]:
    seen: set[tuple[str, str]] = set()
    for policy_id in bundled_policy_ids():
        for rule in load_policy(policy_id, REGISTRY).rules:
            key = (rule.control, rule.params.model_dump_json())
            if key not in seen:
                seen.add(key)
                yield rule


def _default_rules() -> Iterator[ResolvedRule]:
    """Every registered control with its default params, when it has defaults."""
    for check_name in REGISTRY.checks:
        for control_id, control in REGISTRY.check(check_name).controls.items():
            try:
                params = control.params_model()
            except ValueError:
                continue
            yield ResolvedRule(id="PROP-DEFAULT", control=control_id, check=check_name, params=params,
                               severity="high", applies_to=AppliesTo(), title={"vi": "t", "en": "t"},
                               remediation={"vi": "r", "en": "r"}, references=(), policy="prop")  # fmt: skip


RULES = [*_bundled_rules(), *_default_rules()]


def _target(rule: ResolvedRule, hostname: str | None) -> Target:
    where = rule.applies_to
    system = SystemInfo(
        id=(where.systems or ("prop-sys",))[0],
        name="prop",
        owner="UBND xã Thạch Hà",
        level=(where.levels or (3,))[0],
        tags=(where.tags or ("internet-facing",))[:1],
        allowed_ports=(22, 443),
    )
    return Target(system=system, host=Host(address="127.0.0.7", hostname=hostname), ip="127.0.0.7")


def _judge(rule: ResolvedRule, target: Target, obs: Observation | None, probed: bool = True) -> Finding:
    policy = ResolvedPolicy(id="prop", title="prop", version="1", sha256="0", sources=(), rules=(rule,),
                            waivers=(), settings={})  # fmt: skip
    key = (rule.check, target.system.id, target.address)
    [finding] = evaluate(
        [target], [obs] if obs else [], {target.system.id: [policy]}, REGISTRY, [rule.check], NOW,
        probed={key} if probed else set(),
    )  # fmt: skip
    return finding


def _observation(rule: ResolvedRule, target: Target, data: Data) -> Observation:
    model: type[BaseModel] = REGISTRY.check(rule.check).data_model
    return Observation.ok(rule.check, target, model.model_validate(data), port=443)


def _cases() -> Iterator[tuple[ResolvedRule, bool, str | None]]:
    for rule in RULES:
        for weak in (True, False):
            for hostname in ("x.attt.test", None):
                yield rule, weak, hostname


def _case_id(case: tuple[ResolvedRule, bool, str | None]) -> str:
    rule, weak, hostname = case
    return f"{rule.id}:{rule.control}:{'weak' if weak else 'strong'}:{'name' if hostname else 'ip'}"


CASES = list(_cases())


def test_every_registered_control_is_covered_by_samples() -> None:
    controls = {c for name in REGISTRY.checks for c in REGISTRY.check(name).controls}
    missing = sorted(c for c in controls if c.split(".")[0] not in SAMPLES)
    assert not missing, f"add sample data for these checks' controls to this test: {missing}"
    assert controls <= {r.control for r in RULES}, "a control has neither a bundled rule nor default params"


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_a_needed_step_that_did_not_complete_is_error_and_other_steps_change_nothing(
    case: tuple[ResolvedRule, bool, str | None],
) -> None:
    rule, weak, hostname = case
    sample, blank, steps = SAMPLES[rule.check]
    target = _target(rule, hostname)
    control = REGISTRY.check(rule.check).controls[rule.control]
    needed = set(control.steps_needed(rule.params, target))
    assert needed <= set(steps), f"{rule.control} names steps the probe does not have"
    full = _judge(rule, target, _observation(rule, target, sample(weak)))
    for step in steps:
        verdict = _judge(rule, target, _observation(rule, target, blank(sample(weak), step)))
        if step in needed and control.partial and verdict.status == "fail":
            # A judge of partial facts fails only on what the other steps saw: the full
            # observation fails too.
            assert full.status == "fail", (step, verdict.message.en)
        elif step in needed:
            assert verdict.status == "error", (step, verdict.message.en)
            assert step in verdict.message.en
        else:
            # Undeclared facts must not matter: else the control reads more than it says.
            assert (verdict.status, verdict.message) == (full.status, full.message), step


@pytest.mark.parametrize("rule", RULES, ids=[f"{r.id}:{r.control}" for r in RULES])
def test_a_failed_or_missing_probe_is_error_never_pass_nor_not_applicable(rule: ResolvedRule) -> None:
    target = _target(rule, "x.attt.test")
    failed = Observation.failed(rule.check, target, "connection refused", port=443)
    probe_error = _judge(rule, target, failed)
    assert (probe_error.status, probe_error.kind, probe_error.blocked) == ("error", "probe_error", (rule.id,))
    never_ran = _judge(rule, target, None, probed=False)
    assert (never_ran.status, never_ran.kind, never_ran.blocked) == ("error", "not_probed", (rule.id,))


@pytest.mark.parametrize("rule", RULES, ids=[f"{r.id}:{r.control}" for r in RULES])
def test_a_failed_outside_probe_is_error_for_a_rule_asking_for_the_internet(rule: ResolvedRule) -> None:
    """Even when the inside probe saw a strong host: the rule is about the Internet's view."""
    rule = rule.model_copy(update={"vantage": "internet"})
    target = _target(rule, "x.attt.test").model_copy(update={"zone": "dmz"})
    inside = _observation(rule, target, SAMPLES[rule.check][0](False)).model_copy(update={"zone": "dmz"})
    failed = Observation.failed(rule.check, target, "connection timed out", port=443)
    outside = failed.model_copy(update={"zone": "internet"})
    policy = ResolvedPolicy(id="prop", title="prop", version="1", sha256="0", sources=(), rules=(rule,),
                            waivers=(), settings={})  # fmt: skip
    keys = {(rule.check, *target.key), (probe_check(rule.check, "internet"), *target.key)}
    [finding] = evaluate([target], [inside, outside], {target.system.id: [policy]}, REGISTRY, [rule.check],
                         NOW, keys, outside={"internet"})  # fmt: skip
    assert (finding.status, finding.kind, finding.vantage) == ("error", "probe_error", "internet")
