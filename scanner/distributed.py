"""The celery engine: probes run on workers placed in the zones, one coordinator plans and judges.

The coordinator (`attt scan --engine celery`) plans exactly as the local engine does (the same
`Runner`: per host, checks in dependency order, the host's earlier observations sent along) and
hands each probe to `Coordinator`, which sends it as one task to its zone's queue
(`attt.zone.<zone>`) and waits for what the zone's worker saw. Storing, evaluating and reporting
stay with the coordinator. A worker (`attt worker --zone Z`) consumes its zone's queue only and
runs the probe with the same check plugins and the same bounded, timed-out probe code
(`runner.probe_target`).

Safety. Messages are JSON only (no pickle: a message must never run code). A worker judges each
task against its own scope, read from its own machine (`--scope`, `[worker] scope`): a
task for another zone or for an address outside its scope is refused and answered with an
`error` observation, so a compromised broker cannot turn workers into scanners of arbitrary
hosts. Credentials for authenticated probes are read by the worker from its own file; a task
never carries one.

Delivery. A task is acknowledged late (when its probe ended) and rejected back to the queue
when its worker dies; with Redis, a task held by a killed worker becomes visible again after
the visibility timeout (tied to the probe budget) and runs on another worker of the zone. A task
id is its probe key, `<run>:<check>[@vantage]:<system>:<host>`: a redelivered or re-sent task
writes the same result, and the coordinator stores one answer per probe key.
"""

import hashlib
import ipaddress
import logging
import os
import queue
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

from celery import Celery
from celery.backends.redis import RedisBackend
from celery.exceptions import Reject
from celery.signals import worker_shutting_down
from kombu.exceptions import KombuError
from pydantic import BaseModel, Field, SecretStr, ValidationError, model_validator
from redis.exceptions import RedisError

from attt.scanner.config import BrokerSettings, read_secret
from attt.scanner.errors import ConfigError
from attt.scanner.models.base import Frozen
from attt.scanner.models.observation import DATA_MODELS, Observation, ProbeKey, probe_check, split_probe_check
from attt.scanner.models.target import Target
from attt.scanner.plugin import Batched, Check, Credential, ProbeContext
from attt.scanner.registry import Registry
from attt.scanner.runner import (
    GRACE,
    Chunk,
    ProbeJob,
    Split,
    own_observation,
    probe_target,
    run_batch,
    split_batch,
)

QUEUE_PREFIX = "attt.zone."
TASK_NAME = "attt.probe"
BATCH_TASK_NAME = "attt.probe_batch"
PASSWORD_ENV = "ATTT_BROKER_PASSWORD"  # noqa: S105 (the name of a variable, not a secret)
"""Holds the broker's password when the URL has none (and no `[broker] password_env` names one)."""
SCHEMES = ("redis", "rediss", "redis+socket", "amqp", "amqps")
RESTORE_SECONDS = 2
"""How often a worker looks for tasks whose worker died (Redis): with the visibility timeout,
it bounds how long such a task waits before it runs elsewhere."""
LIVENESS_SECONDS = 2.0
"""How often the coordinator asks which zones have a live worker."""
INSPECT_SECONDS = 1.0
"""How long it waits for the workers' answers to that question."""
DEAD_AFTER = 10.0
"""A zone unseen for this long has lost its last worker: a busy worker may miss an answer or
two, and a worker restarted by systemd is back within it."""
_POLL_SECONDS = 0.05
_BROKER_SECONDS = 5.0
"""Connecting to, or waiting on, the broker: a broker gone quiet ends the run, it is not waited on."""
_START_ATTEMPTS = 3
_BACKEND = "attt.scanner.distributed:PolledRedisBackend"

log = logging.getLogger("attt.worker")
_T = TypeVar("_T", bound=BaseModel)


def queue_for(zone: str) -> str:
    return f"{QUEUE_PREFIX}{zone}"


def task_id(run: str, check: str, vantage: str | None, system: str, host: str) -> str:
    """The task of one probe: re-sent or redelivered, it is still the same task."""
    return f"{run}:{probe_check(check, vantage)}:{system}:{host}"


def visibility_timeout(timeout: float) -> float:
    """Seconds before a task taken by a worker that then died is handed to another: the probe's
    budget and grace, twice, so a probe that is merely slow is not run twice."""
    return 2 * (timeout + GRACE)


class BrokerLost(Exception):
    """The broker (or the result store on it) stopped answering."""


