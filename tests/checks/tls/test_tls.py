"""The tls check against real TLS servers (tests/servers/tls.py), plus its pure parts.

The lab is scanned once per session, all endpoints in one sslyze run; each test then asserts
the facts of one endpoint, and the verdict of every baseline-tls rule on it.
"""

import datetime as dt
import re
import time
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from attt.checks.ports.models import OpenPort, PortsData
from attt.checks.tls import TlsCheck, TlsData, TlsSettings, _pool, _sslyze, tls_endpoints
from attt.checks.tls.controls import CONTROLS, MozillaParams, mozilla_deviations, suite_families
from attt.checks.tls.models import Certificate, KeyExchange, StartTls, Vulnerabilities
from attt.checks.tls.x509 import hostname_matches
from attt.scanner.models.observation import Observation
from attt.scanner.plugin import NoParams, ProbeContext
from attt.scanner.policy import load_policy
from attt.scanner.registry import Registry
from tests import factories
from tests.servers.tls import CLOSED, SERVERS, TlsLab, TlsServer

SMTP = SERVERS["smtp"]
STARTTLS_SERVERS: tuple[StartTls, ...] = ("smtp", "imap", "pop3")
TLS_SERVERS = ("modern", "intermediate", "legacy", "tripledes", "expired", "selfsigned")


@pytest.fixture(scope="session")
def lab_scan(tls_lab_servers: TlsLab) -> dict[str, _sslyze.ScanOutcome]:
    """Every lab endpoint, scanned in one sslyze run with the lab CA as trust anchor."""
    servers = [*tls_lab_servers.servers.values(), CLOSED]
    endpoints = {s.name: _sslyze.Endpoint(ip=s.ip, port=s.port, sni=s.hostname) for s in servers}
    for protocol in STARTTLS_SERVERS:
        mail = SERVERS[protocol]
        endpoints[protocol] = _sslyze.Endpoint(
            ip=mail.ip, port=mail.port, sni=mail.hostname, starttls=protocol
        )
    plain = tls_lab_servers.servers["plaintcp"]
    endpoints["plaintcp-starttls"] = _sslyze.Endpoint(ip=plain.ip, port=plain.port, starttls="smtp")
    options = _sslyze.ScanOptions(
        connect_timeout=3, deadline=90, silence=10, trust_anchors=(tls_lab_servers.ca_file,)
    )
    outcomes = _sslyze.scan(list(endpoints.values()), options)
    return {name: outcomes[endpoint] for name, endpoint in endpoints.items()}


def _data(lab_scan: dict[str, _sslyze.ScanOutcome], name: str) -> TlsData:
    outcome = lab_scan[name]
    assert isinstance(outcome, TlsData), f"{name}: {outcome}"
    # The stored form is what controls see on re-evaluation: go through it.
    return TlsData.model_validate(outcome.model_dump(mode="json"))


def _target(server: TlsServer, services: tuple[tuple[int, str], ...] = ()) -> Any:
    return factories.target(address=server.ip, hostname=server.hostname, services=services)


# --- facts per endpoint -----------------------------------------------------------------------

MOZ_TLS13 = ("TLS_CHACHA20_POLY1305_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_AES_128_GCM_SHA256")


def test_modern_tls13_only_with_ecdsa(lab_scan, tls_lab_servers):
    data = _data(lab_scan, "modern")
    assert data.protocols == ("TLSv1.3",)
    assert set(data.cipher_suites["TLSv1.3"]) == set(MOZ_TLS13)
    assert data.forward_secrecy is True
    assert data.groups == ("x25519", "secp256r1", "secp384r1")
    assert data.key_exchange.ecdh_min_bits == 256
    cert = data.certificate
    assert cert is not None
    assert (cert.key_type, cert.key_bits, cert.curve) == ("EC", 256, "secp256r1")
    assert (cert.signature_algorithm, cert.signature_hash) == ("ecdsa-with-SHA256", "sha256")
    assert cert.sans == ("modern.attt.test",)
    assert cert.subject == "CN=modern.attt.test,O=attt tests"
    assert cert.issuer == "CN=attt test CA,O=attt tests"
    assert (cert.trusted, cert.self_signed, cert.hostname_matches, cert.expired) == (True, False, True, False)
    assert cert.lifetime_days == 90
    assert cert.not_after == tls_lab_servers.now + dt.timedelta(days=89)
    assert data.http is True and data.hsts is None
    assert data.ocsp_responder is None and data.ocsp_stapling is False
    assert data.incomplete == ()
    assert not any(data.vulnerabilities.model_dump().values())


