"""Worker processes for CPU-heavy probes: the local engine's way onto every core.

A TLS handshake is CPU work done under the GIL (nassl holds it through a handshake), so
however many threads probe, one process finishes about one core's worth of handshakes. A check
that says so (`cpu_heavy`, scanner/plugin.py) has its probes run here instead: in a few worker
processes, one per core unless told otherwise (`--processes N`, `[scan] processes`), each with
its own GIL, its own TLS job pool and its own admission (checks/tls/_pool.py), so each is
admitted only as fast as its core can finish it. The runner keeps everything else: the plan, the
light checks, storing each observation as it arrives, progress.

- One way to run a probe elsewhere. A probe travels as the celery engine's does, a `ProbeJob`
  in JSON (no pickle), and the worker runs it with `probe_target`, the same bounded, timed-out
  code as everywhere. Only the credential, which never goes through a broker, is added to the
  job here: it stays on this machine, in a pipe to a child of the scan, and is never logged.
- Started only when it pays. The processes come from a fork server that imports attt and the
  checks once (about 0.5 CPU-s), then forks each worker in milliseconds; they start in the
  background while the ports are scanned, and only when the plan holds enough CPU-heavy probes
  (`runner.MIN_PROBES`) or `--processes` was given. Probes that arrive before the workers are ready
  wait for them (at most `START_SECONDS`, then they run here).
- Spread and polite. A probe goes to the worker with the fewest probes in flight, except that
  the probes of one IP address go to the same worker while any is in flight, so the per-IP
  connection cap of its TLS pool still holds.
- A worker that dies (killed, crashed in a library) turns the probes it held into `error`
  observations that say so; what it had already answered is kept, and a new worker takes its
  place. A worker that stops answering for longer than a probe could take is killed, the same
  way. Nothing waits on a dead worker.
- Stopping. Workers ignore SIGINT, SIGTERM and SIGHUP (Ctrl-C reaches the whole process group):
  the scan decides. When it stops, its probes in flight are abandoned (left for `--resume`) and
  the workers are told to exit, then killed if they do not; a worker whose scan died exits when
  its pipe closes.
"""

import atexit
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from contextlib import suppress
from dataclasses import dataclass, field
from importlib import import_module
from multiprocessing import get_context
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any

from pydantic import SecretStr, ValidationError

from attt.scanner.cores import every_core
from attt.scanner.logs import log_to_terminal
from attt.scanner.models.observation import DATA_MODELS, Observation
from attt.scanner.models.target import Target
from attt.scanner.plugin import Check, Credential, ProbeContext
from attt.scanner.registry import RegisteredCheck, Registry
from attt.scanner.runner import GRACE, ProbeJob, own_observation, probe_target

START_SECONDS = 30.0
"""How long a probe waits for the workers to start before it runs in the scan's own process."""
BEAT_SECONDS = 1.0
"""How often a worker says it is alive."""
_STOP_SECONDS = 2.0
"""How long a stopping worker may take to clean up (the TLS trust file) before it is killed."""
_PRELOAD = ("attt.scanner.processes", "attt.scanner.runner", "pydantic")

log = logging.getLogger("attt.processes")

Answer = dict[str, Any] | str
"""A worker's answer to one probe as it came (parsed JSON), or why there is none."""


def class_path(check: Check) -> str:
    """Where a worker finds a check's class: `module:qualified name`."""
    cls = type(check)
    return f"{cls.__module__}:{cls.__qualname__}"


@dataclass
class _Worker:
    process: BaseProcess
    conn: Connection
    send_lock: threading.Lock = field(default_factory=threading.Lock)
    pending: dict[int, "Future[Answer]"] = field(default_factory=dict)
    ips: dict[str, int] = field(default_factory=dict)
    """IP -> its probes in flight here: they stay here while there are any."""
    ready: bool = False
    heard: float = field(default_factory=time.monotonic)
    """When it last said anything (monotonic)."""
    lost: str | None = None
    """Why it is gone; None while it serves."""


