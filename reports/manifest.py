"""The integrity record of a report directory: `manifest.json`, optionally signed.

The manifest lists the SHA-256 of every file the bundle wrote; `verify_bundle` reports any file
that changed, went missing or was added since. With an Ed25519 key the manifest is signed
(`manifest.sig`, base64 of the signature over the manifest's exact bytes), so whoever holds
only the public key can tell that the manifest itself was not rewritten.
"""

import base64
import binascii
import hashlib
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal

from pydantic import Field, ValidationError

from attt.scanner.credentials import refuse_shared_file
from attt.scanner.errors import ConfigError
from attt.scanner.models.base import Frozen
from attt.scanner.models.report import Report

if TYPE_CHECKING:  # cryptography is imported where a key is read: an unsigned bundle never needs it
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

MANIFEST: Final = "manifest.json"
SIGNATURE: Final = "manifest.sig"
_CHUNK: Final = 1 << 20
TMP_SUFFIX: Final = ".attt-tmp"
"""Ends the name of a file being written; a bundle directory may hold one left by a killed write."""


class FileEntry(Frozen):
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)


class Manifest(Frozen):
    format: Literal["attt-report-manifest/1"] = "attt-report-manifest/1"
    run_id: str
    tool_version: str
    created: datetime
    """When the run finished (or started, if it never did): the bundle reads no clock."""
    files: dict[str, FileEntry]


@dataclass(frozen=True, slots=True)
class VerifyResult:
    problems: tuple[str, ...]
    """One line per problem: a changed, missing or added file, a bad manifest or signature."""

    @property
    def ok(self) -> bool:
        return not self.problems


def file_entry(path: Path) -> FileEntry:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return FileEntry(sha256=digest.hexdigest(), size=path.stat().st_size)


def write_manifest(
    report: Report,
    files: Mapping[Path, FileEntry | None],
    out_dir: Path,
    sign_key: "Ed25519PrivateKey | None" = None,
) -> list[Path]:
    """Write `manifest.json` over `files` (all inside `out_dir`; each with its entry when it is
    known from writing it, else None and read here), and `manifest.sig` when signing."""
    manifest = Manifest(
        run_id=report.run.id,
        tool_version=report.tool_version,
        created=report.run.finished or report.run.started,
        files={
            path.relative_to(out_dir).as_posix(): entry or file_entry(path)
            for path, entry in sorted(files.items())
        },
    )
    body = manifest.model_dump_json(indent=2).encode("utf-8") + b"\n"
    write_atomically(out_dir, MANIFEST, body)
    written = [out_dir / MANIFEST]
    if sign_key is not None:
        write_atomically(out_dir, SIGNATURE, base64.b64encode(sign_key.sign(body)) + b"\n")
        written.append(out_dir / SIGNATURE)
    return written


def write_atomically(out_dir: Path, name: str, body: bytes | Sequence[bytes]) -> FileEntry:
    """Write `out_dir/name` through a new temporary file renamed over it (`stage_file`, then
    `StagedFile.publish`)."""
    staged = stage_file(out_dir, name, body)
    staged.publish()
    return staged.entry


@dataclass(frozen=True)
class StagedFile:
    """A file written and synced in its directory under a temporary name, not yet in place."""

    temporary: Path
    target: Path
    entry: FileEntry
    """Digest and size of the bytes written."""

    def publish(self) -> None:
        """Rename it into place (rename replaces a symlink itself, not what it points to)."""
        try:
            self.temporary.replace(self.target)
        except BaseException:
            self.discard()
            raise

    def discard(self) -> None:
        self.temporary.unlink(missing_ok=True)


