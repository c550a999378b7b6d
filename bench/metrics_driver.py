"""One round of ``bench.metrics_cost``'s CPU comparison, run in the tree under test (``cwd``,
``PYTHONPATH``): a Redis, the sandbox and one worker of that tree; *jobs* invoices delivered;
prints the worker's CPU seconds per job, from "ready" to the last delivery. It uses only what
both trees have (the test harness, ``Ordering.enqueue``), found where each tree keeps them, so
it runs in either."""

import importlib
import os
import sys
import time
from pathlib import Path
from typing import Any

import psutil


def _first(*names: str) -> Any:
    """The first of the modules *names* that this tree has: the baseline's name first (it
    predates ``vtex_relay/store`` and ``tests/harness.py``), since the installed package may
    lend the baseline this tree's modules under the new names."""
    for name in names:
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError:
            continue
    raise ModuleNotFoundError(" or ".join(names))


harness = _first("vtex_relay.testing", "tests.harness")
RedisServer, Sandbox, Worker, wait_for = (
    harness.RedisServer,
    harness.Sandbox,
    harness.Worker,
    harness.wait_for,
)

BODY = {
    "type": "Output",
    "issuanceDate": "2024-01-31T18:25:43-05:00",
    "invoiceNumber": "NF-1",
    "invoiceValue": "100",
    "items": [{"id": "1", "price": 100, "quantity": 1}],
}


def main(jobs: int) -> None:
    tree = Path.cwd()
    redis_server = RedisServer().start()
    sandbox = Sandbox("--seed", "1", cwd=tree).start()
    worker = None
    try:
        env = {
            **os.environ,
            "REDIS_URL": redis_server.url,
            "VTEX_ACCOUNT": "bench",
            "VTEX_APP_KEY": "k",
            "VTEX_APP_TOKEN": "t",
            "VTEX_BASE_URL": sandbox.url + "/{account}",
            "VERIFY_ORDER_TOTAL": "false",
            "VTEX_RATE_LIMIT": "0",
        }
        os.environ.update(env)
        from vtex_relay.jobs import Job

        Ordering = _first("vtex_relay.ordering", "vtex_relay.store.ordering").Ordering

        orders = (
            Job(kind="invoice", order_id=f"o-{n}", account="bench", body=BODY) for n in range(jobs)
        )
        for _ in Ordering(redis_server.client()).enqueue(orders):
            pass
        worker = Worker(env, "mcost", concurrency=8, cwd=tree).start()
        process = psutil.Process(worker.pid)
        before = sum(process.cpu_times()[:2])
        stats = f"{sandbox.url}/_sandbox/stats"
        import httpx

        wait_for(lambda: httpx.get(stats).json()["total"] >= jobs, timeout=300, interval=0.1)
        after = sum(process.cpu_times()[:2])
        print(f"{(after - before) / jobs:.6f}")
    finally:
        if worker is not None:
            worker.stop()
        sandbox.stop()
        redis_server.stop()
        time.sleep(0)


if __name__ == "__main__":
    main(int(sys.argv[1]))
