"""``python -m bench.durability``: what each durability setting costs in enqueue rate, written
to bench/durability.md.

A primary with one replica, both on this machine; the same invoice jobs enqueued one at a time
(the Python API's ``enqueue_many`` of one job, as ``enqueue_invoice`` does) and in batches of
10,000 (as the batch CLI and ``/relay/batch`` do), with ``ENQUEUE_WAIT_REPLICAS`` 0 and 1.
``ENQUEUE_WAIT_AOF`` needs Redis 7.2 (``WAITAOF``): measured only where the server has it.
"""

from __future__ import annotations

import time
from pathlib import Path

from bench.harness import RedisServer
from bench.metrics_driver import BODY
from tests.harness import wait_for
from vtex_relay.jobs import Job
from vtex_relay.store.ordering import Ordering

OUT = Path(__file__).with_name("durability.md")
SINGLE, BATCH = 2_000, 10_000


def jobs(count: int, tag: str) -> list[Job]:
    return [
        Job(kind="invoice", order_id=f"{tag}-{n}", account="bench", body=BODY) for n in range(count)
    ]


def rates(ordering: Ordering) -> tuple[float, float]:
    """(single, batch) jobs per second."""
    single = jobs(SINGLE, f"s{time.monotonic_ns()}")
    started = time.perf_counter()
    for job in single:
        [(_, result)] = list(ordering.enqueue([job]))
        assert result.verdict == "enqueued", result
    one = SINGLE / (time.perf_counter() - started)
    batch = jobs(BATCH, f"b{time.monotonic_ns()}")
    started = time.perf_counter()
    results = [result for _, result in ordering.enqueue(batch)]
    many = BATCH / (time.perf_counter() - started)
    assert all(r.verdict == "enqueued" for r in results), results[0]
    return one, many


def main() -> None:
    primary = RedisServer().start()
    replica = RedisServer(None, "--replicaof", "127.0.0.1", str(primary.port)).start()
    try:
        client = primary.client()
        wait_for(lambda: replica.client().info("replication")["master_link_status"] == "up")
        version = str(client.info("server")["redis_version"])
        rows = []
        base: tuple[float, float] | None = None
        settings: list[tuple[str, dict[str, object]]] = [
            ("ENQUEUE_WAIT_REPLICAS=0 (the default)", {}),
            ("ENQUEUE_WAIT_REPLICAS=1", {"wait_replicas": 1}),
        ]
        if tuple(int(p) for p in version.split(".")[:2]) >= (7, 2):
            settings.append(("ENQUEUE_WAIT_AOF=true", {"wait_aof": True}))
        for name, options in settings:
            client.flushall()
            one, many = rates(Ordering(client, **options))  # type: ignore[arg-type]
            base = base or (one, many)
            rows.append(
                f"| {name} | {one:,.0f} | {one / base[0]:.2f}x | {many:,.0f} | "
                f"{many / base[1]:.2f}x |"
            )
        lines = [
            "# What each durability setting costs",
            "",
            f"`python -m bench.durability`, {time.strftime('%Y-%m-%d')}, Redis {version}, a "
            "primary and one replica on this machine (replication over loopback: a network "
            "between them adds its round trip to every single enqueue, and once per batch).",
            "",
            f"| setting | single enqueue, jobs/s ({SINGLE:,}) | vs default | "
            f"batch, jobs/s ({BATCH:,}) | vs default |",
            "|---|---|---|---|---|",
            *rows,
        ]
        if len(settings) == 2:
            lines += [
                "",
                f"`ENQUEUE_WAIT_AOF` needs Redis 7.2 or newer: not measured on {version}.",
            ]
        text = "\n".join(lines) + "\n"
        OUT.write_text(text)
        print(text)
    finally:
        replica.stop()
        primary.stop()


if __name__ == "__main__":
    main()