class ProcessPool:
    """Worker processes running the probes of CPU-heavy checks; see the module docstring."""

    def __init__(self, registry: Registry, size: int, timeout: float, stop: threading.Event) -> None:
        self._models = registry.data_models
        self._classes = {name: (class_path(r.check), r.distribution) for name, r in registry.checks.items()}
        self._size = max(1, size)
        self._stall = timeout + GRACE + 2 * BEAT_SECONDS
        """A worker silent this long is stuck (a library call holding its GIL): it is killed."""
        self._stop = stop
        self._lock = threading.RLock()
        self._workers: list[_Worker] = []
        self._ids = 0
        self._started = threading.Event()
        self._loaded: frozenset[str] | None = None
        """The checks the workers could load (the first to start says)."""
        self._broken: str | None = None
        """Why the workers cannot serve: probes then run in the scan's own process."""
        self._closed = False
        self._wake_read, self._wake_write = os.pipe()
        self._thread: threading.Thread | None = None
        self._context = get_context("forkserver")

    def start(self) -> None:
        """Start the workers in the background (the fork server takes about a second)."""
        self._thread = threading.Thread(target=self._serve, name="attt-processes", daemon=True)
        self._thread.start()

    @property
    def pids(self) -> list[int]:
        """The workers serving now."""
        with self._lock:
            return [w.process.pid for w in self._workers if w.process.pid is not None]

    def probe(self, check: Check, target: Target, ctx: ProbeContext[Any]) -> list[Observation] | None:
        """What one probe saw, run in a worker; None when the scan was stopped first."""
        if not self._wait_started():
            return None
        if self._loaded is not None and check.name not in self._loaded:
            return probe_target(check, target, ctx, self._stop)  # its class cannot be loaded there
        job = ProbeJob.of(check.name, target, ctx)
        message = {"job": job.model_dump(mode="json"), "credential": _credential(ctx.credential)}
        future = self._send(target.ip, message)
        if future is None:
            return probe_target(check, target, ctx, self._stop)
        while not self._stop.is_set():
            try:
                answer = future.result(timeout=0.2)
            except TimeoutError:
                continue
            return self._observations(check.name, target, answer)
        return None

    def close(self) -> None:
        """Stop the workers: their probes in flight are abandoned (the scan was stopped, or is over)."""
        with self._lock:
            self._closed = True
        os.write(self._wake_write, b"x")
        if self._thread is not None:
            self._thread.join(5.0)
        with self._lock:
            workers = list(self._workers)
        for worker in workers:
            self._tell(worker, {"exit": 1})  # a worker cleans up (the TLS trust file), then exits
        deadline = time.monotonic() + _STOP_SECONDS
        for worker in workers:
            if not _ended(worker, deadline):
                _kill(worker)
                _ended(worker, time.monotonic() + _STOP_SECONDS)
            self._hang_up(worker)
            worker.process.join(0.1)  # reaped by the fork server, while it lives
        with self._lock:
            for worker in workers:
                self._lose(worker, "the scan was stopped")
        os.close(self._wake_read)
        os.close(self._wake_write)

    # The scan's threads.

    def _wait_started(self) -> bool:
        deadline = time.monotonic() + START_SECONDS
        while not self._started.wait(0.2):
            if self._stop.is_set():
                return False
            if time.monotonic() > deadline:
                self._give_up(f"the worker processes did not start in {START_SECONDS:g} s")
        return True

    def _send(self, ip: str, message: dict[str, Any]) -> "Future[Answer] | None":
        """Hand a probe to a worker; None when none can take it (it runs here instead)."""
        future: Future[Answer] = Future()
        with self._lock:
            worker = None if self._broken or self._closed else self._choose(ip)
            if worker is None:
                return None
            self._ids += 1
            number = self._ids
            worker.pending[number] = future
            worker.ips[ip] = worker.ips.get(ip, 0) + 1
        future.add_done_callback(lambda _: self._settled(worker, ip))
        self._tell(worker, {"id": number, **message})
        return future

    @staticmethod
    def _tell(worker: _Worker, message: dict[str, Any]) -> None:
        body = json.dumps(message).encode()
        try:
            with worker.send_lock:
                worker.conn.send_bytes(body)
        except (OSError, ValueError):
            pass  # it is dying: its death, seen by the serving thread, answers its probes

    def _choose(self, ip: str) -> _Worker | None:
        """The worker holding `ip`'s probes in flight, else the least busy one (lock held)."""
        serving = [w for w in self._workers if w.ready]
        holding = next((w for w in serving if w.ips.get(ip)), None)
        return holding or min(serving, key=lambda w: len(w.pending), default=None)

    def _settled(self, worker: _Worker, ip: str) -> None:
        with self._lock:
            left = worker.ips.get(ip, 0) - 1
            if left > 0:
                worker.ips[ip] = left
            else:
                worker.ips.pop(ip, None)

    def _observations(self, check: str, target: Target, answer: Answer) -> list[Observation]:
        """The worker's answer, typed here (by the waiting thread, not the serving one)."""
        if isinstance(answer, str):
            return [Observation.failed(check, target, answer)]
        if "error" in answer:
            return [Observation.failed(check, target, str(answer["error"]))]
        try:
            seen = [
                Observation.model_validate(o, context={DATA_MODELS: self._models})
                for o in answer["observations"]
            ]
        except (ValueError, KeyError, TypeError):  # ValidationError is a ValueError
            return [
                Observation.failed(check, target, "a worker process answered with malformed observations")
            ]
        return [own_observation(o, check, target) for o in seen]

    # The serving thread: starts the workers, reads their answers, sees them die.

    def _serve(self) -> None:
        try:
            self._context.set_forkserver_preload(
                [*_PRELOAD, *sorted({path.split(":", 1)[0] for path, _ in self._classes.values()})]
            )
            for _ in range(self._size):
                self._spawn()
            while self._serve_once():
                pass
        except Exception as exc:  # whatever failed, no probe may wait on workers nobody serves
            self._give_up(f"the worker processes failed: {type(exc).__name__}: {exc}")

    def _serve_once(self) -> bool:
        """Wait for a message or a death; False once closed."""
        with self._lock:
            if self._closed:
                return False
            workers = list(self._workers)
        if not workers:
            self._give_up("every worker process died as it started")
            return False
        # A worker's end of its pipe closes when it dies, however it dies: its pipe is watched,
        # not its exit (the fork server reports that, and may itself be gone, e.g. SIGTERM to
        # the whole service).
        ready = wait([*(w.conn for w in workers), self._wake_read], timeout=BEAT_SECONDS / 2)
        for worker in workers:
            if worker.conn in ready and not self._read(worker):
                self._died(worker)
        self._kill_silent(workers)
        return True

    def _give_up(self, reason: str) -> None:
        """The workers cannot serve: the probes they held get `reason`, later ones run here."""
        with self._lock:
            first = self._broken is None and not self._closed
            workers = list(self._workers) if first else []
            if first:
                self._broken = reason
                for worker in workers:
                    self._lose(worker, reason)
        self._started.set()
        if first:
            log.warning("%s: CPU-heavy probes run in this process", reason)
        for worker in workers:
            _kill(worker)

    def _spawn(self) -> None:
        with self._lock:
            if self._closed:
                return
        mine, theirs = self._context.Pipe()
        process = self._context.Process(
            target=serve, args=(theirs, self._classes), name="attt-worker", daemon=True
        )
        process.start()
        assert process.pid is not None  # started
        every_core(process.pid)
        theirs.close()
        worker = _Worker(process, mine)
        with self._lock:
            closed = self._closed
            if not closed:
                self._workers.append(worker)
        if closed:  # started while the scan ended
            _kill(worker)
            self._hang_up(worker)
            process.join(_STOP_SECONDS)

    def _read(self, worker: _Worker) -> bool:
        """Take every message the worker has sent (all of them, when it died just after);
        False once it is gone."""
        try:
            while worker.conn.poll():
                self._take(worker, json.loads(worker.conn.recv_bytes()))
        except (EOFError, OSError):
            return False
        return True

    def _take(self, worker: _Worker, message: dict[str, Any]) -> None:
        worker.heard = time.monotonic()
        if "ready" in message:
            with self._lock:
                worker.ready = True
                self._loaded = self._loaded or frozenset(message.get("checks", ()))
                self._all_ready()
            return
        with self._lock:
            future = worker.pending.pop(message.get("id", -1), None)
        if future is not None:
            future.set_result(message)

    def _died(self, worker: _Worker) -> None:
        worker.process.join(1.0)  # its pipe closed as it died: its exit is known a moment later
        code = worker.process.exitcode
        if code is None:
            how = "ended"
        elif code < 0:
            how = f"was killed by {signal.Signals(-code).name}"
        else:
            how = f"exited with code {code}"
        self._replace(worker, f"the worker process running this probe (pid {worker.process.pid}) {how}")

    def _kill_silent(self, workers: list[_Worker]) -> None:
        now = time.monotonic()
        for worker in workers:
            if worker.lost is None and worker.pending and now - worker.heard > self._stall:
                _kill(worker)
                _ended(worker, time.monotonic() + _STOP_SECONDS)
                reason = (
                    f"the worker process running this probe (pid {worker.process.pid}) stopped"
                    f" answering for {self._stall:.0f} s and was killed"
                )
                self._replace(worker, reason)

    def _replace(self, worker: _Worker, reason: str) -> None:
        """A worker is gone (dead, or killed): its probes get `reason`, another takes its place."""
        with self._lock:
            if self._closed or worker.lost is not None:
                return
            self._lose(worker, reason)
        self._hang_up(worker)
        if worker.ready:  # one that died as it started would only die again
            self._spawn()

    def _lose(self, worker: _Worker, reason: str) -> None:
        """The worker is gone: each probe it held gets `reason` (lock held)."""
        if worker.lost is not None:
            return
        worker.lost = reason
        self._workers.remove(worker)
        pending, worker.pending = worker.pending, {}
        for future in pending.values():
            future.set_result(reason)
        self._all_ready()

    def _all_ready(self) -> None:
        """Probes go out once no worker is still starting, so that the first probes of a run
        are spread over every worker, not given to the first one up (lock held)."""
        if any(w.ready for w in self._workers) and all(w.ready for w in self._workers):
            self._started.set()

    @staticmethod
    def _hang_up(worker: _Worker) -> None:
        """Close the pipe to a worker; a sender blocked on a full pipe to a stuck worker is
        freed by killing it first."""
        if not worker.send_lock.acquire(timeout=1.0):
            _kill(worker)
            worker.send_lock.acquire()
        try:
            worker.conn.close()
        finally:
            worker.send_lock.release()