@dataclass(frozen=True, repr=False)
class Broker:
    """A broker's address and secrets, resolved; its repr and `shown` never hold the password."""

    url: str
    password: SecretStr | None = None
    results: str = ""
    """The Redis URL workers leave what they saw at."""
    tls: Mapping[str, Any] = field(default_factory=dict)

    @property
    def shown(self) -> str:
        return redacted(self.url)

    def __repr__(self) -> str:
        return f"Broker({self.shown})"


def redacted(url: str) -> str:
    """The URL with any password replaced by `***`, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = parts.username or ""
    return url.replace(netloc[0], f"{user}:***", 1)


def resolve_broker(url: str | None, settings: BrokerSettings | None) -> Broker:
    """The broker named on the command line, by $ATTT_BROKER or in attt.toml; ConfigError (exit 2)
    for a missing or unusable one."""
    settings = settings or BrokerSettings()
    url = url or settings.url
    if not url:
        raise ConfigError("--engine celery needs a broker: --broker URL, $ATTT_BROKER or [broker] url")
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme not in SCHEMES:
        raise ConfigError(f"broker {redacted(url)!r}: the scheme must be one of {', '.join(SCHEMES)}")
    password = _password(url, settings)
    tls = _tls(scheme, settings)
    results = settings.result_backend or (url if scheme.startswith("redis") else None)
    if results is None:
        raise ConfigError(f"broker {redacted(url)!r}: give [broker] result_backend, a Redis URL")
    return Broker(url, SecretStr(password) if password else None, results, tls)


def _password(url: str, settings: BrokerSettings) -> str | None:
    """The URL's own password, else the one `[broker]` names, else $ATTT_BROKER_PASSWORD's."""
    if given := urlsplit(url).password:
        return given
    if settings.password_env is not None or settings.password_file is not None:
        return read_secret(settings.password_env, settings.password_file, "broker password")
    return os.environ.get(PASSWORD_ENV) or None


def _tls(scheme: str, settings: BrokerSettings) -> dict[str, Any]:
    if scheme not in ("rediss", "amqps"):
        return {}
    files = {
        "ssl_ca_certs": settings.ca_file,
        "ssl_certfile": settings.cert_file,
        "ssl_keyfile": settings.key_file,
    }
    options: dict[str, Any] = {k: str(v) for k, v in files.items() if v is not None}
    options["ssl_cert_reqs"] = ssl.CERT_REQUIRED  # a broker's certificate is always checked
    return options


def _with_password(url: str, password: str | None) -> str:
    """The URL with the password in it, the one place kombu reads it from for every transport
    (a unix socket's included); only the Celery app ever sees this form."""
    scheme, sep, rest = url.partition("://")
    if password is None or not sep or urlsplit(url).password is not None:
        return url
    user, at, place = rest.rpartition("@")
    return f"{scheme}://{user if at else ''}:{quote(password, safe='')}@{place}"


def _backend_url(results: str) -> str:
    """Celery's own spelling of a Redis result store: `socket:///PATH` for a unix socket."""
    if results.startswith("redis+socket://"):
        return "socket://" + results.removeprefix("redis+socket://")
    return results


def celery_app(broker: Broker, visibility: float) -> Celery:
    """The Celery application both sides use: JSON only, late acknowledgement, one task at a time."""
    password = broker.password.get_secret_value() if broker.password else None
    app = Celery(
        "attt",
        broker=_with_password(broker.url, password),
        backend=f"{_BACKEND}+{_backend_url(_with_password(broker.results, password))}",
        set_as_current=False,
    )
    transport: dict[str, Any] = {
        "visibility_timeout": visibility,
        "unacked_restore_interval": RESTORE_SECONDS,
        "unacked_restore_throttle": 1,
        "socket_timeout": _BROKER_SECONDS,
        "socket_connect_timeout": _BROKER_SECONDS,
    }
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_transport_options=transport,
        broker_connection_timeout=_BROKER_SECONDS,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=3,
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.5},
        redis_socket_timeout=_BROKER_SECONDS,
        redis_socket_connect_timeout=_BROKER_SECONDS,
        redis_retry_on_timeout=False,
        result_expires=7 * 86400,
        result_extended=False,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        task_send_sent_event=False,
    )
    if broker.tls:
        amqp = broker.url.startswith("amqp")
        app.conf.broker_use_ssl = _amqp_tls(broker.tls) if amqp else dict(broker.tls)
    if broker.results.startswith("rediss://"):
        app.conf.redis_backend_use_ssl = dict(broker.tls) or {"ssl_cert_reqs": ssl.CERT_REQUIRED}
    return app


