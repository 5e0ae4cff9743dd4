"""Cipher suites and groups by elimination: the same accepted suites and curves as sslyze's
one-handshake-per-suite (and per-curve) enumeration, in a handful of handshakes.

Offer every candidate suite of a version; the server picks one it accepts; drop that one and
offer the rest again, until the server refuses them all. That costs one handshake per accepted
suite plus one, instead of one per suite sslyze knows (about 580 over six versions). A version
the server does not speak costs one refused handshake per group. Long ClientHellos break some
servers, so candidates go in chunks (the technique testssl.sh documents), each eliminated on
its own. Where a handshake fails on our side (a DH group our OpenSSL refuses, a client
certificate request) the remaining suites of that chunk are tried one by one, exactly as sslyze
would; any other failure fails the step, as it fails sslyze's job for a suite.

The handshake that ends an elimination settles every suite still open as rejected, where
sslyze's enumeration loses one suite to one bad connection. So a handshake that got no answer
(silence, or the connection dropped without a TLS alert) is asked again once on a fresh
connection before it counts: a server that does not speak those suites does the same again
(some stall, some reset, as they do for every version they refuse), a flaky one answers.

Elliptic curves go the same way (`eliminate_groups`): sslyze offers each of its ~30 curves
alone; here all of them are offered and the one the server picks is removed. Curves are offered
at a version the server speaks, which answers a curve it lacks with an alert (some stacks reset
the connection instead, which stands as the refusal once asked again): a handshake left silent
twice is no answer about its curves, and they are not observed (`Unanswered`), where sslyze's
one-curve test reads every timeout as "rejected".

Each function returns one entry per suite (curve) it was given, in order, as sslyze's per-suite
(per-curve) jobs would have: (result, None), or (None, exception) for a suite our OpenSSL cannot
offer (sslyze skips those) or a connection that failed.
"""

from collections.abc import Callable, Sequence
from contextlib import suppress
from functools import cache
from typing import Any

from nassl.ephemeral_key_info import _OPENSSL_NID_TO_SECG_ANSI_X9_62, EcDhEphemeralKeyInfo, OpenSslEcNidEnum
from nassl.ssl_client import ClientCertificateRequested, SslClient
from sslyze.connection_helpers.tls_connection import NoCiphersAvailableBugInSSlyze
from sslyze.errors import (
    ServerRejectedTlsHandshake,
    ServerTlsConfigurationNotSupported,
    TlsHandshakeTimedOut,
)
from sslyze.plugins.elliptic_curves_plugin import EllipticCurve, _EllipticCurveResult, _test_curve
from sslyze.plugins.openssl_cipher_suites._test_cipher_suite import (
    CipherSuiteAcceptedByServer,
    CipherSuiteRejectedByServer,
    _set_cipher_suite_string,
    connect_with_cipher_suite,
)
from sslyze.plugins.openssl_cipher_suites._tls12_workaround import WorkaroundForTls12ForCipherSuites
from sslyze.plugins.openssl_cipher_suites.cipher_suites import CipherSuite
from sslyze.server_connectivity import ServerConnectivityInfo, TlsVersionEnum, enable_ecdh_cipher_suites

CHUNK = 48
"""Suites per ClientHello: about 100 bytes of suites, well under the 256-byte ClientHello that
some load balancers choke on once the other extensions are added."""
NOT_CHOSEN = "not chosen by the server when offered with the others"
_DROPPED = frozenset(
    {
        "Server closed the connection during the TLS handshake",
        "Server rejected the connection",
        "Server interrupted the TLS handshake",
    }
)
"""sslyze's texts for a handshake the server ended by closing or resetting the connection,
with no TLS alert: not an answer about the suites offered."""
_NO_ANSWER = _DROPPED | {"Connection to server timed out during the TLS handshake"}
"""The same, and sslyze's text for a handshake the server left silent, as sslyze's one-suite
test records them in a "rejected" suite."""

