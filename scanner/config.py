"""`attt.toml`: the defaults that keep a scheduled command line short.

Found at `--config`, else `$ATTT_CONFIG`, else `attt.toml` in the user's configuration
directory (platformdirs: `$XDG_CONFIG_HOME/attt/attt.toml`, usually `~/.config/attt/attt.toml`).
An option given on the command line always wins over the file. Relative paths in the file are
read from the file's directory. Secrets never live in it: a mail password or webhook token is
named by the environment variable that holds it, or by a file only its owner may read.

```toml
inventory = "inventory.yaml"
db = "/var/lib/attt/attt.db"
report_dir = "/var/lib/attt/reports"      # each run writes into report_dir/RUN-ID
formats = ["html", "json"]
lang = "vi"
policies = ["hatinh.yaml"]
policy_mode = "overlay"
waivers = ["waivers.yaml"]
fail_on = "high"
per_owner = true
vantage = "dmz"                   # the inventory zone this machine sits in (attt scan --vantage)

engine = "celery"                          # or "local" (the default): see docs/distributed.md

[scan]
processes = 2       # worker processes for TLS and SSH probes (default: one per core, when it pays)

[broker]
url = "redis://broker.hatinh.gov.vn:6379/0"
password_env = "ATTT_BROKER_PASSWORD"

[worker]                                   # read by `attt worker` on the worker's own machine
zone = "dmz"
scope = ["10.213.1.0/24"]

[notify]
retries = 3
backoff_seconds = 30

[notify.email]
host = "mail.hatinh.gov.vn"
port = 587
security = "starttls"        # or "tls" (implicit, port 465)
username = "attt@hatinh.gov.vn"
password_env = "ATTT_SMTP_PASSWORD"
sender = "attt@hatinh.gov.vn"

[notify.webhook]
url = "https://soc.hatinh.gov.vn/hooks/attt"
token_env = "ATTT_WEBHOOK_TOKEN"
```
"""

import os
import stat
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator

from attt.scanner.errors import ConfigError
from attt.scanner.models.base import Frozen

ENV_VAR = "ATTT_CONFIG"
FILENAME = "attt.toml"
MAX_BYTES = 1 << 20
"""A configuration is a few dozen lines; a bigger file is not one."""
MAX_SECRET_BYTES = 64 << 10
"""A password or token file; more is not a secret but a mistake (a key pasted whole, a log)."""
_ENV_NAME = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")]
_SECRET_KEYS = frozenset({"password", "token", "secret", "api_key"})


class EmailSettings(Frozen):
    host: str = Field(min_length=1, max_length=253)
    port: int = Field(default=587, ge=1, le=65535)
    security: Literal["starttls", "tls"] = "starttls"
    """STARTTLS on the submission port, or implicit TLS (usually 465); never plain text."""
    username: str | None = None
    password_env: _ENV_NAME | None = None
    password_file: Path | None = None
    sender: str = Field(min_length=3, max_length=254)
    ca_file: Path | None = None
    """Trust anchors for the mail server's certificate; default: the system's."""
    timeout: float = Field(default=30, gt=0, le=600)

    @field_validator("sender")
    @classmethod
    def _one_line(cls, sender: str) -> str:
        # It becomes the From header: a line break would end the header there, and the mail
        # library refuses it only when the first message is being written, after the scan.
        if any(ord(c) < 0x20 or ord(c) == 0x7F for c in sender):
            raise ValueError("the sender must be one line of printable text, e.g. attt@hatinh.gov.vn")
        return sender


class WebhookSettings(Frozen):
    url: str = Field(pattern=r"^https?://[^\s]+$", max_length=2000)
    token_env: _ENV_NAME | None = None
    token_file: Path | None = None
    ca_file: Path | None = None
    timeout: float = Field(default=30, gt=0, le=600)

    @field_validator("url")
    @classmethod
    def _no_password(cls, url: str) -> str:
        # The URL is the recipient every run prints and `attt history` shows.
        if urlsplit(url).password is not None:
            raise ValueError(
                "secrets never live in the configuration: the URL holds a password;"
                " name the receiver's token by token_env or token_file"
            )
        return url