def _amqp_tls(options: Mapping[str, Any]) -> dict[str, Any]:
    names = {
        "ssl_ca_certs": "ca_certs",
        "ssl_certfile": "certfile",
        "ssl_keyfile": "keyfile",
        "ssl_cert_reqs": "cert_reqs",
    }
    return {names[k]: v for k, v in options.items()}


class PolledRedisBackend(RedisBackend):  # type: ignore[misc]
    """The Redis result store, read by polling many tasks at once (one MGET a tick, from one
    thread): the stock one subscribes to every task sent, and nobody would read those messages."""

    def on_task_call(self, producer: object, task_id: str) -> None:
        """Nothing to subscribe to: the coordinator polls."""


class ProbeTask(ProbeJob):
    """One probe as it travels to a zone's worker: the job, and the run and zone it is of."""

    run: str
    zone: str
    """The zone whose queue carries the task: the worker serving it must be of that zone."""
    vantage: str | None = None
    """An outside vantage (the zone itself, e.g. `internet`); None: probed from inside its zone."""

    @property
    def key(self) -> str:
        return task_id(self.run, self.check, self.vantage, self.target.system.id, self.target.address)


def probe_task(
    run: str, check: str, target: Target, ctx: ProbeContext[Any], vantage: str | None
) -> ProbeTask:
    zone = vantage or target.zone
    if zone is None:
        raise ConfigError(f"host {target.address} is in no zone: the celery engine sends probes to zones")
    return ProbeTask.of(check, target, ctx, run=run, zone=zone, vantage=vantage)


class BatchTask(Frozen):
    """A batched check's probes of many hosts of one zone (one nmap run for them all): the hosts
    share the process a batch starts, so they travel, and are redelivered, together."""

    tasks: tuple[ProbeTask, ...] = Field(min_length=1, max_length=1024)

    @model_validator(mode="after")
    def _one_batch(self) -> "BatchTask":
        first = self.tasks[0]
        if any(
            (t.run, t.check, t.zone, t.vantage) != (first.run, first.check, first.zone, None)
            for t in self.tasks
        ):
            raise ValueError("a batch is one run's check in one zone, from inside it")
        return self

    @property
    def key(self) -> str:
        """`<run>:<check>:batch:<hash of its probe keys>`: the same hosts, the same task."""
        first = self.tasks[0]
        probes = "\n".join(sorted(t.key for t in self.tasks)).encode()
        return f"{first.run}:{first.check}:batch:{hashlib.sha256(probes).hexdigest()[:16]}"


# -- the worker ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkerScope:
    """What a worker may do, from its own configuration only."""

    zone: str
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    registry: Registry
    credentials: Callable[[Target], Credential | None] = lambda _target: None
    max_timeout: float = 120.0
    """The largest probe budget it grants; a task asking for more gets this."""

    def refusal(self, task: ProbeTask) -> str | None:
        """Why this worker will not probe the task's target, or None when it may."""
        if task.zone != self.zone:
            return f"refused by worker {self.zone}: the task is for zone {task.zone}"
        ip = ipaddress.ip_address(task.target.ip)
        if not any(ip in network for network in self.networks):
            return f"refused by worker {self.zone}: {ip} is outside its scope"
        if task.check not in self.registry.checks:
            return f"refused by worker {self.zone}: check {task.check} is not installed there"
        return None

    def job(self, task: ProbeTask) -> ProbeContext[Any] | Observation:
        """The probe's context, built here (with this worker's own credential), or an `error`
        observation saying why the task is refused."""
        refused = self.refusal(task)
        if refused is not None:
            log.warning("%s (task %s)", refused, task.key)
            return Observation.failed(task.check, task.target, refused)
        try:
            return task.context(self.registry, self.credentials(task.target), self.max_timeout)
        except (ValidationError, ValueError) as exc:
            reason = f"the task's settings or rules do not fit check {task.check} here: {exc}"
            return Observation.failed(task.check, task.target, reason)


def parse_networks(values: Iterable[str]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value, strict=False))
        except ValueError:
            raise ConfigError(f"--scope {value!r}: not a network (CIDR)") from None
    return tuple(networks)


def _task(model: type[_T], scope: WorkerScope, payload: Any) -> _T:
    try:
        return model.model_validate(payload, context={DATA_MODELS: scope.registry.data_models})
    except ValidationError as exc:
        log.warning("refused a malformed task: %s", exc.errors()[0]["msg"])
        raise ValueError(f"refused by worker {scope.zone}: malformed task") from None


