"""`python -m tests.distributed.rogue BROKER ZONE...`: a rogue worker of these zones. It probes
nothing: it answers each host of each task with a made-up clean ports observation (8080 open,
2323 closed), altered as the host's last number says:

    .1 speaks of another host       .2 speaks of a check the coordinator does not know
    .3 claims another zone          .4 carries a newer data model (a field this attt lacks)
    any other: unaltered (the control: an honest-looking answer is taken)

The coordinator must make an `error` of each altered answer, never a verdict. It stops at SIGTERM."""

import sys
from typing import Any

from attt.scanner.distributed import BATCH_TASK_NAME, TASK_NAME, celery_app, queue_for, resolve_broker


def forged(task: dict[str, Any]) -> dict[str, Any]:
    target = task["target"]
    host = str(target["host"]["address"])
    data = {"scanned": [2323, 8080], "open": [{"port": 8080}], "nmap_version": "7.94"}
    obs: dict[str, Any] = {"check": task["check"], "system": target["system"]["id"], "host": host,
                           "ip": target["ip"], "status": "ok", "zone": task["zone"],
                           "data": data}  # fmt: skip
    match host.rsplit(".", 1)[-1]:
        case "1":
            obs["host"] = obs["ip"] = "127.0.206.99"
        case "2":
            obs["check"] = "ports-next"
        case "3":
            obs["zone"] = "internet"
        case "4":
            data["open"] = [{"port": 8080, "tls": True}]
    return obs


def main(url: str, zones: list[str]) -> None:
    app = celery_app(resolve_broker(url, None), 30)

    @app.task(name=TASK_NAME)  # type: ignore[untyped-decorator]
    def probe(payload: dict[str, Any]) -> list[dict[str, Any]]:
        return [forged(payload)]

    @app.task(name=BATCH_TASK_NAME)  # type: ignore[untyped-decorator]
    def probe_batch(payload: dict[str, Any]) -> list[dict[str, Any]]:
        return [forged(task) for task in payload["tasks"]]

    app.Worker(
        hostname="rogue@attt-test",
        queues=[queue_for(zone) for zone in zones],
        pool="threads",
        concurrency=2,
        quiet=True,
        without_mingle=True,
        without_gossip=True,
        loglevel="WARNING",
    ).start()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