def stage_file(out_dir: Path, name: str, body: bytes | Sequence[bytes]) -> StagedFile:
    """Write what is to become `out_dir/name` to a new temporary file beside it (created
    exclusively, so never opened through a link), synced to disk.

    `body` may come in pieces (report.json: the findings as the scan serialised them, tens of
    MB for a province), joined a megabyte at a time (`_chunks`): joined whole, they were copied
    twice more in memory. The entry (digest and size) is of the bytes written, so the manifest
    needs no re-read."""
    digest = hashlib.sha256()
    size = 0
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=f".{name}.", suffix=TMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb", buffering=_CHUNK) as stream:
            for chunk in (body,) if isinstance(body, bytes) else _chunks(body):
                stream.write(chunk)
                digest.update(chunk)
                size += len(chunk)
            stream.flush()
            os.fsync(stream.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return StagedFile(Path(tmp), out_dir / name, FileEntry(sha256=digest.hexdigest(), size=size))


def _chunks(pieces: Iterable[bytes]) -> Iterator[bytes]:
    """The pieces joined into runs of about `_CHUNK` bytes. Written and hashed one small piece at a
    time, a province's report.json (some 66,000 pieces) held the interpreter's lock throughout;
    a megabyte at a time, hashing and writing let it go, and the store closing the run on another
    thread meanwhile (`attt scan`) goes on."""
    run: list[bytes] = []
    held = 0
    for piece in pieces:
        run.append(piece)
        held += len(piece)
        if held >= _CHUNK:
            yield b"".join(run)
            run, held = [], 0
    if run:
        yield b"".join(run)


def verify_bundle(out_dir: Path, public_key: Path | None = None) -> VerifyResult:
    """Compare `out_dir` with its manifest, and the manifest with its signature if a key is given."""
    key = None if public_key is None else _public_key(public_key)
    manifest_path = out_dir / MANIFEST
    if not manifest_path.is_file():
        return VerifyResult((f"missing: {MANIFEST}",))
    body = manifest_path.read_bytes()
    try:
        manifest = Manifest.model_validate_json(body)
    except ValidationError as exc:
        return VerifyResult((f"invalid: {MANIFEST}: {exc.errors()[0]['msg']}",))
    problems: list[str] = []
    if key is not None:
        problems.extend(_signature_problems(out_dir / SIGNATURE, body, key))
    # Everything but directories: a named pipe or a device is a file added too.
    present = {
        p.relative_to(out_dir).as_posix(): p
        for p in sorted(out_dir.rglob("*"))
        if p.is_symlink() or not p.is_dir()
    }
    for name, expected in sorted(manifest.files.items()):
        path = present.get(name)
        if not _is_plain_name(name) or name in (MANIFEST, SIGNATURE):
            problems.append(f"invalid: {MANIFEST}: lists a path it may not: {name!r}")
        elif path is None:
            problems.append(f"missing: {name}")
        elif path.is_symlink() or not path.is_file() or file_entry(path) != expected:
            problems.append(f"changed: {name}")
    unlisted = present.keys() - manifest.files.keys() - {MANIFEST, SIGNATURE}
    problems.extend(f"added: {name}" for name in sorted(unlisted))
    return VerifyResult(tuple(problems))


def _is_plain_name(name: str) -> bool:
    """A relative path that stays inside the directory: a tampered manifest may not point outside."""
    parts = name.split("/")
    return bool(name) and not name.startswith("/") and all(p not in ("", ".", "..") for p in parts)


def _signature_problems(path: Path, body: bytes, key: "Ed25519PublicKey") -> list[str]:
    from cryptography.exceptions import InvalidSignature

    if not path.is_file():
        return [f"missing: {SIGNATURE} (a public key was given, so the manifest must be signed)"]
    try:
        key.verify(base64.b64decode(path.read_bytes().strip(), validate=True), body)
    except (InvalidSignature, binascii.Error, ValueError):
        return [f"bad signature: {SIGNATURE} does not match {MANIFEST} and the public key"]
    return []


def _read_key(path: Path, kind: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the {kind} key: {exc.strerror}") from None


def load_signing_key(path: Path) -> "Ed25519PrivateKey":
    """An unencrypted Ed25519 private key from a PEM (PKCS#8) or OpenSSH file that only its
    owner may read (refused otherwise, as credentials are)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_ssh_private_key

    data = _read_key(path, "signing")
    refuse_shared_file(path, "the signing key")
    try:
        key = (
            load_ssh_private_key(data, None)
            if b"OPENSSH PRIVATE KEY" in data
            else load_pem_private_key(data, None)
        )
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{path}: not an unencrypted PEM or OpenSSH private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{path}: the signing key must be Ed25519, not {type(key).__name__}")
    return key


def _public_key(path: Path) -> "Ed25519PublicKey":
    """An Ed25519 public key from a PEM (SubjectPublicKeyInfo) or OpenSSH `ssh-ed25519` file."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key, load_ssh_public_key

    data = _read_key(path, "public")
    try:
        key = load_ssh_public_key(data) if data.startswith(b"ssh-") else load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{path}: not a PEM or OpenSSH public key: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError(f"{path}: the public key must be Ed25519, not {type(key).__name__}")
    return key