def run_task(scope: WorkerScope, payload: Any, stop: threading.Event) -> list[dict[str, Any]]:
    """A worker's answer to one task: what the probe saw (JSON), each observation marked with
    the worker's zone as its vantage, or an `error` observation saying why it was refused."""
    task = _task(ProbeTask, scope, payload)
    job = scope.job(task)
    if isinstance(job, Observation):
        return [_answer(job, scope.zone)]
    seen = probe_target(scope.registry.check(task.check), task.target, job, stop)
    return [_answer(o, scope.zone) for o in _kept(seen, stop, scope.zone)]


def run_batch_task(scope: WorkerScope, payload: Any, stop: threading.Event) -> list[dict[str, Any]]:
    """A worker's answer to a batch: every host's observations, refused hosts' included."""
    batch = _task(BatchTask, scope, payload)
    answers: list[Observation] = []
    chunk: list[tuple[Target, ProbeContext[Any]]] = []
    for task in batch.tasks:
        job = scope.job(task)
        if isinstance(job, Observation):
            answers.append(job)
        else:
            chunk.append((task.target, job))
    name = batch.tasks[0].check
    check = scope.registry.check(name) if chunk else None
    if check is not None and not isinstance(check, Batched):
        answers += [
            Observation.failed(name, t, f"check {name} probes no batch on worker {scope.zone}")
            for t, _ in chunk
        ]
    elif check is not None:
        split = run_batch(check, name, chunk, stop)
        answers += _kept(
            None if split is None else [o for seen in split.values() for o in seen], stop, scope.zone
        )
    return [_answer(o, scope.zone) for o in answers]


def _kept(seen: list[Observation] | None, stop: threading.Event, zone: str) -> list[Observation]:
    """What a probe saw, unless the worker is shutting down: then its probe was cut short (the
    signal that stops a worker also stops its nmap), which is no fact about the target, and the
    task goes back to the queue for another worker of the zone."""
    if seen is None or (any(o.status == "error" for o in seen) and _stopping(stop)):
        raise Reject(f"worker {zone} is shutting down", requeue=True)
    return seen


# The signal that stops a worker reaches its process group at once: nmap may die of it and its
# probe end in `error` before the main thread has run the worker's handler and set `stop`. An
# error answer therefore waits this long for a shutdown before it is believed (seen in CI: a
# batch of 16 hosts stored as "nmap failed: exit status -15").
SHUTDOWN_NOTICE = 1.0


def _stopping(stop: threading.Event) -> bool:
    return stop.wait(SHUTDOWN_NOTICE)


def _answer(obs: Observation, zone: str) -> dict[str, Any]:
    return obs.model_copy(update={"zone": zone}).model_dump(mode="json")


def serve(scope: WorkerScope, broker: Broker, concurrency: int, hostname: str) -> int:
    """Consume the zone's queue until the worker is told to stop (SIGTERM: warm shutdown);
    return its exit code. A broker that does not answer at the start is a ConfigError."""
    app = celery_app(broker, visibility_timeout(scope.max_timeout))
    try:
        with app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=2, interval_start=0.5, interval_step=0.5)
    except (KombuError, RedisError, OSError) as exc:
        raise ConfigError(f"broker {broker.shown} does not answer: {_reason(exc)}") from None
    # Once serving, a worker waits out a broker restart instead of exiting (systemd would
    # restart it anyway, but each restart drops the probes under way).
    app.conf.broker_connection_max_retries = None
    stop = threading.Event()
    worker_shutting_down.connect(lambda **_: stop.set(), weak=False)

    @app.task(name=TASK_NAME)  # type: ignore[untyped-decorator]
    def probe(payload: Any) -> list[dict[str, Any]]:
        return run_task(scope, payload, stop)

    @app.task(name=BATCH_TASK_NAME)  # type: ignore[untyped-decorator]
    def probe_batch(payload: Any) -> list[dict[str, Any]]:
        return run_batch_task(scope, payload, stop)

    worker = app.Worker(
        hostname=hostname,
        queues=[queue_for(scope.zone)],
        concurrency=concurrency,
        pool="threads",
        quiet=True,
        without_mingle=True,
        without_gossip=True,
        loglevel="WARNING",
    )
    try:
        worker.start()
    finally:
        stop.set()
    return int(worker.exitcode or 0)


# -- the coordinator ----------------------------------------------------------------------------


Answer = list[Observation] | str | None
"""What a zone's worker saw; or why there is nothing (an error for each target); or None when
the run stopped first."""