class NotifySettings(Frozen):
    email: EmailSettings | None = None
    webhook: WebhookSettings | None = None
    retries: int = Field(default=3, ge=1, le=10)
    """Attempts per message."""
    backoff_seconds: float = Field(default=30, ge=0, le=3600)
    """Wait before the second attempt; doubled before each further one."""
    everything: bool = False
    """Send every open failure, not only what changed since the baseline run."""


class BrokerSettings(Frozen):
    """`[broker]`: where the celery engine's coordinator and workers meet (docs/distributed.md)."""

    url: str | None = Field(default=None, max_length=2000)
    """redis://, rediss:// (TLS), redis+socket:///PATH, amqp:// or amqps://; $ATTT_BROKER and
    `--broker` win over it. Its password, if any, is better named by `password_env`."""
    password_env: _ENV_NAME | None = None
    password_file: Path | None = None
    ca_file: Path | None = None
    """Trust anchors for a rediss:// or amqps:// broker's certificate; default: the system's."""
    cert_file: Path | None = None
    key_file: Path | None = None
    """A client certificate and key, for a broker that asks for one."""
    result_backend: str | None = Field(default=None, max_length=2000)
    """Where workers leave what they saw: a Redis URL. Default: the broker when it is Redis;
    required with an amqp:// broker."""


class ScanSettings(Frozen):
    """`[scan]`: how the local engine uses this machine."""

    processes: int | None = Field(default=None, ge=1, le=64)
    """Worker processes for CPU-heavy probes (`attt scan --processes`)."""


class WorkerSettings(Frozen):
    """`[worker]`: the worker's own scope, read from its own machine, never from a message."""

    zone: str | None = None
    scope: tuple[str, ...] = ()
    """The addresses this worker may probe (CIDRs); a task for any other address is refused."""
    credentials: Path | None = None
    """Logins for authenticated probes, kept on the worker (never sent through the broker)."""
    concurrency: int | None = Field(default=None, ge=1, le=256)
    max_timeout: float | None = Field(default=None, ge=1, le=3600)


class Config(Frozen):
    inventory: Path | None = None
    db: str | None = None
    report_dir: Path | None = None
    formats: tuple[str, ...] | None = None
    lang: Literal["vi", "en"] | None = None
    policies: tuple[str, ...] = ()
    policy_mode: Literal["overlay", "force"] | None = None
    waivers: tuple[Path, ...] = ()
    fail_on: Literal["info", "low", "medium", "high", "critical", "none"] | None = None
    per_owner: bool | None = None
    sign_key: Path | None = None
    credentials: Path | None = None
    vantage: str | None = None
    notify: NotifySettings | None = None
    engine: Literal["local", "celery"] | None = None
    scan: ScanSettings | None = None
    broker: BrokerSettings | None = None
    worker: WorkerSettings | None = None

    def scan_defaults(self) -> dict[str, Any]:
        """Click's `default_map` entries of the scan and report commands."""
        given: dict[str, Any] = {
            "inventory": self.inventory,
            "db": self.db,
            "formats": ",".join(self.formats) if self.formats else None,
            "lang": self.lang,
            "policies": list(self.policies) or None,
            "policy_mode": self.policy_mode,
            "waivers": [str(w) for w in self.waivers] or None,
            "fail_on": self.fail_on,
            "per_owner": self.per_owner,
            "sign_key": self.sign_key,
            "credentials": self.credentials,
            "vantage": self.vantage,
            "engine": self.engine,
            "processes": self.scan.processes if self.scan else None,
            "broker": self.broker.url if self.broker else None,
        }
        return {k: v for k, v in given.items() if v is not None}

    def worker_defaults(self) -> dict[str, Any]:
        """Click's `default_map` entries of `attt worker`."""
        worker = self.worker or WorkerSettings()
        given: dict[str, Any] = {
            "zone": worker.zone,
            "networks": list(worker.scope) or None,
            "credentials": worker.credentials,
            "concurrency": worker.concurrency,
            "max_timeout": worker.max_timeout,
            "broker": self.broker.url if self.broker else None,
        }
        return {k: v for k, v in given.items() if v is not None}


