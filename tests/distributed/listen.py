"""`python -m tests.distributed.listen ADDRESS:PORT...`: TCP listeners in a process of their own,
so a test can start them inside a network namespace; they stop at SIGTERM."""

import signal
import sys
import threading

from tests.servers.listeners import tcp_listeners


def main(specs: list[str]) -> None:
    endpoints = [(spec.rsplit(":", 1)[0], int(spec.rsplit(":", 1)[1])) for spec in specs]
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    with tcp_listeners(endpoints):
        print(f"listening {len(endpoints)}", flush=True)
        done.wait()


if __name__ == "__main__":
    main(sys.argv[1:])