def _kill(worker: _Worker) -> None:
    """SIGKILL a worker whose pipe is still open (so it lives, and its pid is its own). Not
    through its `Process`: when the fork server is gone (SIGTERM to the whole service), the
    `Process` counts the worker as ended and would signal nothing."""
    if worker.process.pid is not None:
        with suppress(ProcessLookupError):
            os.kill(worker.process.pid, signal.SIGKILL)


def _ended(worker: _Worker, deadline: float) -> bool:
    """Whether the worker's end of its pipe closed (it exited) by `deadline`; what it still
    said is dropped (nobody waits for it any more)."""
    try:
        while worker.conn.poll(max(0.0, deadline - time.monotonic())):
            worker.conn.recv_bytes()
    except (EOFError, OSError):
        return True
    return False


def _credential(credential: Credential | None) -> dict[str, Any] | None:
    """A credential for a worker of this machine (never for a broker, never logged)."""
    if credential is None:
        return None
    password = credential.password.get_secret_value() if credential.password else None
    return {
        "user": credential.user,
        "key_file": credential.key_file,
        "password": password,
        "sudo": credential.sudo,
    }


def _from_json(given: Mapping[str, Any] | None) -> Credential | None:
    if given is None:
        return None
    password = given.get("password")
    return Credential(
        user=str(given["user"]),
        key_file=given.get("key_file"),
        password=SecretStr(password) if password else None,
        sudo=bool(given.get("sudo")),
    )