def test_intermediate_nginx_with_hsts(lab_scan):
    data = _data(lab_scan, "intermediate")
    assert data.protocols == ("TLSv1.2", "TLSv1.3")
    assert set(data.cipher_suites["TLSv1.2"]) == {
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    }
    assert data.groups == ("x25519", "secp256r1", "secp384r1")
    cert = data.certificate
    assert cert is not None
    assert (cert.key_type, cert.key_bits, cert.trusted, cert.hostname_matches) == ("RSA", 2048, True, True)
    assert data.hsts is not None
    assert (data.hsts.max_age, data.hsts.include_subdomains, data.hsts.preload) == (63072000, True, False)
    assert mozilla_deviations(data, MozillaParams(profile="intermediate")) == []
    assert mozilla_deviations(data, MozillaParams(profile="modern")) == [
        "protocols not in the profile: TLSv1.2",
        "cipher suites not in the profile: " + ", ".join(sorted(data.cipher_suites["TLSv1.2"])),
        "certificate key type RSA (profile: EC)",
    ]


def test_legacy_openssl_tls10_cbc_rsa1024_sha1(lab_scan):
    data = _data(lab_scan, "legacy")
    assert data.protocols == ("TLSv1.0", "TLSv1.1", "TLSv1.2")
    expected = {
        "TLS_RSA_WITH_AES_256_CBC_SHA",
        "TLS_RSA_WITH_AES_128_CBC_SHA",
        "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    }
    assert all(set(data.cipher_suites[p]) == expected for p in data.protocols)
    assert data.forward_secrecy is False
    cert = data.certificate
    assert cert is not None
    assert (cert.key_type, cert.key_bits) == ("RSA", 1024)
    assert (cert.signature_algorithm, cert.signature_hash) == ("ecdsa-with-SHA1", "sha1")
    assert cert.trusted is False and cert.trust_error is not None
    assert cert.trust_error.startswith("Supplied CA file:")
    assert cert.lifetime_days == 825


def test_gnutls_3des_and_client_renegotiation(lab_scan):
    data = _data(lab_scan, "tripledes")
    assert data.protocols == ("TLSv1.0", "TLSv1.1", "TLSv1.2")
    assert "TLS_RSA_WITH_3DES_EDE_CBC_SHA" in data.cipher_suites["TLSv1.2"]
    assert "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA" in data.cipher_suites["TLSv1.0"]
    assert data.vulnerabilities.client_renegotiation is True
    assert data.vulnerabilities.insecure_renegotiation is False
    assert data.certificate is not None and data.certificate.trusted is True


def test_expired_certificate(lab_scan, tls_lab_servers):
    data = _data(lab_scan, "expired")
    cert = data.certificate
    assert cert is not None
    assert cert.expired is True and cert.trusted is False
    assert "not valid at validation time" in (cert.trust_error or "")
    assert cert.not_after == tls_lab_servers.now - dt.timedelta(days=10)
    assert data.ocsp_responder == "http://127.0.30.5/ocsp" and data.ocsp_stapling is False


def test_self_signed_wrong_name(lab_scan):
    data = _data(lab_scan, "selfsigned")
    cert = data.certificate
    assert cert is not None
    assert (cert.self_signed, cert.trusted, cert.hostname_matches) == (True, False, False)
    assert (cert.hostname, cert.sans) == ("selfsigned.attt.test", ("wrong.attt.test",))
    assert cert.subject == cert.issuer == "CN=wrong.attt.test,O=attt tests"


def test_smtp_starttls(lab_scan, tls_lab_servers, baseline_tls_rules):
    data = _data(lab_scan, "smtp")
    assert data.starttls == "smtp"
    assert data.protocols == ("TLSv1.2", "TLSv1.3")
    assert data.forward_secrecy is True
    assert (data.http, data.hsts) == (False, None)
    cert = data.certificate
    assert cert is not None
    assert (cert.trusted, cert.hostname_matches, cert.sans) == (True, True, ("smtp.attt.test",))
    rule = baseline_tls_rules["TLS-HSTS"]
    assert CONTROLS[rule.control].judge(data, rule.params, _target(SMTP)).status == NA


@pytest.mark.parametrize("protocol", ["imap", "pop3"])
def test_mail_protocols_upgrade_with_starttls(lab_scan, protocol):
    # Circular 39/2017 items 4.4 and 4.5 ask for secure mail access: IMAP and POP3 too.
    data = _data(lab_scan, protocol)
    assert data.starttls == protocol
    assert data.protocols == ("TLSv1.2", "TLSv1.3")
    cert = data.certificate
    assert cert is not None
    assert (cert.trusted, cert.hostname_matches, cert.sans) == (True, True, (f"{protocol}.attt.test",))


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("plaintcp-starttls", "STARTTLS dialogue ended without an upgrade"),
        ("plaintcp", "no TLS handshake possible"),
        ("tarpit", "accepts connections but sent nothing back"),
        ("closed", "connection refused"),
    ],
)
def test_non_tls_endpoints_fail_with_a_reason(lab_scan, name, reason):
    outcome = lab_scan[name]
    assert isinstance(outcome, _sslyze.ScanFailure)
    assert reason in outcome.reason


