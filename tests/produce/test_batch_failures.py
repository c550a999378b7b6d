"""A batch that fails part-way leaves no hole, and running the same batch again is safe.

Each order's jobs are spread through the batch file, as an ERP's export would have them. After
a failure — Redis out of memory part-way (then with memory back), or Redis going away — every
order holds a prefix of its batch jobs, never a later job without the earlier ones, and exactly
one message on the queue (its head). Running the same file again then completes every order,
each job once and in order, and answers the jobs already enqueued with their first ids. Running
a batch that went through again changes nothing in Redis. Checked against Redis itself.

The failures use a redis-server of the test's own: the CLI runs as a subprocess pointed at it.
"""

import contextlib
import json
import os
import random
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import CliRunner, Result

from tests.processes import ROOT, RedisServer, free_port, read_message, text, wait_for
from tests.seed import invoice
from vtex_relay import enqueue_tracking
from vtex_relay.cli.main import cli
from vtex_relay.errors import QueueUnavailable, UnknownOrder
from vtex_relay.ops.dead_letters import order_status
from vtex_relay.produce.api import build_job
from vtex_relay.store import keys
from vtex_relay.store.keys import OrderRef
from vtex_relay.store.messages import QUEUE

pytestmark = pytest.mark.processes  # Redis servers of their own

JOBS_PER_ORDER = 5
Signature = tuple[str, str | None, dict[str, Any]]  # kind, invoice number, body as sent


def job_line(order: int, step: int) -> dict[str, Any]:
    """Job *step* (0 to 4) of an order: its invoice, tracking number, then three PUTs."""
    order_id, number = f"o-{order}", f"NF-{order}"
    if step == 0:
        return {"kind": "invoice", "orderId": order_id, "body": invoice(number)}
    if step == 1:
        body: dict[str, Any] = {"trackingNumber": f"T-{order}"}
        return {
            "kind": "tracking-number",
            "orderId": order_id,
            "invoiceNumber": number,
            "body": body,
        }
    event = {"city": "Rio", "state": "RJ", "description": f"step {step}", "date": "2024-06-23"}
    body = {"isDelivered": step == JOBS_PER_ORDER - 1, "events": [event]}
    return {"kind": "tracking", "orderId": order_id, "invoiceNumber": number, "body": body}


def batch(orders: int, spread: int, seed: int = 10) -> list[dict[str, Any]]:
    """Every order's jobs, in order, interleaved: an order's jobs lie within *spread* orders'
    worth of lines, so the orders early in the file end early and the later ones late."""
    rng = random.Random(seed)
    placed = [
        (at, order, step)
        for order in range(orders)
        for step, at in enumerate(sorted(order + rng.uniform(0, spread) for _ in "12345"))
    ]
    return [job_line(order, step) for _at, order, step in sorted(placed)]


