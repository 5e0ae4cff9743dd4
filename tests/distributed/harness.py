"""Real parts for the celery engine's tests and benchmark: a redis-server with a password on a
unix socket, network namespaces each holding one zone's hosts, and `attt worker` processes
inside them.

A unix socket is a path: it crosses network namespaces, so a worker in a namespace that holds
only its own zone's hosts reaches the broker without any virtual link, and reaches nothing else.
Everything started here is stopped by its context manager; every wait is bounded.
"""

import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ATTT = str(Path(sys.executable).with_name("attt"))
_START_SECONDS = 15.0


def can_run() -> str | None:
    """Why these tests cannot run here, or None."""
    if shutil.which("redis-server") is None:
        return "needs redis-server (make install)"
    if os.geteuid() != 0 or shutil.which("ip") is None:
        return "needs root and iproute2 to create network namespaces"
    return None


def _wait(condition: "object", what: str, seconds: float = _START_SECONDS) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return
        time.sleep(0.05)
    raise TimeoutError(f"{what} not ready after {seconds:g} s")


@dataclass
class Redis:
    """A redis-server of the test's own, reached through a unix socket, with a password."""

    directory: Path
    password: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    process: "subprocess.Popen[bytes] | None" = None

    @property
    def socket(self) -> Path:
        return self.directory / "redis.sock"

    @property
    def url(self) -> str:
        """The broker URL, without the password (it travels in $ATTT_BROKER_PASSWORD)."""
        return f"redis+socket://{self.socket}"

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "ATTT_BROKER_PASSWORD": self.password}

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        config = self.directory / "redis.conf"
        config.write_text(
            "port 0\n"
            f"unixsocket {self.socket}\nunixsocketperm 700\n"
            f"requirepass {self.password}\n"
            f'save ""\nappendonly no\ndir {self.directory}\n'
            "daemonize no\nloglevel warning\n"
        )
        config.chmod(0o600)
        log = (self.directory / "redis.log").open("ab")
        self.process = subprocess.Popen(["redis-server", str(config)], stdout=log, stderr=log)
        _wait(self.socket.exists, "redis-server")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None
        with suppress(FileNotFoundError):
            self.socket.unlink()


@contextmanager
def redis_server(directory: Path) -> Iterator[Redis]:
    server = Redis(directory)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class Namespace:
    """A network namespace with only a loopback: the hosts of one zone listen there."""

    name: str
    processes: "list[subprocess.Popen[bytes]]" = field(default_factory=list)

    def command(self, argv: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.name, *argv]

    def spawn(
        self, argv: Sequence[str], log: Path, env: dict[str, str] | None = None
    ) -> "subprocess.Popen[bytes]":
        out = log.open("ab")
        process = subprocess.Popen(
            self.command(argv),
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
            start_new_session=True,
        )
        self.processes.append(process)
        return process

    def listen(self, endpoints: Sequence[tuple[str, int]], log: Path) -> None:
        """TCP listeners on these loopback endpoints, inside the namespace."""
        spec = [f"{address}:{port}" for address, port in endpoints]
        process = self.spawn([sys.executable, "-m", "tests.distributed.listen", *spec], log)

        def listening() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"listeners in {self.name} exited: {log.read_text()[-500:]}")
            return f"listening {len(spec)}" in log.read_text()

        _wait(listening, f"listeners in {self.name}")

    def worker(
        self, redis: Redis, zone: str, networks: Sequence[str], log: Path, *extra: str
    ) -> "subprocess.Popen[bytes]":
        argv = [ATTT, "worker", "--zone", zone, "--broker", redis.url]
        for network in networks:
            argv += ["--scope", network]
        return self.spawn([*argv, *extra], log, env=redis.env)


def stop_process(process: "subprocess.Popen[bytes]", sig: int = signal.SIGTERM) -> None:
    if process.poll() is None:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(15)


@contextmanager
def namespace(label: str) -> Iterator[Namespace]:
    """`attt-t-<pid>-<label>`, removed with everything started in it when the block ends."""
    ns = Namespace(f"attt-t-{os.getpid()}-{label}")
    subprocess.run(["ip", "netns", "add", ns.name], check=True, timeout=15)
    try:
        subprocess.run(ns.command(["ip", "link", "set", "lo", "up"]), check=True, timeout=15)
        yield ns
    finally:
        for process in ns.processes:
            stop_process(process)
        subprocess.run(["ip", "netns", "delete", ns.name], check=False, timeout=15)


def wait_for_worker(redis: Redis, zone: str, seconds: float = 30.0) -> None:
    """Until a worker of the zone answers the liveness question the coordinator asks."""
    from kombu.exceptions import KombuError
    from redis.exceptions import RedisError

    from attt.scanner.distributed import QUEUE_PREFIX, celery_app, resolve_broker

    os.environ["ATTT_BROKER_PASSWORD"] = redis.password
    app = celery_app(resolve_broker(redis.url, None), 30)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            replies = app.control.inspect(timeout=1.0).active_queues() or {}
        except (OSError, KombuError, RedisError):  # a broker that was just restarted
            time.sleep(0.2)
            continue
        names = {q.get("name") for queues in replies.values() for q in queues or ()}
        if f"{QUEUE_PREFIX}{zone}" in names:
            return
    raise TimeoutError(f"no worker of zone {zone} after {seconds:g} s")