# --- every baseline-tls rule on every endpoint ------------------------------------------------

P, F, NA = "pass", "fail", "not_applicable"
#                          modern intermediate legacy tripledes expired selfsigned
EXPECTED = {
    "TLS-PROTO-SSL": (P, P, P, P, P, P),
    "TLS-MIN-TLS12": (P, P, F, F, P, P),
    "TLS-CIPHER-BROKEN": (P, P, P, F, P, P),
    "TLS-CIPHER-STATIC-RSA": (P, P, F, F, P, F),
    "TLS-CIPHER-CBC": (P, P, F, F, F, F),
    "TLS-FORWARD-SECRECY": (P, P, F, F, P, F),
    "TLS-DH-WEAK": (P, P, P, P, P, P),
    "TLS-MOZILLA-INTERMEDIATE": (P, P, F, F, F, F),
    "TLS-CERT-TRUSTED": (P, P, F, P, F, F),
    "TLS-CERT-EXPIRY": (P, P, P, P, F, P),
    "TLS-CERT-LIFETIME": (P, P, F, P, F, P),  # the expired one lived 390 days
    "TLS-CERT-KEY": (P, P, F, P, P, P),
    "TLS-CERT-SIGNATURE": (P, P, F, P, P, P),
    "TLS-HOSTNAME": (P, P, P, P, P, F),
    "TLS-VULN-CRITICAL": (P, P, P, P, P, P),
    "TLS-VULN-PROTOCOL": (P, P, P, F, P, P),
    "TLS-HSTS": (F, P, F, F, F, F),
}


@pytest.fixture(scope="module")
def baseline_tls_rules() -> dict[str, Any]:
    policy = load_policy("baseline-tls", Registry.load())
    return {rule.id: rule for rule in policy.rules}


def test_expected_table_covers_the_policy(baseline_tls_rules):
    assert set(EXPECTED) == set(baseline_tls_rules)
    # The FTP and mail rules (tls.starttls_offered) live in the baseline and level 2 policies.
    others = {"tls.mozilla_profile", "tls.starttls_offered"}
    assert {rule.control for rule in baseline_tls_rules.values()} | others == set(CONTROLS)