Entry = tuple[Any, Exception | None]


class Unanswered(Exception):
    """The server never answered what a test asked, twice: its answer was not observed."""


def needs_legacy_openssl(version: TlsVersionEnum, suite: CipherSuite) -> bool:
    """Which of nassl's two OpenSSL builds offers `suite` at `version` (sslyze's own rule)."""
    if version == TlsVersionEnum.TLS_1_3:
        return False
    if version == TlsVersionEnum.TLS_1_2:
        return _legacy_tls12(suite.openssl_name)
    return True


@cache
def _legacy_tls12(openssl_name: str) -> bool:
    # sslyze asks a fresh legacy client every time; the answer never changes.
    return bool(WorkaroundForTls12ForCipherSuites.requires_legacy_openssl(openssl_name))


def chunks(suites: Sequence[CipherSuite]) -> list[list[CipherSuite]]:
    ordered = sorted(suites, key=lambda s: s.name)
    return [ordered[i : i + CHUNK] for i in range(0, len(ordered), CHUNK)]


def eliminate(
    server: ServerConnectivityInfo,
    version: TlsVersionEnum,
    suites: Sequence[CipherSuite],
    legacy: bool,
    answered: Callable[[], None] = lambda: None,
) -> list[Entry]:
    """Every suite of `suites` (one OpenSSL build's, one chunk) as accepted or rejected.

    `answered` is called after each handshake the server completed: one step is many
    handshakes, and a busy machine must not take a server that keeps answering for silent."""
    found: dict[str, Entry] = {}
    left = {suite.openssl_name: suite for suite in suites}
    retried = False
    while left:
        connection = server.get_preconfigured_tls_connection(
            override_tls_version=version, should_use_legacy_openssl=legacy
        )
        chosen: str | None = None
        try:
            try:
                _set_cipher_suite_string(version, ":".join(left), connection.ssl_client)
            except Exception as exc:  # our OpenSSL can offer none of them: sslyze skips each
                return _in_order(suites, found, NoCiphersAvailableBugInSSlyze(str(exc)))
            connection.connect()
            chosen = connection.ssl_client.get_current_cipher_name()
            key = connection.ssl_client.get_ephemeral_key()
        except NoCiphersAvailableBugInSSlyze as exc:
            return _in_order(suites, found, exc)
        except (ServerRejectedTlsHandshake, TlsHandshakeTimedOut) as exc:
            if _unanswered(exc) and not retried:
                retried = True  # once: see the module docstring
                continue
            break
        except (ServerTlsConfigurationNotSupported, ClientCertificateRequested):
            # The server accepted a suite but our side could not finish (a DH group our OpenSSL
            # refuses, a client certificate asked for): no telling which suite it chose, so the
            # rest are tried one by one, as sslyze does (below, once this connection is closed:
            # a server that serves one connection at a time would wait on it for a certificate).
            pass
        except Exception as exc:
            # Anything else failed the step, as it fails sslyze's job for a suite: the suites
            # not yet settled carry the error, and the step is reported incomplete.
            return _in_order(suites, found, exc)
        finally:
            connection.close()
        if chosen not in left:
            # No suite told (see above), or one we did not offer (a broken server): one by one
            # tells the truth.
            for other in left.values():
                found[other.openssl_name] = _one(server, version, other)
            left = {}
            break
        found[chosen] = (CipherSuiteAcceptedByServer(cipher_suite=left.pop(chosen), ephemeral_key=key), None)
        retried = False
        answered()
    for suite in left.values():
        found[suite.openssl_name] = (
            CipherSuiteRejectedByServer(cipher_suite=suite, error_message=NOT_CHOSEN),
            None,
        )
    return [found[suite.openssl_name] for suite in suites]


def _unanswered(exc: Exception) -> bool:
    """The server said nothing about the offer: it stayed silent, or dropped the connection."""
    if isinstance(exc, TlsHandshakeTimedOut):
        return True
    return isinstance(exc, ServerRejectedTlsHandshake) and exc.error_message in _DROPPED


