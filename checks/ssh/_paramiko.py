"""Everything attt does with paramiko, in one place.

Three uses: the authentication methods a server offers (`auth_none` with a neutral user
name, never a password), the server's host key for one host-key algorithm, and the
effective configuration printed by `sshd -T` (and what its Match blocks change) over an
authenticated session.

Three paramiko traps shape this module: `start_client(timeout=...)` can return without a
finished key exchange (so we wait on our own event and check the result); paramiko logs
failed handshakes with tracebacks (so its transports log to a channel we silence); and a
call that waits on the server (authentication, opening a channel) re-raises whatever its
reader thread hit, of any type: a connection reset, or a UnicodeDecodeError on a name-list
that is not UTF-8 (so those calls catch every exception as the server's failure).
"""

import base64
import hashlib
import logging
import re
import shlex
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import paramiko

from attt.checks.ssh import sshd_match
from attt.scanner.plugin import Credential

_LOG_CHANNEL = "attt.ssh.paramiko"
_quiet = logging.getLogger(_LOG_CHANNEL)
_quiet.addHandler(logging.NullHandler())
# A hostile server can make paramiko log tracebacks; they belong in the observation, not stderr.
_quiet.propagate = False

MAX_CONFIG_BYTES = 256 * 1024
MAX_CONFIG_KEYS = 400
MAX_CONFIG_VALUE = 2000
MAX_STDERR = 2000

_RSA_ALGORITHMS = ("rsa-sha2-512", "rsa-sha2-256")
FETCHABLE_HOST_KEY_ALGORITHMS = (
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    *_RSA_ALGORITHMS,
)
"""Host-key algorithms paramiko can negotiate (it dropped `ssh-rsa` and `ssh-dss`); a test
checks each against paramiko's public `SecurityOptions`."""
_SAFE_PATH = re.compile(r"^/[A-Za-z0-9_./-]{1,255}$")
_MIN_WAIT = 0.1
"""Seconds a step is given when its connection's budget is spent, so it fails rather than hangs."""


class ParamikoProbeError(Exception):
    """A paramiko session could not do what was asked; the message is safe to store."""


@dataclass(frozen=True)
class HostKeyFact:
    algorithm: str
    """The host-key algorithm that was negotiated to fetch the key."""
    type: str
    """The key's own type, e.g. `ssh-rsa` for a key fetched with `rsa-sha2-512`."""
    bits: int
    sha256: str


@dataclass(frozen=True)
class AuthSurface:
    methods: tuple[str, ...] | None
    """Methods the server offers after `none`; `("none",)` means it let us in without any;
    None when the query failed (see `error`)."""
    banner: str | None
    error: str | None = None