@pytest.mark.parametrize("server", TLS_SERVERS)
def test_rule_verdicts(lab_scan, tls_lab_servers, baseline_tls_rules, server):
    data = _data(lab_scan, server)
    target = _target(tls_lab_servers.servers[server])
    column = TLS_SERVERS.index(server)
    verdicts = {
        rule_id: CONTROLS[rule.control].judge(data, rule.params, target)
        for rule_id, rule in baseline_tls_rules.items()
    }
    assert {rule_id: v.status for rule_id, v in verdicts.items()} == {
        rule_id: statuses[column] for rule_id, statuses in EXPECTED.items()
    }
    for verdict in verdicts.values():
        _assert_same_facts_in_vietnamese(verdict)


def _assert_same_facts_in_vietnamese(verdict: Any) -> None:
    """The Vietnamese sentence exists and carries the English one's numbers, in the same order."""
    assert verdict.vi, verdict.message
    assert re.findall(r"\d+", verdict.vi) == re.findall(r"\d+", verdict.message), (
        verdict.message,
        verdict.vi,
    )


def test_mozilla_modern(lab_scan, tls_lab_servers):
    judge = CONTROLS["tls.mozilla_profile"].judge
    modern = MozillaParams(profile="modern")
    target = _target(tls_lab_servers.servers["modern"])
    assert judge(_data(lab_scan, "modern"), modern, target).status == P
    verdict = judge(_data(lab_scan, "intermediate"), modern, target)
    assert verdict.status == F
    assert "protocols not in the profile: TLSv1.2" in verdict.observed
    assert "certificate key type RSA (profile: EC)" in verdict.observed


# --- the probe: endpoint choice, trust settings, fast failures --------------------------------


def _ports_observation(target: Any, *open_ports: tuple[int, str]) -> Observation:
    return Observation(
        check="ports",
        system=target.system.id,
        host=target.address,
        ip=target.ip,
        status="ok",
        data=PortsData(
            scanned=tuple(p for p, _ in open_ports),
            open=tuple(OpenPort(port=p, service=s) for p, s in open_ports),
            nmap_version="test",
        ),
    )


def test_probe_uses_ports_observation_and_system_trust(tls_lab_servers):
    server = tls_lab_servers.servers["intermediate"]
    target = _target(server)
    prior = (_ports_observation(target, (22, "ssh"), (443, "https"), (80, "http")),)
    # No trust anchor: the lab CA is in no public store, so the chain is not trusted.
    observations = list(
        TlsCheck().probe(target, ProbeContext(timeout=40, settings=TlsSettings(), prior=prior))
    )
    assert [(o.port, o.status) for o in observations] == [(443, "ok")]
    data = TlsData.model_validate(observations[0].data)
    assert data.certificate is not None
    assert data.certificate.trusted is False
    assert data.certificate.trust_error is not None and data.certificate.trust_error.startswith("Mozilla:")


def test_probe_failures_are_fast_error_observations(tls_lab_servers):
    tarpit = tls_lab_servers.servers["tarpit"]
    target = _target(tarpit, services=((443, "tls"),))
    started = time.monotonic()
    observations = list(TlsCheck().probe(target, ProbeContext(timeout=8, settings=TlsSettings())))
    assert time.monotonic() - started < 6
    assert len(observations) == 1
    assert observations[0].status == "error" and observations[0].port == 443
    assert "sent nothing back" in (observations[0].error or "")


def test_scan_reports_endpoints_still_running_at_the_deadline(tls_lab_servers):
    server = tls_lab_servers.servers["intermediate"]
    endpoint = _sslyze.Endpoint(ip=server.ip, port=server.port, sni=server.hostname)
    started = time.monotonic()
    # No exhaustive run (a handshake per suite) finishes in 10 ms, even on loopback: the scan
    # must give up, not wait.
    options = _sslyze.ScanOptions(connect_timeout=2, deadline=0.01, silence=2, exhaustive=True)
    outcome = _sslyze.scan([endpoint], options)[endpoint]
    assert time.monotonic() - started < 1
    assert outcome == _sslyze.ScanFailure("TLS scan did not finish within 0 s of starting")
    # Given up is stopped: the scan's queued handshakes are dropped, not run behind our back.
    jobs = _pool.pool()
    time.sleep(0.5)
    before = jobs.started
    time.sleep(1.0)
    assert jobs.started - before <= options.max_connections_per_server


