"""The intake's batch rate against the batch CLI's (issue 14: "a batch request enqueues at the
batch CLI's rate"): part ``batch`` of ``python -m bench.intake``.

The same file of invoice lines (``bench.workload.write_batch``) is enqueued by one
``POST /relay/batch`` to the running intake and by ``vtex-relay enqueue batch FILE``, each on
an emptied Redis (FLUSHALL), one after the other, in the same run; every run is checked (each
line answered ``enqueued``, that many messages queued). Both are timed from the client's side
on the wall clock: the request from its first byte sent to the last byte of its answer (the
answer lists every job, as the CLI's output does); the CLI from its process start to its exit,
and also without its start-up (the time of a 1-line batch), which a long-running intake does
not pay per request.
"""

from __future__ import annotations

import http.client
import json
import statistics
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import redis

from bench.harness import BenchError, cli_batch
from bench.workload import write_batch
from vtex_relay.store import keys

HEADING = "## Batches: `POST /relay/batch` against `vtex-relay enqueue batch FILE`"


def post_batch(url: str, path: Path, credentials: dict[str, str], count: int) -> float:
    """Seconds for one ``POST /relay/batch`` of *path*'s lines, all of them enqueued."""
    body = path.read_bytes()  # before the clock starts: the request is sent from memory
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=600)
    headers = {"Content-Type": "application/x-ndjson", **credentials}
    started = time.perf_counter()
    try:
        connection.request("POST", "/relay/batch", body=body, headers=headers)
        answer = connection.getresponse()
        data = answer.read()
    finally:
        connection.close()
    elapsed = time.perf_counter() - started
    if answer.status != 200:
        raise BenchError(f"POST /relay/batch answered {answer.status}: {data[:500]!r}")
    statuses = [job["status"] for job in json.loads(data)["jobs"]]
    if len(statuses) != count or set(statuses) != {"enqueued"}:
        raise BenchError(f"POST /relay/batch: {len(statuses)} jobs, {set(statuses)}")
    return elapsed


def _expect_jobs(client: redis.Redis, count: int, what: str) -> None:
    # Jobs, not Celery messages: only DISPATCH_WINDOW of an account's jobs are queued at once.
    found = sum(1 for _ in client.scan_iter(match=keys.body("*", "*"), count=10_000))
    if found != count:
        raise BenchError(f"{what}: {found} jobs in Redis, expected {count}")


def section(
    url: str,
    client: redis.Redis,
    env: dict[str, str],
    credentials: dict[str, str],
    count: int,
    runs: int,
    footer: str,
) -> str:
    """Measure, and return the markdown section (a table row each, jobs/s)."""
    posted: list[float] = []
    cli: list[float] = []
    startup: list[float] = []
    with tempfile.TemporaryDirectory(prefix="vtex-relay-bench-") as tmp:
        one = write_batch(Path(tmp) / "one.jsonl", "warm", 1)
        lines = write_batch(Path(tmp) / "batch.jsonl", "batch", count)
        client.flushall()
        post_batch(url, one, credentials, 1)  # warm-up: the intake's Redis connection, scripts
        for _ in range(runs):
            client.flushall()
            startup.append(cli_batch(env, one))
            client.flushall()
            cli.append(cli_batch(env, lines))
            _expect_jobs(client, count, "vtex-relay enqueue batch")
            client.flushall()
            posted.append(post_batch(url, lines, credentials, count))
            _expect_jobs(client, count, "POST /relay/batch")
        client.flushall()
    intake_rate = count / statistics.median(posted)
    cli_rate = count / statistics.median(cli)
    started = statistics.median(startup)
    cli_warm = count / max(statistics.median(cli) - started, 1e-9)

    def runs_of(times: list[float]) -> str:
        return ", ".join(f"{t:.2f} s" for t in times)

    return "\n".join(
        [
            HEADING,
            "",
            f"The same {count:,} invoice lines (`bench/workload.py`'s `write_batch`), each run "
            "on an emptied Redis, both checked (every line answered `enqueued`, that many jobs "
            "in Redis). Wall clock from the client's side: the request from its first byte to "
            "the last of its answer, the CLI from its process start to its exit. Median of the "
            "runs.",
            "",
            "| client | jobs/s | runs | notes |",
            "|---|---|---|---|",
            f"| `POST /relay/batch`, one request of {count:,} lines | {intake_rate:,.0f} | "
            f"{runs_of(posted)} | {intake_rate / cli_rate:.2f}x the CLI's rate, "
            f"{intake_rate / cli_warm:.2f}x without its start-up |",
            f"| `vtex-relay enqueue batch FILE`, {count:,} lines | {cli_rate:,.0f} | "
            f"{runs_of(cli)} | with its process start-up ({started:.2f} s, a 1-line batch); "
            f"without it: {cli_warm:,.0f} jobs/s |",
            "",
            "Target (issue 14): a batch request enqueues at the batch CLI's rate. " + footer,
        ]
    )


def merge(old: str, requests: str | None, batches: str | None) -> str:
    """*old* (the file's text) with the sections measured now in place of their old text."""
    head, found, tail = old.partition(HEADING)
    old_requests = head.strip()
    old_batches = (found + tail).strip()
    kept = [requests or old_requests, batches or old_batches]
    return "\n\n".join(part.strip() for part in kept if part) + "\n"