def config_path(given: Path | None) -> Path | None:
    """The file to read: `--config`, `$ATTT_CONFIG`, then the user's config directory if it has one."""
    if given is not None:
        return given
    if env := os.environ.get(ENV_VAR):
        return Path(env)
    from platformdirs import user_config_path

    default = user_config_path("attt") / FILENAME
    return default if default.is_file() else None


def load_config(path: Path) -> Config:
    try:
        # Only a regular file: a FIFO would block a nightly job for ever, /dev/zero fill memory.
        if path.exists() and not path.is_file():
            raise ConfigError(f"{path}: not a regular file")
        with path.open("rb") as stream:
            raw = stream.read(MAX_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the configuration: {exc.strerror or exc}") from None
    if len(raw) > MAX_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_BYTES >> 20} MiB; not a configuration")
    try:
        data = tomllib.loads(raw.decode("utf-8"))
        secret = _secret_key(data)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except RecursionError:  # both descend once per nested array, table or dotted key
        raise ConfigError(f"{path}: not valid TOML: nested too deeply") from None
    if secret:
        raise ConfigError(
            f"{path}: {secret}: secrets never live in the configuration; name an environment"
            " variable (password_env, token_env) or an owner-only file (password_file, token_file)"
        )
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{path}: {where}: {first['msg']}") from None
    return _relative_to(config, path.resolve().parent)


def _secret_key(data: dict[str, Any], prefix: str = "") -> str | None:
    for key, value in data.items():
        if key in _SECRET_KEYS:
            return prefix + key
        if isinstance(value, dict) and (found := _secret_key(value, f"{prefix}{key}.")):
            return found
    return None


def _relative_to(config: Config, base: Path) -> Config:
    def fix(p: Path | None) -> Path | None:
        return None if p is None or p.is_absolute() else base / p

    def ref(r: str) -> str:
        # A policy reference is a bundled id unless it looks like a path.
        return str(base / r) if (r.endswith((".yaml", ".yml")) or "/" in r) and not r.startswith("/") else r

    update: dict[str, Any] = {
        name: fixed for name in ("inventory", "report_dir", "sign_key", "credentials")
        if (fixed := fix(getattr(config, name))) is not None
    }  # fmt: skip
    if config.worker is not None and (fixed := fix(config.worker.credentials)) is not None:
        update["worker"] = config.worker.model_copy(update={"credentials": fixed})
    if config.broker is not None:
        files = ("password_file", "ca_file", "cert_file", "key_file")
        paths = {name: fixed for name in files if (fixed := fix(getattr(config.broker, name))) is not None}
        update["broker"] = config.broker.model_copy(update=paths)
    update["waivers"] = tuple(w if w.is_absolute() else base / w for w in config.waivers)
    update["policies"] = tuple(ref(r) for r in config.policies)
    if config.db is not None and "://" not in config.db and not Path(config.db).is_absolute():
        update["db"] = str(base / config.db)
    return config.model_copy(update=update)


def read_secret(env: str | None, file: Path | None, what: str) -> str | None:
    """A secret from the environment variable or the owner-only file named; None if neither is."""
    if env is not None:
        value = os.environ.get(env)
        if not value:
            raise ConfigError(f"{what}: environment variable {env} is not set")
        return value
    if file is None:
        return None
    try:
        mode = file.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(
                f"{file}: {what} file is accessible to group or others"
                f" (mode {stat.S_IMODE(mode):04o}); run `chmod 600 {file}`"
            )
        if not stat.S_ISREG(mode):
            raise ConfigError(f"{file}: the {what} file is not a regular file")
        with file.open("rb") as stream:
            raw = stream.read(MAX_SECRET_BYTES + 1)
        if len(raw) > MAX_SECRET_BYTES:
            raise ConfigError(f"{file}: the {what} file is larger than {MAX_SECRET_BYTES >> 10} KiB")
        return raw.decode("utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read the {what} file: {exc.strerror or exc}") from None
    except UnicodeDecodeError:  # its bytes are the secret: never shown
        raise ConfigError(f"{file}: the {what} file is not UTF-8 text") from None