def test_probe_with_unreadable_trust_anchor_fails_closed(tls_lab_servers, tmp_path):
    server = tls_lab_servers.servers["modern"]
    target = factories.target(address=server.ip, hostname=server.hostname, services=((443, "tls"),))
    settings = TlsSettings(trust_anchors=(str(tmp_path / "missing.pem"),))
    observations = list(TlsCheck().probe(target, ProbeContext(timeout=10, settings=settings)))
    assert [o.status for o in observations] == ["error"]
    assert "trust anchors unusable" in (observations[0].error or "")


# --- pure parts -------------------------------------------------------------------------------


def test_endpoint_selection_merges_inventory_ports_and_settings():
    target = factories.target(
        address="127.0.30.50", services=((8443, "tls"), (25, "smtp"), (993, "imap"), (22, "ssh"))
    )
    prior = (
        _ports_observation(
            target,
            (443, "http"),
            (8080, "ssl/http"),
            (110, "pop3"),
            (389, "ldap"),
            (5432, "postgresql"),
            (80, "http"),
        ),
    )
    settings = TlsSettings(starttls={5432: "postgres", 2525: "smtp"}, extra_tls_ports=(80,))
    assert tls_endpoints(target, settings, prior) == {
        25: "smtp",
        80: None,
        110: "pop3",
        389: "ldap",
        443: None,
        993: None,
        5432: "postgres",
        8080: None,
        8443: None,
    }


def test_an_ftp_port_is_scanned_through_auth_tls():
    # Explicit FTPS lives on port 21: the FTP rule judges the answer to AUTH TLS.
    target = factories.target(address="127.0.30.51", services=((2121, "ftp"),))
    prior = (_ports_observation(target, (21, "ftp"), (990, "ftps")),)
    assert tls_endpoints(target, TlsSettings(), prior) == {21: "ftp", 990: None, 2121: "ftp"}


def test_endpoint_selection_without_tls():
    target = factories.target(address="127.0.30.51", services=())
    prior = (_ports_observation(target, (22, "ssh"), (80, "http")),)
    assert tls_endpoints(target, TlsSettings(), prior) == {}
    assert list(TlsCheck().probe(target, ProbeContext(timeout=5, settings=TlsSettings(), prior=prior))) == []


@pytest.mark.parametrize(
    ("suite", "families"),
    [
        ("TLS_RSA_WITH_3DES_EDE_CBC_SHA", ("3DES", "static_rsa", "CBC")),
        ("TLS_RSA_WITH_DES_CBC_SHA", ("DES", "static_rsa", "CBC")),
        ("TLS_RSA_EXPORT_WITH_RC4_40_MD5", ("EXPORT", "RC4", "MD5", "static_rsa")),
        ("TLS_DH_anon_WITH_AES_128_CBC_SHA", ("anon", "CBC")),
        ("TLS_ECDHE_RSA_WITH_NULL_SHA", ("NULL",)),
        ("SSL_CK_DES_192_EDE3_CBC_WITH_MD5", ("3DES", "MD5", "static_rsa", "CBC")),
        ("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", ()),
        ("TLS_AES_128_GCM_SHA256", ()),
    ],
)
def test_suite_families(suite, families):
    assert suite_families(suite) == families


def _cert(*sans: x509.GeneralName) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "www.attt.test")])
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    return builder.sign(key, hashes.SHA256())


