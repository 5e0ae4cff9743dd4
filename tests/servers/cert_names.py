"""HTTPS servers whose certificates name the host in ways OpenSSL's name check accepts and
browsers may not: a wildcard, over a public suffix or under a registered domain (on
127.0.241.0/24), or the subject CN alone (on 127.0.244.0/24).

Each is OpenSSL's s_server (`-www`: every GET is answered with a status page) with a
certificate from a test CA, for the host name a test asks for (the inventory pins it to the
server's address):

- `suffix`: `*.gov.vn` only, for `portal.gov.vn`. OpenSSL's name check (Python's `ssl`) accepts
  it; browsers refuse a wildcard over a public suffix.
- `suffix and name`: `*.gov.vn` and `portal.gov.vn`: the name's own entry makes it valid.
- `province`: `*.hatinh.gov.vn`, for `portal.hatinh.gov.vn`: a wildcard under a registered
  domain, valid.
- `cn only`: `cong.hatinh.gov.vn` as the subject CN, no subjectAltName. OpenSSL falls back on
  the CN; browsers ignore it (Chrome since 58, Firefox since 48; RFC 9525).
- `cn and address`: the same CN, and a subjectAltName holding the server's address alone:
  OpenSSL falls back on the CN whenever no DNS name is there, not only without the extension.
"""

import datetime as dt
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from tests.servers.tls import TlsServer, _leaf, _make_ca, _process, _s_server

NET = "127.0.241"
CN_NET = "127.0.244"


@dataclass(frozen=True)
class Named:
    """One server: where it listens, the name asked for, and its certificate's names."""

    server: TlsServer
    sans: tuple[str, ...]
    cn_only: bool = False
    """The host name is the subject CN, in no subjectAltName entry (`sans` are the others)."""


SERVERS = {
    "suffix": Named(TlsServer("suffix", f"{NET}.50", 443, "portal.gov.vn"), ("*.gov.vn",)),
    "suffix and name": Named(
        TlsServer("suffix-and-name", f"{NET}.51", 443, "portal.gov.vn"), ("*.gov.vn", "portal.gov.vn")
    ),
    "province": Named(TlsServer("province", f"{NET}.52", 443, "portal.hatinh.gov.vn"), ("*.hatinh.gov.vn",)),
    "cn only": Named(TlsServer("cn-only", f"{CN_NET}.1", 443, "cong.hatinh.gov.vn"), (), cn_only=True),
    "cn and address": Named(
        TlsServer("cn-and-address", f"{CN_NET}.2", 443, "cong.hatinh.gov.vn"), (f"{CN_NET}.2",), cn_only=True
    ),
}


@contextmanager
def cert_name_servers(workdir: Path) -> Iterator[Path]:
    """Every server of `SERVERS`, running; yields the test CA's certificate."""
    now = dt.datetime.now(dt.UTC)
    day = dt.timedelta(days=1)
    issuer, ca_file = _make_ca(workdir, now)
    with ExitStack() as stack:
        for named in SERVERS.values():
            server = named.server
            first, *more = (server.hostname, *named.sans) if named.cn_only else named.sans
            key = ec.generate_private_key(ec.SECP256R1())
            cert = _leaf(
                workdir,
                server.name,
                first,
                key,
                issuer,
                now - day,
                now + 89 * day,
                more_sans=tuple(more),
                cn_only=named.cn_only,
            )
            stack.enter_context(_process(_s_server(server, *cert), server, workdir))
        yield ca_file