@dataclass
class _Pending:
    key: str
    zone: str
    task: str
    """The Celery task's name: one probe, or a batch."""
    payload: dict[str, Any]
    check: str
    vantage: str | None
    answer: "Future[Answer]" = field(default_factory=Future)


class Coordinator:
    """Sends each probe to its zone's queue and hands back what the zone's worker saw.

    One thread talks to Celery (sending, and polling the result store in batches); another asks
    which zones have a live worker. A zone without one gets `error` observations, "no worker for
    zone X", at once or as soon as its last worker is gone; a zone whose workers stop answering
    for longer than a probe could take, redelivery included, gets them too. A broker that stops
    answering ends the run: `lost` says why, `stop` is set, and what was stored is kept."""

    def __init__(
        self,
        broker: Broker,
        run: str,
        data_models: Mapping[str, type[BaseModel]],
        stop: threading.Event,
        timeout: float,
        redo: Iterable[ProbeKey] = (),
    ) -> None:
        self._app = celery_app(broker, visibility_timeout(timeout))
        self._broker = broker
        self._run = run
        self._models = dict(data_models)
        self.stop = stop
        self._redo = {task_id(run, *split_probe_check(check), system, host) for check, system, host in redo}
        self._stall = visibility_timeout(timeout) + RESTORE_SECONDS + timeout + GRACE + DEAD_AFTER
        self._incoming: queue.Queue[_Pending] = queue.Queue()
        self._pending: dict[str, _Pending] = {}
        self._seen: dict[str, float] = {}
        """Zone -> when a worker of it last answered the liveness question."""
        self._progress: dict[str, float] = {}
        """Zone -> when it last answered a task (or was first given one)."""
        self._closed = threading.Event()
        self._threads: list[threading.Thread] = []
        self.lost: str | None = None

    def __enter__(self) -> "Coordinator":
        for attempt in range(_START_ATTEMPTS):
            try:
                self._check_liveness()
                break
            except BrokerLost as exc:
                # A connection kept from before a broker restart fails once, then is made anew.
                if attempt == _START_ATTEMPTS - 1:
                    raise ConfigError(f"broker {self._broker.shown} does not answer: {exc}") from None
                time.sleep(0.5)
        for name, loop in (("attt-dispatch", self._dispatch), ("attt-liveness", self._liveness)):
            thread = threading.Thread(target=loop, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self._closed.set()
        # The dispatcher answers every question still open; the liveness thread holds nothing
        # (a daemon, it ends with its current question).
        self._threads[0].join(INSPECT_SECONDS + _BROKER_SECONDS)

    @property
    def live_zones(self) -> frozenset[str]:
        now = time.monotonic()
        return frozenset(zone for zone, seen in self._seen.items() if now - seen < DEAD_AFTER)

    def probe(
        self, check: Check, target: Target, ctx: ProbeContext[Any], vantage: str | None
    ) -> list[Observation] | None:
        """What the zone's worker saw; None when the run stopped first (the probe is left for
        `--resume`)."""
        task = probe_task(self._run, check.name, target, ctx, vantage)
        pending = _Pending(task.key, task.zone, TASK_NAME, task.model_dump(mode="json"), check.name, vantage)
        answer = self._ask(pending)
        if answer is None:
            return None
        if isinstance(answer, str):
            return [self._failed(pending, target, answer)]
        # A worker answers for its own probe only.
        return [own_observation(o, check.name, target) for o in answer]

    def probe_batch(self, check: Batched, name: str, chunk: Chunk) -> Split | None:
        """What a batch of one zone's hosts saw, each host's part; None when the run stopped."""
        batch = BatchTask(tasks=tuple(probe_task(self._run, name, t, ctx, None) for t, ctx in chunk))
        zone = batch.tasks[0].zone
        pending = _Pending(batch.key, zone, BATCH_TASK_NAME, batch.model_dump(mode="json"), name, None)
        answer = self._ask(pending)
        if answer is None:
            return None
        targets = [target for target, _ in chunk]
        if isinstance(answer, str):
            return {t.key: [self._failed(pending, t, answer)] for t in targets}
        return split_batch(name, targets, answer)

    def _ask(self, pending: _Pending) -> Answer:
        self._incoming.put(pending)
        while not self.stop.is_set():
            try:
                return pending.answer.result(timeout=0.2)
            except TimeoutError:
                continue
        return None

    @staticmethod
    def _failed(pending: _Pending, target: Target, reason: str) -> Observation:
        # Made from where it was asked for: an outside vantage's failure stays its own probe's.
        failed = Observation.failed(pending.check, target, reason)
        return failed.model_copy(update={"zone": pending.vantage})

    # The dispatcher thread: the only one that sends tasks and reads results.

    def _dispatch(self) -> None:
        backend = self._app.backend
        try:
            while not self._closed.is_set() and not self.stop.is_set():
                busy = self._send_new(backend)
                busy |= self._collect(backend)
                self._give_up_on_silent_zones()
                if not busy:
                    time.sleep(_POLL_SECONDS)
        except (KombuError, RedisError, OSError) as exc:
            self._lose(exc)
        finally:
            for pending in self._pending.values():
                pending.answer.set_result(None)
            self._pending.clear()

    def _send_new(self, backend: PolledRedisBackend) -> bool:
        sent = False
        while True:
            try:
                pending = self._incoming.get_nowait()
            except queue.Empty:
                return sent
            sent = True
            if pending.zone not in self.live_zones:
                pending.answer.set_result(f"no worker for zone {pending.zone}")
                continue
            meta = backend.get_task_meta(pending.key)
            if meta["status"] == "SUCCESS" and pending.key not in self._redo:
                self._resolve(pending, meta)  # answered after the earlier attempt ended: not run twice
                continue
            if meta["status"] != "PENDING":
                # An earlier attempt's error or a worker's failure is no answer for this attempt.
                backend.forget(pending.key)
            self._pending[pending.key] = pending
            self._progress.setdefault(pending.zone, time.monotonic())
            self._app.send_task(
                pending.task, args=[pending.payload], task_id=pending.key, queue=queue_for(pending.zone)
            )

    def _collect(self, backend: PolledRedisBackend) -> bool:
        if not self._pending:
            return False
        answered = False
        for key, meta in list(backend.get_many(set(self._pending), interval=0, max_iterations=1)):
            pending = self._pending.pop(key, None)
            if pending is not None:
                self._progress[pending.zone] = time.monotonic()
                self._resolve(pending, meta)
                answered = True
        return answered

    def _give_up_on_silent_zones(self) -> None:
        now, live = time.monotonic(), self.live_zones
        for key, pending in list(self._pending.items()):
            zone = pending.zone
            if zone not in live:
                reason = f"no worker for zone {zone}"
            elif now - self._progress.get(zone, now) > self._stall:
                reason = f"no answer from the workers of zone {zone} in {self._stall:.0f} s"
            else:
                continue
            del self._pending[key]
            pending.answer.set_result(reason)

    def _resolve(self, pending: _Pending, meta: Mapping[str, Any]) -> None:
        pending.answer.set_result(self._read(pending, meta))

    def _read(self, pending: _Pending, meta: Mapping[str, Any]) -> list[Observation] | str:
        if meta.get("status") != "SUCCESS":
            failure = meta.get("result")
            detail = failure.get("exc_message") if isinstance(failure, dict) else failure
            reason = detail[0] if isinstance(detail, list | tuple) and detail else detail
            return f"worker of zone {pending.zone} failed: {reason}"
        try:
            seen = [
                Observation.model_validate(raw, context={DATA_MODELS: self._models})
                for raw in meta.get("result") or ()
            ]
        except (ValidationError, TypeError):
            return f"the answer of zone {pending.zone}'s worker is malformed"
        if any(o.zone != pending.zone for o in seen):
            return f"the answer of zone {pending.zone}'s worker claims another vantage"
        return seen

    # The liveness thread.

    def _liveness(self) -> None:
        while not self._closed.wait(LIVENESS_SECONDS) and not self.stop.is_set():
            try:
                self._check_liveness()
            except BrokerLost as exc:
                self._lose(exc)

    def _check_liveness(self) -> None:
        try:
            replies = self._app.control.inspect(timeout=INSPECT_SECONDS).active_queues() or {}
        except (KombuError, RedisError, OSError) as exc:
            raise BrokerLost(_reason(exc)) from None
        now = time.monotonic()
        for queues in replies.values():
            for q in queues or ():
                name = str(q.get("name", "")) if isinstance(q, dict) else ""
                if name.startswith(QUEUE_PREFIX):
                    self._seen[name.removeprefix(QUEUE_PREFIX)] = now

    def _lose(self, exc: BaseException) -> None:
        if self._closed.is_set():
            return  # the run is over: nothing is waiting on the broker any more
        if self.lost is None:
            self.lost = f"broker {self._broker.shown} stopped answering: {_reason(exc)}"
        self.stop.set()


def _reason(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