def test_hostname_matching_follows_rfc_9525():
    import ipaddress

    wildcard = _cert(x509.DNSName("*.attt.test"), x509.IPAddress(ipaddress.ip_address("127.0.30.9")))
    assert hostname_matches("www.attt.test", wildcard)
    assert hostname_matches("WWW.attt.test.", wildcard)
    assert not hostname_matches("a.b.attt.test", wildcard)
    assert not hostname_matches("attt.test", wildcard)
    assert hostname_matches("127.0.30.9", wildcard)
    assert not hostname_matches("127.0.30.8", wildcard)
    # The CN says www.attt.test, but without subjectAltName nothing matches.
    assert not hostname_matches("www.attt.test", _cert())


@pytest.mark.parametrize(
    ("wildcard", "name", "matches"),
    [
        ("*.com", "example.com", False),
        ("*.co.uk", "example.co.uk", False),
        ("*.gov.vn", "hatinh.gov.vn", False),
        ("*.com.vn", "shop.com.vn", False),
        ("*.edu.vn", "hust.edu.vn", False),
        ("*.hatinh.gov.vn", "dichvucong.hatinh.gov.vn", True),
        ("*.example.co.uk", "www.example.co.uk", True),
        # The list's private section (hosting providers) binds no CA: browsers accept these.
        ("*.github.io", "attt.github.io", True),
    ],
)
def test_no_wildcard_stands_over_a_public_suffix(wildcard: str, name: str, matches: bool) -> None:
    assert hostname_matches(name, _cert(x509.DNSName(wildcard))) is matches


def _synthetic(**changes: Any) -> TlsData:
    at = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    cert = Certificate(
        subject="CN=x",
        issuer="CN=ca",
        sans=("x.attt.test",),
        serial="1",
        not_before=at - dt.timedelta(days=10),
        not_after=at + dt.timedelta(days=20),
        key_type="EC",
        key_bits=256,
        curve="secp256r1",
        signature_algorithm="ecdsa-with-SHA256",
        signature_hash="sha256",
        chain_signature_hashes=("sha1",),
        self_signed=False,
        trusted=True,
        hostname="x.attt.test",
        hostname_matches=True,
        expired=False,
        lifetime_days=30,
    )
    values: dict[str, Any] = {
        "scanned_at": at,
        "sni": "x.attt.test",
        "protocols": ("TLSv1.3",),
        "cipher_suites": {"TLSv1.3": ("TLS_AES_128_GCM_SHA256",)},
        "forward_secrecy": True,
        "groups": ("x25519",),
        "certificate": cert,
        "ocsp_stapling": False,
        "vulnerabilities": Vulnerabilities(
            heartbleed=False,
            robot=None,
            ccs_injection=False,
            insecure_renegotiation=False,
            client_renegotiation=False,
            compression=False,
            fallback_scsv=False,
            extended_master_secret=False,
        ),
        "http": False,
    }
    return TlsData.model_validate(values | changes)


def test_expiry_counts_from_scan_time_not_the_clock():
    judge = CONTROLS["tls.certificate_expiry"].judge
    params = CONTROLS["tls.certificate_expiry"].params_model
    target = factories.target(hostname="x.attt.test")
    assert judge(_synthetic(), params(min_days_left=14), target).status == P
    verdict = judge(_synthetic(), params(min_days_left=30), target)
    assert (verdict.status, verdict.message) == (F, "the certificate expires in 20 day(s)")
    assert verdict.vi == "chứng thư số hết hạn sau 20 ngày"
    assert verdict.text.vi == verdict.vi and verdict.text.en == verdict.message


def test_missing_facts_are_never_a_pass():
    target = factories.target(hostname="x.attt.test")
    vulns = CONTROLS["tls.no_known_vulnerabilities"]
    verdict = vulns.judge(_synthetic(), vulns.params_model(), target)
    assert (verdict.status, verdict.observed) == ("error", ["robot"])
    no_cert = _synthetic(certificate=None, incomplete=("certificate_info",))
    for control_id in ("tls.certificate_trusted", "tls.certificate_key", "tls.hostname_matches"):
        control = CONTROLS[control_id]
        assert control.judge(no_cert, control.params_model(), target).status == "error"


