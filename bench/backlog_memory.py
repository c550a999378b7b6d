"""``python -m bench.backlog_memory [--quick]``: Redis bytes per waiting job and per record.

Issue 13, part 3. *N* invoice jobs (``bench/workload.py``'s body, one order each) are enqueued
with no worker running: (``INFO memory`` used_memory after - before) / N is the cost of a
waiting job. Then the workers (the Procfile's: 2 x threads 64, settings as shipped, so the
order-total check's GET too) deliver them all against the sandbox at 0 ms, and the same
difference, workers stopped, is what a delivered job's record keeps (until its retention
runs out). The same for plain Celery (``apply_async``; no result backend, so nothing is kept
once delivered). vtex-relay's bytes are then broken down by key (``MEMORY USAGE`` of the keys
of a sample of orders, and of the global keys divided by N). Writes ``bench/backlog-memory.md``
(``--quick``: ``bench/backlog-memory-quick.md``).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections import defaultdict
from pathlib import Path

import redis

from bench.context import Context, Plan, info
from bench.harness import BenchError, stop_workers
from bench.report import machine_line
from bench.systems import RELAY_PROCFILE, System
from bench.workload import ACCOUNT, jobs
from tests.harness import start_workers, wait_for

PLAIN = System("plain", 2, "threads", 64)
SAMPLE = 200  # orders whose keys are measured one by one
TARGET = 2_048


def _enqueue(system: System, prefix: str, count: int) -> list[tuple[str, str]]:
    """Enqueue *count* jobs; vtex-relay's (order id, job id) pairs."""
    if system.kind == "plain":
        from bench.plain_celery import post_invoice

        for oid, body in jobs(prefix, count):
            kwargs = {"account": ACCOUNT, "order_id": oid, "body": body}
            post_invoice.apply_async(kwargs=kwargs)
        return []
    from vtex_relay.produce.api import build_job, enqueue_many

    pairs = list(jobs(prefix, count))
    results = enqueue_many(build_job("invoice", o, b, account=ACCOUNT) for o, b in pairs)
    if sum(r.verdict == "enqueued" for r in results) != count:
        raise BenchError("not every job was enqueued")
    return [(o, r.job_id) for (o, _), r in zip(pairs, results, strict=True)]


def _settled(ctx: Context) -> None:
    """Until no vtex-relay job is live: the last finish script ran after the last POST."""
    from vtex_relay.store.keys import account

    client = ctx.redis()

    def idle() -> bool:
        counts = client.hgetall(account(ACCOUNT, "jobs"))
        return all(int(v) == 0 for v in counts.values())

    wait_for(idle, timeout=60, what="every job finished", interval=0.2, error=BenchError)