def write(path: Path, lines: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def signature(line: dict[str, Any]) -> Signature:
    job = build_job(
        line["kind"], line["orderId"], line["body"], invoice_number=line.get("invoiceNumber")
    )
    return job.kind, job.invoice_number, job.body


def by_order(lines: list[dict[str, Any]]) -> dict[str, list[Signature]]:
    """Each order's jobs as the batch has them, in line order."""
    orders: dict[str, list[Signature]] = {}
    for line in lines:
        orders.setdefault(line["orderId"], []).append(signature(line))
    return orders


def held(client: redis.Redis, order_id: str) -> list[tuple[str, Signature]]:
    """The order's jobs in Redis, in sequence, as (job id, signature)."""
    try:
        status = order_status(client, OrderRef("teststore", order_id))
    except UnknownOrder:
        return []
    return [(j.job_id, (j.kind or "", j.invoice_number, j.body or {})) for j in status.jobs]


def check_prefixes(client: redis.Redis, wanted: dict[str, list[Signature]]) -> dict[str, int]:
    """How many of its batch jobs each order holds; fails unless each holds a prefix of them
    (no later job without the earlier ones, no job twice) whose head alone has its turn: a
    message in the queue, or a place in its account's line."""
    counts: dict[str, int] = {}
    for order_id, jobs in wanted.items():
        got = [sig for _id, sig in held(client, order_id)]
        assert got == jobs[: len(got)], f"order {order_id} holds {got}, not a prefix of {jobs}"
        counts[order_id] = len(got)
    queued = Counter(read_message(raw)[1]["order_id"] for raw in client.lrange(QUEUE, 0, -1))
    line = client.lrange(keys.account("teststore", "line"), 0, -1)
    queued.update(OrderRef.parse(text(member).split()[0]).order_id for member in line)
    assert queued == Counter(order_id for order_id, n in counts.items() if n), "one head each"
    return counts


def cli_command(path: Path, *options: str) -> list[str]:
    return [sys.executable, "-m", "vtex_relay", "enqueue", "batch", str(path), *options]


def cli_env(server: RedisServer) -> dict[str, str]:
    return {**os.environ, "REDIS_URL": server.url}


def run_cli(server: RedisServer, path: Path, *options: str) -> "subprocess.CompletedProcess[str]":
    return subprocess.run(
        cli_command(path, *options),
        cwd=ROOT,
        env=cli_env(server),
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def start_cli(server: RedisServer, path: Path, *options: str) -> "subprocess.Popen[str]":
    return subprocess.Popen(
        cli_command(path, *options),
        cwd=ROOT,
        env=cli_env(server),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def used_memory(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def refusals(client: redis.Redis) -> int:
    """How many commands Redis has refused for lack of memory."""
    return int(client.info("errorstats").get("errorstat_OOM", {}).get("count", 0))


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    server = RedisServer(free_port())
    server.start()
    yield server
    server.stop()


def test_out_of_memory_part_way_leaves_no_hole_and_a_rerun_completes_every_order(
    own_redis: RedisServer, tmp_path: Path
) -> None:
    """Redis fills up part-way through the batch; then memory comes back (a big key is deleted)
    while the batch still runs, so later jobs fit again: those of orders that lost an earlier
    job must be skipped, not enqueued after a hole."""
    lines = batch(orders=2000, spread=300)
    path, wanted = write(tmp_path / "jobs.jsonl", lines), by_order(lines)
    client = own_redis.client()
    # What the whole batch takes on this Redis: maxmemory is set to fit about a third of it.
    empty = used_memory(client)
    assert run_cli(own_redis, path).returncode == 0
    whole = used_memory(client) - empty
    client.flushall()
    client.set("filler", b"x" * 4_000_000)
    client.config_set("maxmemory-policy", "noeviction")
    client.config_set("maxmemory", used_memory(client) + whole // 3)

    process = start_cli(own_redis, path, "--json")
    try:
        # A few hundred jobs refused, so that a few orders have lost one.
        wait_for(
            lambda: refusals(client) >= 200,
            timeout=120,
            interval=0.002,
            what="Redis to refuse jobs for lack of memory",
        )
        client.delete("filler")
        out, err = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    assert process.returncode == 1, err
    results = json.loads(out)
    verdicts = Counter(r["status"] for r in results)
    first_refused = next(i for i, r in enumerate(results) if r["status"] == "failed")
    assert any(r["status"] == "enqueued" for r in results[first_refused:]), "memory came back"
    assert verdicts["skipped"] > 0, "no order had a later job that would have fitted"
    assert err.startswith(f"vtex-relay: Redis at {own_redis.url} ")
    assert "cannot reach" not in err
    assert f"{verdicts['failed']} job(s) were not enqueued; {verdicts['enqueued']} were." in err
    assert f"{verdicts['skipped']} later job(s) of the same orders were skipped" in err
    assert "running the same jobs again is safe" in err

    # Reading an order is one MULTI, which a full Redis refuses (see the last test): lift the
    # limit to look; that changes no data.
    client.config_set("maxmemory", 0)
    counts = check_prefixes(client, wanted)
    assert any(0 < n < JOBS_PER_ORDER for n in counts.values()), "no order was cut"
    assert any(n == JOBS_PER_ORDER for n in counts.values()), "no order was complete"
    # What the CLI reported enqueued is what Redis holds, id for id.
    first_ids: dict[int, str] = {}
    for order_id in wanted:
        reported = [
            (i, r["jobId"])
            for i, r in enumerate(results)
            if r["orderId"] == order_id and r["status"] == "enqueued"
        ]
        assert [job_id for _i, job_id in reported] == [i for i, _ in held(client, order_id)]
        first_ids.update(reported)

    again = run_cli(own_redis, path, "--json")
    assert again.returncode == 0, again.stderr
    rerun = json.loads(again.stdout)
    for index, result in enumerate(rerun):
        if index in first_ids:
            assert (result["status"], result["jobId"]) == ("duplicate", first_ids[index])
        else:
            assert result["status"] == "enqueued", (index, result)
    assert set(check_prefixes(client, wanted).values()) == {JOBS_PER_ORDER}


def test_a_batch_cut_by_redis_going_away_then_run_again_enqueues_each_job_once(
    own_redis: RedisServer, tmp_path: Path
) -> None:
    """Redis shuts down while the batch runs and comes back with its data (SHUTDOWN SAVE, then
    a restart that loads it: what an AOF-backed Redis that is killed keeps). Each script is
    atomic, so the saved state is the one Redis had between two jobs of the batch."""
    lines = batch(orders=4000, spread=300)
    path, wanted = write(tmp_path / "jobs.jsonl", lines), by_order(lines)
    client = own_redis.client()
    process = start_cli(own_redis, path)
    try:
        # Part-way: 500 orders started, the ones early in the file complete by then.
        wait_for(
            lambda: client.llen(keys.account("teststore", "line")) >= 500,
            timeout=120,
            interval=0.005,
            what="the batch to be part-way",
        )
        with contextlib.suppress(redis.ConnectionError):  # the server hangs up as it goes
            client.shutdown(save=True)
        _out, err = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert own_redis.process is not None
    own_redis.process.wait(timeout=30)
    own_redis.process = None

    assert process.returncode == 1, err
    assert f"cannot reach Redis at {own_redis.url}" in err
    assert "running the same jobs again is safe" in err
    own_redis.start()  # same port and directory: loads what was saved
    client = own_redis.client()
    counts = check_prefixes(client, wanted)
    assert any(0 < n < JOBS_PER_ORDER for n in counts.values()), "no order was cut"
    assert any(n == JOBS_PER_ORDER for n in counts.values()), "no order was complete"
    assert any(n == 0 for n in counts.values()), "the batch was not stopped part-way"

    again = run_cli(own_redis, path)
    assert again.returncode == 0, again.stderr
    assert len(again.stdout.split()) == len(lines)
    assert set(check_prefixes(client, wanted).values()) == {JOBS_PER_ORDER}


def snapshot(client: redis.Redis) -> dict[str, Any]:
    """Every key of the Redis and its whole value."""
    readers: dict[str, Any] = {
        "string": client.get,
        "list": lambda key: client.lrange(key, 0, -1),
        "hash": client.hgetall,
        "set": client.smembers,
        "zset": lambda key: client.zrange(key, 0, -1, withscores=True),
    }
    return {text(key): readers[text(client.type(key))](key) for key in client.scan_iter()}


def run(*args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=stdin, catch_exceptions=False)


def test_running_a_complete_batch_again_enqueues_nothing(
    redis_client: redis.Redis, tmp_path: Path
) -> None:
    path = write(tmp_path / "jobs.jsonl", batch(orders=60, spread=20))
    first = run("enqueue", "batch", str(path))
    assert first.exit_code == 0, first.output
    before, size = snapshot(redis_client), redis_client.dbsize()
    assert len(set(first.stdout.split())) == 300

    again = run("enqueue", "batch", str(path))
    assert again.exit_code == 0, again.output
    assert again.stdout == first.stdout  # line for line, the first run's ids
    assert redis_client.dbsize() == size
    assert snapshot(redis_client) == before
    as_json = run("enqueue", "batch", str(path), "--json")
    assert {job["status"] for job in json.loads(as_json.stdout)} == {"duplicate"}
    assert snapshot(redis_client) == before


def test_a_full_redis_is_said_to_be_out_of_memory(
    redis_client: redis.Redis, redis_server: RedisServer
) -> None:
    lines = "\n".join(json.dumps(job_line(n, 2)) for n in range(3))
    redis_client.config_set("maxmemory-policy", "noeviction")
    redis_client.config_set("maxmemory", 1)
    try:
        with pytest.raises(QueueUnavailable) as caught:
            enqueue_tracking("o-1", "NF-1", {"isDelivered": False, "events": []})
        single = run(
            "enqueue", "tracking", "o-1", "NF-1", "-", stdin='{"isDelivered": false, "events": []}'
        )
        batched = run("enqueue", "batch", "-", stdin=lines)
    finally:
        redis_client.config_set("maxmemory", 0)
    assert redis_client.keys("*") == []
    assert (single.exit_code, batched.exit_code) == (1, 1)
    for said in (str(caught.value), single.stderr, batched.stderr):
        assert "out of memory" in said
        assert "cannot reach" not in said
    assert batched.stderr.startswith(
        f"vtex-relay: Redis at {redis_server.url} is out of memory (maxmemory reached: OOM "
    )
    # The batch's check (the enqueue script, writing nothing) is refused like an enqueue.
    assert batched.stderr.rstrip().endswith("; nothing was enqueued")


def test_an_operator_can_look_at_an_order_in_a_full_redis(redis_client: redis.Redis) -> None:
    job = enqueue_tracking("o-1", "NF-1", {"isDelivered": False, "events": []})
    redis_client.config_set("maxmemory-policy", "noeviction")
    redis_client.config_set("maxmemory", 1)
    try:
        result = CliRunner().invoke(cli, ["order", "o-1"])
    finally:
        redis_client.config_set("maxmemory", 0)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert job in result.stdout or "out of memory" in result.stderr