def one_suite(
    server: ServerConnectivityInfo, version: TlsVersionEnum, suite: CipherSuite
) -> CipherSuiteAcceptedByServer | CipherSuiteRejectedByServer:
    """sslyze's handshake offering `suite` alone (the exhaustive path's, and `_one`'s), asked
    again once on a fresh connection when the server gave no answer: sslyze records a handshake
    that timed out, or that the server dropped without a TLS alert, as "rejected", and one
    flaky connection hid an accepted suite. A second non-answer stands as the refusal, as it
    does for an elimination's offer (see the module docstring): servers refuse what they do not
    speak that way, SSL 2.0 above all (OpenSSL's s_server drops every such ClientHello)."""
    result = connect_with_cipher_suite(server, version, suite)
    if isinstance(result, CipherSuiteRejectedByServer) and result.error_message in _NO_ANSWER:
        result = connect_with_cipher_suite(server, version, suite)
    return result


def _one(server: ServerConnectivityInfo, version: TlsVersionEnum, suite: CipherSuite) -> Entry:
    try:
        return one_suite(server, version, suite), None
    except Exception as exc:  # kept for sslyze's result builder, as its own job would be
        return None, exc


def _in_order(suites: Sequence[CipherSuite], found: dict[str, Entry], missing: Exception) -> list[Entry]:
    return [found.get(suite.openssl_name, (None, missing)) for suite in suites]


def eliminate_groups(
    server: ServerConnectivityInfo,
    curves: Sequence[OpenSslEcNidEnum],
    answered: Callable[[], None] = lambda: None,
) -> list[Entry]:
    """Every curve of `curves` as accepted or rejected, on sslyze's terms: ECDH suites at the
    server's highest version, our modern OpenSSL, the curves offered in `supported_groups`.

    Below TLS 1.3 the server's certificate may need a curve in the offer too (an ECDSA key's
    own curve): a curve picked from the whole offer is then confirmed alone, as sslyze tests
    it, so that "accepted" means what it means in sslyze's answer. TLS 1.3 separates the two,
    and the server's pick from the offer is the fact."""
    version = server.tls_probing_result.highest_tls_version_supported
    confirm = version != TlsVersionEnum.TLS_1_3
    found: dict[OpenSslEcNidEnum, Entry] = {}
    left = list(curves)
    while left:
        try:
            key = _offer_twice(server, version, left)
        except TlsHandshakeTimedOut:
            silent = _silent_twice(left)
            found.update((curve, (None, silent)) for curve in left)
            left = []
            break
        except ServerRejectedTlsHandshake:
            break
        except Exception:
            # sslyze reads some errors of one curve as "rejected" and fails on the others; with
            # many curves offered, no telling which one caused it: one by one, as sslyze does.
            left = _each_curve(server, left, found)
            break
        # nassl reports the curve as a bare number: the offered member it equals, if any.
        offered = key.curve if isinstance(key, EcDhEphemeralKeyInfo) else None
        chosen = next((curve for curve in left if curve == offered), None)
        if chosen is None:
            # Not an ECDH key exchange, or a curve we did not offer: one by one tells the truth.
            left = _each_curve(server, left, found)
            break
        left.remove(chosen)
        found[chosen] = _one_curve(server, chosen) if confirm else (_curve(chosen, True), None)
        answered()
    for curve in left:
        found[curve] = (_curve(curve, False), None)
    return [found[curve] for curve in curves]