def test_signature_control_looks_at_intermediates_and_hsts_needs_http():
    target = factories.target(hostname="x.attt.test")
    signature = CONTROLS["tls.certificate_signature"]
    verdict = signature.judge(_synthetic(), signature.params_model(), target)
    assert (verdict.status, verdict.message) == (F, "intermediate signed with sha1")
    assert verdict.vi == "chứng thư số trung gian được ký bằng sha1"
    hsts = CONTROLS["tls.hsts"]
    # No HTTP answer recorded where one was asked for is no proof that there is no web server.
    assert hsts.judge(_synthetic(), hsts.params_model(), target).status == "error"
    not_http = _synthetic().model_copy(update={"http_requested": False})
    assert hsts.judge(not_http, hsts.params_model(), target).status == NA
    hostname = CONTROLS["tls.hostname_matches"]
    assert hostname.judge(_synthetic(), NoParams(), factories.target()).status == NA


def test_the_certificate_name_is_judged_against_the_name_the_host_is_registered_under():
    hostname = CONTROLS["tls.hostname_matches"]
    matched_for_x = _synthetic()  # matched against x.attt.test, and valid for it
    # Registered by its DNS name alone: that name is the one to match.
    by_name = factories.target(address="x.attt.test", ip="127.0.0.1")
    assert by_name.server_name == "x.attt.test"
    assert hostname.judge(matched_for_x, NoParams(), by_name).status == P
    # A match made against another name (a run stored before the address was used as the name)
    # says nothing about this one.
    other = factories.target(address="y.attt.test", ip="127.0.0.1")
    verdict = hostname.judge(matched_for_x, NoParams(), other)
    assert (verdict.status, verdict.message) == (
        "error",
        "the certificate was matched against x.attt.test, not against y.attt.test",
    )
    assert verdict.vi == "chứng thư số được đối chiếu với x.attt.test, không phải với y.attt.test"
    # A bare IP address and no hostname: no name to match.
    assert factories.target().server_name is None


@pytest.mark.parametrize(
    ("suites", "kex", "status"),
    [
        ({"TLSv1.2": ("TLS_DHE_RSA_WITH_AES_128_GCM_SHA256",)}, {"dh_min_bits": 1024}, "fail"),
        ({"TLSv1.2": ("TLS_DHE_RSA_WITH_AES_128_GCM_SHA256",)}, {"dh_min_bits": 2048}, "pass"),
        ({"TLSv1.2": ("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",)}, {"ecdh_min_bits": 224}, "fail"),
        ({"TLSv1.2": ("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",)}, {"ecdh_min_bits": 256}, "pass"),
        # A DHE suite whose key size never came back is not a pass.
        ({"TLSv1.2": ("TLS_DHE_RSA_WITH_AES_128_GCM_SHA256",)}, {}, "error"),
        # Nor an ECDHE suite, nor a TLS 1.3 one (its key share may be ECDH or finite-field DH).
        ({"TLSv1.2": ("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",)}, {}, "error"),
        ({"TLSv1.3": ("TLS_AES_128_GCM_SHA256",)}, {}, "error"),
        ({"TLSv1.3": ("TLS_AES_128_GCM_SHA256",)}, {"dh_min_bits": 2048}, "pass"),
        ({"TLSv1.2": ("TLS_RSA_WITH_AES_128_GCM_SHA256",)}, {}, "pass"),
    ],
)
def test_weak_diffie_hellman_fails_from_the_baseline(suites: Any, kex: Any, status: str) -> None:
    data = _synthetic(protocols=tuple(suites), cipher_suites=suites, key_exchange=KeyExchange(**kex))
    rule = load_policy("baseline", Registry.load()).rules
    weak_dh = next(r for r in rule if r.id == "TLS-DH-WEAK")
    verdict = CONTROLS[weak_dh.control].judge(data, weak_dh.params, factories.target())
    assert verdict.status == status
    if status == "fail":
        _assert_same_facts_in_vietnamese(verdict)