# -- the worker ---------------------------------------------------------------------------------


def serve(conn: Connection, classes: Mapping[str, tuple[str, str]]) -> None:
    """A worker process: run each probe the scan sends, in a thread of its own, and answer it;
    exit when the scan says so or is gone."""
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)  # the scan stops its workers, not the terminal
    log_to_terminal()  # a fork server's child starts without the scan's logging
    registry = _registry(classes)
    send_lock = threading.Lock()
    stop = threading.Event()

    def send(message: Mapping[str, Any]) -> None:
        body = json.dumps(message).encode()
        with send_lock:
            conn.send_bytes(body)

    def beat() -> None:
        while not stop.wait(BEAT_SECONDS):
            try:
                send({"beat": 1})
            except (OSError, ValueError):
                return

    send({"ready": os.getpid(), "checks": sorted(registry.checks)})
    threading.Thread(target=beat, name="attt-beat", daemon=True).start()
    while True:
        try:
            body = conn.recv_bytes()
        except (EOFError, OSError):
            break  # the scan is gone
        if body.startswith(b'{"exit"'):
            break
        threading.Thread(target=_answer, args=(registry, body, send, stop), daemon=True).start()
    stop.set()
    # multiprocessing ends a worker with os._exit, which skips atexit: the TLS check's trust
    # file is removed that way, so it is run here.
    atexit._run_exitfuncs()