def _offer_groups(
    server: ServerConnectivityInfo, version: TlsVersionEnum, curves: Sequence[OpenSslEcNidEnum]
) -> Any:
    """One handshake offering ECDH suites at `version` and `curves` in `supported_groups`, on
    our modern OpenSSL (sslyze's one-curve test, with more curves): the server's ephemeral key,
    or the exception the handshake ended in."""
    connection = server.get_preconfigured_tls_connection(
        override_tls_version=version, should_use_legacy_openssl=False
    )
    client = connection.ssl_client
    try:
        if not isinstance(client, SslClient):
            raise TypeError("sslyze gave the legacy client where the modern one was asked for")
        enable_ecdh_cipher_suites(version, client)
        client.set_groups(list(curves))
        # The key exchange is over by the time the server asks for a certificate.
        with suppress(ClientCertificateRequested):
            connection.connect()
        return client.get_ephemeral_key()
    finally:
        connection.close()


def _offer_twice(
    server: ServerConnectivityInfo, version: TlsVersionEnum, curves: Sequence[OpenSslEcNidEnum]
) -> Any:
    """`_offer_groups`, asked again once on a fresh connection when the server gave no answer
    (silence, or the connection dropped without a TLS alert), as a suite's offer is."""
    try:
        return _offer_groups(server, version, curves)
    except (ServerRejectedTlsHandshake, TlsHandshakeTimedOut) as exc:
        if not _unanswered(exc):
            raise
    return _offer_groups(server, version, curves)


def one_curve(server: ServerConnectivityInfo, curve: OpenSslEcNidEnum) -> _EllipticCurveResult:
    """sslyze's test of `curve` offered alone (the exhaustive path's, and the confirmation of a
    curve an elimination found below TLS 1.3), where sslyze reads a handshake that timed out as
    "rejected". Asked again once when unanswered (`_offer_twice`): silent again, the curve is
    not observed (see the module docstring); dropped again, that stands as the refusal, as it
    does for a suite. Other failures are sslyze's to read (some OpenSSL errors mean "rejected"):
    its own test, on a fresh connection."""
    try:
        key = _offer_twice(server, server.tls_probing_result.highest_tls_version_supported, [curve])
    except TlsHandshakeTimedOut:
        raise _silent_twice([curve]) from None
    except ServerRejectedTlsHandshake:
        return _curve(curve, False)
    except Exception:
        return _test_curve(server, curve)
    accepted = isinstance(key, EcDhEphemeralKeyInfo)
    if accepted and key.curve != curve:
        raise RuntimeError(f"the server answered an offer of {_name(curve)} alone with another curve")
    return _curve(curve, accepted)


def _silent_twice(curves: Sequence[OpenSslEcNidEnum]) -> Unanswered:
    if len(curves) == 1:
        offer, which = f"the curve {_name(curves[0])} alone", "it"
    else:
        offer, which = f"{len(curves)} curves ({', '.join(_name(curve) for curve in curves)})", "any of them"
    return Unanswered(
        f"the server left silent, twice, the handshake offering {offer}: whether it accepts {which}"
        " was not observed"
    )


def _each_curve(
    server: ServerConnectivityInfo, curves: Sequence[OpenSslEcNidEnum], found: dict[OpenSslEcNidEnum, Entry]
) -> list[OpenSslEcNidEnum]:
    """The one-curve test for each curve still open; none are left open after it."""
    for curve in curves:
        found[curve] = _one_curve(server, curve)
    return []


def _one_curve(server: ServerConnectivityInfo, curve: OpenSslEcNidEnum) -> Entry:
    try:
        return one_curve(server, curve), None
    except Exception as exc:  # kept for sslyze's result builder, as its own job would be
        return None, exc


def _curve(curve: OpenSslEcNidEnum, accepted: bool) -> _EllipticCurveResult:
    """sslyze's record of one curve's answer."""
    return _EllipticCurveResult(
        curve=EllipticCurve(name=_name(curve), openssl_nid=curve.value), was_accepted_by_server=accepted
    )


def _name(curve: OpenSslEcNidEnum) -> str:
    """The curve's name as sslyze names it."""
    return _OPENSSL_NID_TO_SECG_ANSI_X9_62.get(curve, f"unknown-curve-with-openssl-id-{curve.value}")