def fetchable_host_key_algorithms(offered: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """One algorithm per distinct host key among those offered, and those paramiko cannot fetch.

    RSA keys answer to several signature algorithms; one of them is enough to see the key. A name
    the server lists twice is fetched once: each fetch is a full key exchange.
    """
    chosen: list[str] = []
    unsupported: list[str] = []
    rsa = next((alg for alg in _RSA_ALGORITHMS if alg in offered), None)
    for alg in dict.fromkeys(offered):
        if alg in _RSA_ALGORITHMS or (alg == "ssh-rsa" and rsa is not None):
            if rsa is not None and rsa not in chosen:
                chosen.append(rsa)
        elif alg in FETCHABLE_HOST_KEY_ALGORITHMS:
            chosen.append(alg)
        else:
            unsupported.append(alg)
    return tuple(chosen), tuple(unsupported)


@contextmanager
def _transport(
    ip: str, port: int, timeout: float, host_key_algorithm: str | None = None
) -> Iterator[paramiko.Transport]:
    """A transport whose key exchange really finished within `timeout`, closed on exit."""
    deadline = time.monotonic() + timeout
    try:
        sock = socket.create_connection((ip, port), timeout=timeout)
    except OSError as exc:
        raise ParamikoProbeError(f"connection failed: {exc.strerror or type(exc).__name__}") from None
    transport = paramiko.Transport(sock)
    transport.set_log_channel(_LOG_CHANNEL)
    transport.banner_timeout = timeout
    transport.handshake_timeout = timeout
    transport.auth_timeout = timeout
    try:
        if host_key_algorithm is not None:
            transport.get_security_options().key_types = (host_key_algorithm,)
        done = threading.Event()
        transport.start_client(event=done)
        done.wait(max(0.0, deadline - time.monotonic()))
        if not done.is_set() or not transport.is_active():
            failure = transport.get_exception()
            reason = f"{type(failure).__name__}: {failure}" if failure else "no reply in time"
            raise ParamikoProbeError(f"SSH key exchange did not complete ({reason})"[:300])
        yield transport
    finally:
        transport.close()
        sock.close()


def host_key(
    ip: str, port: int, algorithm: str | None, timeout: float, probe_user: str | None = None
) -> tuple[HostKeyFact, AuthSurface | None]:
    """The host key the server presents for `algorithm` (None: paramiko's choice) and, when
    `probe_user` is given, its authentication surface read over the same connection; both
    within `timeout`."""
    deadline = time.monotonic() + timeout
    with _transport(ip, port, timeout, algorithm) as transport:
        key = transport.get_remote_server_key()
        fact = HostKeyFact(algorithm or key.get_name(), key.get_name(), key.get_bits(), key.fingerprint)
        return fact, None if probe_user is None else _auth_surface(transport, probe_user, deadline)


def _auth_until(transport: paramiko.Transport, deadline: float) -> None:
    """Bound the next authentication request by the connection's deadline: paramiko counts
    `auth_timeout` from the request, so what the key exchange used would otherwise be given again."""
    transport.auth_timeout = max(_MIN_WAIT, deadline - time.monotonic())


def _auth_surface(transport: paramiko.Transport, user: str, deadline: float) -> AuthSurface:
    """What the server lets an unknown user try; sends only a `none` request."""
    _auth_until(transport, deadline)
    try:
        remaining = transport.auth_none(user)
    except paramiko.BadAuthenticationType as exc:
        methods = tuple(str(m) for m in exc.allowed_types)
    except Exception as exc:  # any type: see the module docstring
        # It loses this step only, never the host key read over the same connection.
        return AuthSurface(None, None, f"authentication query failed: {type(exc).__name__}: {exc}"[:300])
    else:
        # The server accepted `none`: no authentication at all, or more steps to come.
        methods = ("none",) if transport.is_authenticated() else tuple(str(m) for m in remaining)
    banner = transport.get_banner()
    text = banner.decode("utf-8", errors="replace") if isinstance(banner, bytes) else banner
    # paramiko reads an empty name-list as [""]. A server that names no method at all to the probe
    # user (one that tells unknown users apart, unlike OpenSSH) said nothing of what real users get.
    methods = tuple(m for m in methods if m)
    if not methods:
        return AuthSurface(None, text, "the server named no authentication method for the probe user")
    return AuthSurface(methods, text)


@dataclass(frozen=True)
class PackageFacts:
    manager: str
    version: str
    os_id: str
    os_version: str


@dataclass(frozen=True)
class AuthenticatedFacts:
    """What one authenticated session read: each fact, or why it could not be read."""

    config: dict[str, str] | None
    config_error: str | None
    package: PackageFacts | None
    package_error: str | None
    config_host_keys: frozenset[str]
    """SHA-256 fingerprints of the public halves of the `hostkey` files sshd -T names."""
    config_host_keys_error: str | None = None
    """Why those files could not be read, when a command failed or ran out of time."""
    match_settings: dict[str, tuple[str, ...]] | None = None
    """Keywords set inside `Match` blocks, with where (see `sshd_match`); None when not read."""
    match_error: str | None = None
    """Why the Match blocks could not be read."""


# Fixed text, no target input: /etc/os-release and the openssh-server version from whichever
# package manager the system has (the other one prints nothing or "not installed").
PACKAGE_COMMAND = (
    "cat /etc/os-release; "
    "dpkg-query -W -f='dpkg ${Version}\\n' openssh-server 2>/dev/null; "
    "rpm -q --qf 'rpm %{EPOCHNUM}:%{VERSION}-%{RELEASE}\\n' openssh-server 2>/dev/null; "
    "true"
)
MAX_PACKAGE_BYTES = 16 * 1024


def authenticated_facts(
    ip: str,
    port: int,
    credential: Credential,
    timeout: float,
    sshd_path: str = "/usr/sbin/sshd",
    config_path: str | None = None,
) -> AuthenticatedFacts:
    """`sshd -T`, the public halves of the host keys it names, the settings its Match blocks
    change (`sshd -ddd -T` and the files it names), and the installed openssh-server package,
    over one authenticated session.

    Errors never carry the credential's secret, only what went wrong; a failure to log in is
    raised, a failed command is reported next to the other fact.
    """
    command = _sshd_command(sshd_path, config_path, credential.sudo)
    debug_command = f"{_sshd_command(sshd_path, config_path, credential.sudo, debug=True)} 2>&1 >/dev/null"
    deadline = time.monotonic() + timeout
    with _transport(ip, port, timeout) as transport:
        _auth_until(transport, deadline)
        _authenticate(transport, credential, deadline)
        # Started now, read after sshd -T: the two run at the same time.
        debug: paramiko.Channel | ParamikoProbeError
        try:
            debug = _start(transport, debug_command, deadline)
        except ParamikoProbeError as exc:
            debug = exc
        config: dict[str, str] | None = None
        config_error: str | None = None
        try:
            status, stdout, stderr = _run(transport, command, MAX_CONFIG_BYTES, deadline)
            if status != 0:
                detail = stderr.decode("utf-8", errors="replace").strip().splitlines()[:1]
                config_error = f"`{command}` exited with status {status}: {' '.join(detail)[:200]}"
            else:
                config = parse_sshd_t(stdout.decode("utf-8", errors="replace")) or None
                if config is None:
                    # A forced command or a wrapper can exit 0 and print nothing: no setting was seen.
                    config_error = f"`{command}` printed no settings"
        except ParamikoProbeError as exc:
            config_error = str(exc)
        package: PackageFacts | None = None
        package_error: str | None = None
        try:
            _, stdout, _ = _run(transport, PACKAGE_COMMAND, MAX_PACKAGE_BYTES, deadline)
            package = parse_package_facts(stdout.decode("utf-8", errors="replace"))
            if package is None:
                package_error = "no openssh-server package found by dpkg or rpm"
        except ParamikoProbeError as exc:
            package_error = str(exc)
        if config is None:
            if isinstance(debug, paramiko.Channel):
                debug.close()
            return AuthenticatedFacts(config, config_error, package, package_error, frozenset())
        host_keys, host_keys_error = _config_host_keys(transport, config, deadline)
        match, match_error = _match_settings(transport, debug, debug_command, credential.sudo, deadline)
    return AuthenticatedFacts(
        config, config_error, package, package_error, host_keys, host_keys_error, match, match_error
    )


def _match_settings(
    transport: paramiko.Transport,
    debug: paramiko.Channel | ParamikoProbeError,
    debug_command: str,
    sudo: bool,
    deadline: float,
) -> tuple[dict[str, tuple[str, ...]] | None, str | None]:
    """The keywords `Match` blocks set (see `sshd_match`), or why they could not be read: the files
    sshd reads, as the started `sshd -ddd -T` names them, then their lines."""
    try:
        if isinstance(debug, ParamikoProbeError):
            raise debug
        status, stdout, _ = _collect(debug, debug_command, MAX_CONFIG_BYTES, deadline)
        if status != 0 or len(stdout) >= MAX_CONFIG_BYTES:
            why = f"exited with status {status}" if status != 0 else "printed too much"
            return None, f"`{debug_command}` {why}, so the files sshd reads are unknown"
        files, includes = sshd_match.loaded_files(stdout.decode("utf-8", errors="replace"))
        unusual = next((path for path in files if not _SAFE_PATH.match(path)), None)
        if unusual is not None:
            return (
                None,
                f"sshd reads a file with an unusual path ({unusual[:80]!r}), which attt does not read",
            )
        words = [*(["sudo", "-n"] if sudo else []), "grep", "-H", "-n", "-e", "", "--", *files]
        status, stdout, stderr = _run(transport, shlex.join(words), MAX_CONFIG_BYTES, deadline)
        if status not in (0, 1) or len(stdout) >= MAX_CONFIG_BYTES:
            detail = " ".join(stderr.decode("utf-8", errors="replace").strip().splitlines()[:1])[:200]
            return None, f"the configuration files could not be read (status {status}): {detail}"
        lines = sshd_match.file_lines(stdout.decode("utf-8", errors="replace"), files)
        return sshd_match.conditional_settings(files, includes, lines), None
    except (ParamikoProbeError, sshd_match.MatchReadError) as exc:
        return None, str(exc)


MAX_HOST_KEY_FILES = 16


def _config_host_keys(
    transport: paramiko.Transport, config: dict[str, str], deadline: float
) -> tuple[frozenset[str], str | None]:
    """Fingerprints of the `<hostkey>.pub` files of sshd -T's `hostkey` lines (world-readable
    beside each private key), empty when none could be read; and why, when `cat` itself failed."""
    paths = [p for p in config.get("hostkey", "").split(",") if _SAFE_PATH.match(p)][:MAX_HOST_KEY_FILES]
    if not paths:
        return frozenset(), None
    command = shlex.join(["cat", "--", *(f"{p}.pub" for p in paths)])
    try:
        _, stdout, _ = _run(transport, command, MAX_PACKAGE_BYTES, deadline)
    except ParamikoProbeError as exc:
        return frozenset(), f"the host key files sshd -T names could not be read: {exc}"
    keys = filter(None, map(_public_key_fingerprint, stdout.decode("ascii", "replace").splitlines()))
    return frozenset(keys), None


def _public_key_fingerprint(line: str) -> str | None:
    """`SHA256:<base64>` of an OpenSSH public key line (`type base64 [comment]`), as paramiko prints it."""
    fields = line.split()
    if len(fields) < 2:
        return None
    try:
        blob = base64.b64decode(fields[1], validate=True)
    except ValueError:
        return None
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def _run(
    transport: paramiko.Transport, command: str, limit: int, deadline: float
) -> tuple[int | None, bytes, bytes]:
    """Run one command in a new channel: its exit status (None if it never came), stdout, stderr."""
    return _collect(_start(transport, command, deadline), command, limit, deadline)


def _start(transport: paramiko.Transport, command: str, deadline: float) -> paramiko.Channel:
    """A channel running `command`; its output waits in paramiko's buffers until `_collect`, so
    commands started together run at the same time."""
    try:
        channel = transport.open_session(timeout=max(0.1, deadline - time.monotonic()))
    except Exception as exc:  # any type: see the module docstring
        # A server may log us in and still refuse every session (a jump host, a forced
        # command, MaxSessions 0): only what the command would read is lost.
        raise ParamikoProbeError(f"the server refused a session channel ({type(exc).__name__})") from None
    try:
        channel.settimeout(max(0.1, deadline - time.monotonic()))
        channel.exec_command(command)
    except Exception as exc:  # any type: see the module docstring
        channel.close()
        name = command.split(";")[0]
        raise ParamikoProbeError(f"`{name}` could not be run ({type(exc).__name__})") from None
    return channel


def _collect(
    channel: paramiko.Channel, command: str, limit: int, deadline: float
) -> tuple[int | None, bytes, bytes]:
    """What a `_start`ed command printed and its exit status; the channel is closed."""
    name = command.split(";")[0]
    try:
        channel.settimeout(max(0.1, deadline - time.monotonic()))
        stdout = _read_bounded(channel.makefile("rb"), limit, deadline)
        stderr = _read_bounded(channel.makefile_stderr("rb"), MAX_STDERR, deadline)
        # The exit status can arrive just after end of output: wait for it, within the budget.
        while not channel.exit_status_ready() and time.monotonic() < deadline:
            time.sleep(0.02)
        status = channel.recv_exit_status() if channel.exit_status_ready() else None
    except TimeoutError:
        raise ParamikoProbeError(f"`{name}` did not finish in time") from None
    except (paramiko.SSHException, OSError, EOFError) as exc:
        raise ParamikoProbeError(f"`{name}` could not be run ({type(exc).__name__})") from None
    finally:
        channel.close()
    return status, stdout, stderr


def parse_package_facts(text: str) -> PackageFacts | None:
    """The openssh-server version and os-release identity from `PACKAGE_COMMAND`'s output."""
    release: dict[str, str] = {}
    found: tuple[str, str] | None = None
    for line in text.splitlines():
        key, eq, value = line.partition("=")
        if eq and key in ("ID", "VERSION_ID"):
            release[key] = value.strip().strip('"')[:40]
        manager, _, version = line.partition(" ")
        if manager in ("dpkg", "rpm") and version.strip() and found is None:
            found = manager, version.strip()[:120]
    if found is None:
        return None
    return PackageFacts(found[0], found[1], release.get("ID", ""), release.get("VERSION_ID", ""))


def _sshd_command(sshd_path: str, config_path: str | None, sudo: bool, debug: bool = False) -> str:
    """`sshd -T` (with `debug`, `sshd -ddd -T`: it also logs each file it reads)."""
    for path in (sshd_path, config_path):
        if path is not None and not _SAFE_PATH.match(path):
            raise ParamikoProbeError(f"refusing unusual path {path[:80]!r} in the sshd command")
    words = [*(["sudo", "-n"] if sudo else []), sshd_path, *(["-ddd"] if debug else []), "-T"]
    if config_path is not None:
        words += ["-f", config_path]
    return shlex.join(words)


def _authenticate(transport: paramiko.Transport, credential: Credential, deadline: float) -> None:
    if credential.key_file is None and credential.password is None:
        raise ParamikoProbeError("the credential has neither a key file nor a password")
    try:
        if credential.key_file is not None:
            key = paramiko.PKey.from_path(credential.key_file)
            transport.auth_publickey(credential.user, key)
        elif credential.password is not None:
            transport.auth_password(credential.user, credential.password.get_secret_value())
    except Exception as exc:  # any type: see the module docstring; a bad key file is ValueError
        if time.monotonic() >= deadline - _MIN_WAIT:
            raise ParamikoProbeError(
                f"probe time budget exhausted during authentication as {credential.user!r}"
            ) from None
        # The exception text may quote a key path but never the secret; keep only its kind.
        raise ParamikoProbeError(
            f"authentication as {credential.user!r} failed ({type(exc).__name__})"
        ) from None
    if not transport.is_authenticated():
        raise ParamikoProbeError(f"authentication as {credential.user!r} needs further steps")


def _read_bounded(stream: paramiko.ChannelFile, limit: int, deadline: float) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        if time.monotonic() > deadline:
            raise TimeoutError
        chunk = stream.read(min(65536, limit - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def parse_sshd_t(text: str) -> dict[str, str]:
    """`sshd -T` prints `keyword value` lines; keywords that repeat are joined with commas."""
    settings: dict[str, list[str]] = {}
    for line in text.splitlines():
        keyword, _, value = line.strip().partition(" ")
        if not keyword or (len(settings) >= MAX_CONFIG_KEYS and keyword.lower() not in settings):
            continue
        settings.setdefault(keyword.lower(), []).append(value.strip()[:MAX_CONFIG_VALUE])
    return {key: ",".join(values)[:MAX_CONFIG_VALUE] for key, values in settings.items()}