def _answer(
    registry: Registry, body: bytes, send: Callable[[Mapping[str, Any]], None], stop: threading.Event
) -> None:
    """Run one probe and answer it: with what it saw, or why it could not run (a probe the scan
    waits for is always answered)."""
    number = -1
    try:
        message = json.loads(body)
        number = message["id"]
        job = ProbeJob.model_validate(message["job"], context={DATA_MODELS: registry.data_models})
        if job.check not in registry.checks:
            raise ValueError(f"check {job.check} cannot be loaded in a worker process")
        ctx = job.context(registry, _from_json(message.get("credential")))
        seen = probe_target(registry.check(job.check), job.target, ctx, stop)
        if seen is None:
            return  # stopping: nobody waits for it
        answer: dict[str, Any] = {"id": number, "observations": [o.model_dump(mode="json") for o in seen]}
    except Exception as exc:
        reason = (
            exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else f"{type(exc).__name__}: {exc}"
        )
        answer = {"id": number, "error": f"a worker process could not run the probe: {reason}"}
    try:
        send(answer)
    except (OSError, ValueError):
        return  # the scan is gone


def _registry(classes: Mapping[str, tuple[str, str]]) -> Registry:
    """The scan's checks, made here from their classes; one that fails to load is left out (the
    scan, told which loaded, runs its probes itself)."""
    checks: dict[str, RegisteredCheck] = {}
    for name, (path, distribution) in classes.items():
        module, _, qualified = path.partition(":")
        try:
            cls: Any = import_module(module)
            for part in qualified.split("."):
                cls = getattr(cls, part)
            checks[name] = RegisteredCheck(cls(), distribution)
        except Exception as exc:  # a check that loads in the scan but not here costs only its probes
            log.warning("check %s cannot be loaded in a worker process: %s", name, exc)
    return Registry.of(checks)