def breakdown(client: redis.Redis, pairs: list[tuple[str, str]]) -> dict[str, float]:
    """Bytes per job by kind of key: ``MEMORY USAGE`` (value, key name, keyspace entry)
    averaged over the keys of a sample of orders, found by one SCAN so that a key added to the
    layout is counted too; keys without an order tag divided by N."""
    step = max(1, len(pairs) // SAMPLE)
    sample = {f"{ACCOUNT}:{oid}": job_id for oid, job_id in pairs[::step]}
    per_kind: dict[str, float] = defaultdict(float)
    for raw in client.scan_iter(match="vr:*", count=10_000):
        key = raw.decode()
        tag, _, rest = key.partition("{")[2].partition("}:")
        if not rest:  # a global or account key
            name = key.replace(f":{ACCOUNT}:", ":ACCOUNT:")
            per_kind[f"{name} (all, / N)"] += (client.memory_usage(key, samples=0) or 0) / len(
                pairs
            )
        elif tag in sample:
            encoding = client.object("encoding", key)
            kind = f"{rest.replace(sample[tag], 'ID')} ({encoding.decode() if encoding else '?'})"
            per_kind[kind] += (client.memory_usage(key, samples=0) or 0) / len(sample)
    return dict(per_kind)


def _memory(ctx: Context) -> int:
    return ctx.redis_memory()


def measure(ctx: Context, system: System, count: int) -> tuple[float, float, list[str]]:
    """(bytes per waiting job, bytes per delivered record, breakdown lines)."""
    ctx.fresh(0)
    _enqueue(system, ctx.prefix(), 1)  # warm up: scripts loaded, connections made
    ctx.fresh(0)
    prefix = ctx.prefix()
    before = _memory(ctx)
    started = time.perf_counter()
    pairs = _enqueue(system, prefix, count)
    waiting = (_memory(ctx) - before) / count
    info(f"{system.label}: {count:,} enqueued in {time.perf_counter() - started:.1f}s")
    lines: list[str] = []
    if pairs:
        lines += _lines("waiting", breakdown(ctx.redis(), pairs), waiting)
    workers = system.workers(ctx.env, prefix.lower())
    try:
        start_workers(workers)
        ctx.wait_applied(count, timeout=60 + count / 20)
        if pairs:
            _settled(ctx)
        errors = [line for w in workers for line in w.errors()]
        if errors:
            raise BenchError("worker errors:\n" + "\n".join(errors))
    finally:
        stop_workers(workers)
    delivered = (_memory(ctx) - before) / count
    if pairs:
        lines += _lines("delivered", breakdown(ctx.redis(), pairs), delivered)
    info(f"{system.label}: {waiting:,.0f} bytes/waiting job, {delivered:,.0f} bytes/record")
    return waiting, delivered, lines


def _lines(when: str, parts: dict[str, float], measured: float) -> list[str]:
    shown = sorted(((k, v) for k, v in parts.items() if v >= 0.5), key=lambda i: -i[1])
    rows = [f"| {when} | `{k}` | {v:,.0f} |" for k, v in shown]
    rest = measured - sum(parts.values())
    # MEMORY USAGE counts a key's dictEntry, not the keyspace's bucket array nor an EXPIRE's.
    what = "the rest (keyspace table, expiry entries, keys under 1 byte/job)"
    rows.append(f"| {when} | {what} | {rest:,.0f} |")
    rows.append(f"| {when} | **total (INFO used_memory / N)** | **{measured:,.0f}** |")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.backlog_memory", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="10,000 jobs instead of 100,000")
    parser.add_argument(
        "--hash-max-listpack-value",
        type=int,
        default=None,
        help="set on the bench's Redis first (default: Redis's, 64), to see what it saves",
    )
    args = parser.parse_args(argv)
    count = 10_000 if args.quick else 100_000
    started = time.monotonic()
    ctx = Context(Plan.make(args.quick, 1))
    try:
        ctx.setup()
        if args.hash_max_listpack_value is not None:
            ctx.redis().config_set("hash-max-listpack-value", args.hash_max_listpack_value)
        listpack = ctx.redis().config_get("hash-max-listpack-value")["hash-max-listpack-value"]
        relay = measure(ctx, RELAY_PROCFILE, count)
        plain = measure(ctx, PLAIN, count)
        version = ctx.redis_server.version()
    finally:
        ctx.teardown()
    command = shlex.join(
        ["python", "-m", "bench.backlog_memory", *(sys.argv[1:] if argv is None else argv)]
    )
    verdict = "meets" if relay[0] <= TARGET else "misses"
    text = "\n".join(
        [
            "| system | bytes per waiting job | bytes per delivered job's record |",
            "|---|---|---|",
            f"| vtex-relay | {relay[0]:,.0f} | {relay[1]:,.0f} |",
            f"| plain Celery (`apply_async`, no result backend) | {plain[0]:,.0f} "
            f"| {plain[1]:,.0f} |",
            "",
            f"{count:,} invoice jobs (`bench/workload.py`), one order each; `INFO memory` "
            f"used_memory difference / {count:,}. vtex-relay {verdict} the target of at most "
            f"{TARGET:,} bytes per waiting job. Delivered: vtex-relay's workers as shipped "
            "(order-total check on), sandbox at 0 ms, measured after the workers stopped. "
            f"Redis's hash-max-listpack-value: {listpack}.",
            "",
            "vtex-relay, by key (bytes per job; `MEMORY USAGE ... SAMPLES 0` over "
            f"{SAMPLE} orders, global keys over all; encoding in brackets):",
            "",
            "| when | key | bytes per job |",
            "|---|---|---|",
            *relay[2],
            "",
            machine_line(version),
            f"Command: `{command}` ({(time.monotonic() - started) / 60:.1f} min)",
        ]
    )
    print(text)
    name = "backlog-memory-quick.md" if args.quick else "backlog-memory.md"
    if args.hash_max_listpack_value is not None:  # an experiment: never the published figures
        name = f"backlog-memory-listpack-{args.hash_max_listpack_value}.md"
    Path(__file__).with_name(name).write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
