"""Nothing acknowledged is lost: ENQUEUE_WAIT_REPLICAS (an enqueue confirmed by a replica, or
refused as Redis unreachable would be, and safe to send again), a Redis crash and a lost
primary with and without it; and a Redis vtex-relay must not run on (too old, evicting keys,
another key layout) refused by producers, workers and the intake, nothing written."""

import asyncio
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator

import httpx
import pytest
import redis
from click.testing import CliRunner

from tests.fake_vtex import FakeVtex
from tests.fake_vtex import settings as fake_settings
from tests.harness import Intake
from tests.intake_support import CREDENTIALS, INVOICE, ORDER
from tests.processes import ROOT, RedisServer, Worker, free_port, wait_for
from tests.seed import invoice
from vtex_relay import enqueue_invoice
from vtex_relay.cli.main import cli
from vtex_relay.deliver.attempt import run
from vtex_relay.errors import QueueUnavailable
from vtex_relay.ops.dead_letters import list_dead, order_status
from vtex_relay.produce.api import build_job
from vtex_relay.sandbox import SandboxControl
from vtex_relay.settings import get_settings
from vtex_relay.store import connections
from vtex_relay.store.keys import LAYOUT, OrderRef
from vtex_relay.store.ordering import Ordering

pytestmark = pytest.mark.processes  # Redis servers of their own

Point = Callable[..., dict[str, str]]


@pytest.fixture
def point(settings_env: pytest.MonkeyPatch) -> Iterator[Point]:
    """Points this process (and the environment given to children) at other settings."""

    def to(**env: str) -> dict[str, str]:
        for name, value in env.items():
            settings_env.setenv(name, value)
        get_settings.cache_clear()
        connections.redis_client.cache_clear()
        connections.ordering.cache_clear()
        return dict(os.environ)

    yield to
    connections.redis_client.cache_clear()
    connections.ordering.cache_clear()


def replica_of(primary: RedisServer) -> RedisServer:
    replica = RedisServer(None, "--replicaof", "127.0.0.1", str(primary.port)).start()
    wait_for(
        lambda: replica.client().info("replication").get("master_link_status") == "up",
        what="the replica in sync",
    )
    return replica


def cli_enqueue(order_id: str) -> "subprocess.CompletedProcess[str]":
    return subprocess.run(
        [sys.executable, "-m", "vtex_relay", "enqueue", "invoice", order_id, "-"],
        input=json.dumps(INVOICE),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


# --- ENQUEUE_WAIT_REPLICAS -------------------------------------------------------------------


def test_an_unconfirmed_enqueue_is_unavailable_and_a_resend_gets_the_same_id(
    point: Point,
) -> None:
    primary = RedisServer().start()
    replica = None
    env = point(REDIS_URL=primary.url, ENQUEUE_WAIT_REPLICAS="1", ENQUEUE_WAIT_TIMEOUT_MS="1000")
    intake = Intake(env=env, cwd=ROOT).start()
    try:
        # No replica: nothing can be confirmed.
        with pytest.raises(QueueUnavailable, match=r"not confirmed: by 0 of 1 replica.* 1000 ms"):
            enqueue_invoice("o-w", INVOICE)
        done = cli_enqueue("o-w")
        assert done.returncode == 1
        assert "sending it again is safe" in done.stderr
        answer = httpx.post(f"{intake.url}{ORDER}/o-w/invoice", json=INVOICE, headers=CREDENTIALS)
        assert answer.status_code == 503, answer.text
        assert int(answer.headers["Retry-After"]) > 0
        # A replica: the same job again is confirmed, with the first one's id, everywhere.
        replica = replica_of(primary)
        job_id = enqueue_invoice("o-w", INVOICE)
        assert cli_enqueue("o-w").stdout.strip() == job_id
        again = httpx.post(f"{intake.url}{ORDER}/o-w/invoice", json=INVOICE, headers=CREDENTIALS)
        assert again.status_code == 200
        assert again.json()["receipt"] == job_id
        assert replica.client().exists(OrderRef("teststore", "o-w").job_key(job_id))
    finally:
        intake.stop()
        primary.stop()
        if replica is not None:
            replica.stop()


def produce_until_killed(acked: list[tuple[str, str]], stop: threading.Event) -> None:
    """Enqueue one invoice at a time, keeping each acknowledged (order, job id)."""
    n = 0
    while not stop.is_set():
        order_id = f"o-{n}"
        try:
            acked.append((order_id, enqueue_invoice(order_id, invoice(f"NF-{n}"))))
        except QueueUnavailable:
            return
        n += 1


def lost_after(
    kill: Callable[[], None], acked: list[tuple[str, str]], client_after: Callable[[], redis.Redis]
) -> int:
    stop = threading.Event()
    producer = threading.Thread(target=produce_until_killed, args=(acked, stop))
    producer.start()
    wait_for(lambda: len(acked) >= 300, timeout=60, what="300 acknowledged jobs")
    kill()
    stop.set()
    producer.join(timeout=60)
    client = client_after()
    return sum(
        not client.exists(OrderRef("teststore", order_id).job_key(job_id))
        for order_id, job_id in acked
    )


def test_acknowledged_jobs_lost_in_a_crash_and_a_failover(point: Point) -> None:
    report = []
    # 1. Redis crashes (SIGKILL) with AOF everysec; restarted from its AOF.
    crashing = RedisServer(None, "--appendonly", "yes", "--appendfsync", "everysec").start()
    point(REDIS_URL=crashing.url, ENQUEUE_WAIT_REPLICAS="0")
    acked: list[tuple[str, str]] = []

    def restarted() -> redis.Redis:
        crashing.start()
        return crashing.client()

    lost = lost_after(crashing.kill, acked, restarted)
    report.append(f"crash, AOF everysec, no WAIT: {lost} of {len(acked)} acknowledged lost")
    crashing.stop()
    # 2. The primary is lost and its replica promoted, without and with WAIT.
    for replicas in ("0", "1"):
        primary = RedisServer().start()
        replica = replica_of(primary)
        point(REDIS_URL=primary.url, ENQUEUE_WAIT_REPLICAS=replicas)
        acked = []

        def promoted(replica: RedisServer = replica) -> redis.Redis:
            replica.client().replicaof("NO", "ONE")
            return replica.client()

        lost = lost_after(primary.kill, acked, promoted)
        report.append(
            f"primary lost, replica promoted, ENQUEUE_WAIT_REPLICAS={replicas}: "
            f"{lost} of {len(acked)} acknowledged lost"
        )
        if replicas == "1":
            assert lost == 0, report
        primary.stop()
        replica.stop()
    print("\n" + "\n".join(report))


# --- a Redis vtex-relay must not run on ------------------------------------------------------


def worker_refusing(env: dict[str, str]) -> "subprocess.CompletedProcess[str]":
    """A worker started with *env*, run until it exits (it should, at once)."""
    command = [sys.executable, "-m", "celery", "-A", "worker.app", "worker", "--pool", "threads"]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def refusals(env: dict[str, str]) -> list[str]:
    """The one line each of a producer (the CLI), a worker and the intake print, refusing."""
    lines = []
    done = cli_enqueue("o-r")
    assert done.returncode == 2, done.stderr
    lines.append(done.stderr)
    worker = worker_refusing(env)
    assert worker.returncode != 0
    lines.append(worker.stdout + worker.stderr)
    serve = [sys.executable, "-m", "vtex_relay", "serve", "--port", str(free_port())]
    intake = subprocess.run(serve, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert intake.returncode == 2
    lines.append(intake.stderr)
    for output in lines:
        assert output.strip().count("\n") == 0, output
        assert "Traceback" not in output
    return lines


def test_a_redis_that_evicts_is_refused(point: Point) -> None:
    evicting = RedisServer(None, "--maxmemory", "25mb", "--maxmemory-policy", "allkeys-lru")
    evicting.start()
    try:
        env = point(REDIS_URL=evicting.url)
        for line in refusals(env):
            assert "maxmemory-policy allkeys-lru" in line
            assert "set maxmemory-policy noeviction" in line
        assert evicting.client().dbsize() == 0
    finally:
        evicting.stop()


def test_another_layout_is_refused(point: Point) -> None:
    other = RedisServer().start()
    try:
        other.client().set(LAYOUT, "99")
        env = point(REDIS_URL=other.url)
        for line in refusals(env):
            assert "layout 99, and this version reads layout 2" in line
        assert other.client().keys() == [LAYOUT.encode()]
    finally:
        other.stop()


class OldRedis(threading.Thread):
    """A server speaking RESP that says it is Redis 6.2.14; keeps every command it gets."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.port = free_port()
        self.commands: list[str] = []
        self.loop = asyncio.new_event_loop()

    def run(self) -> None:
        self.loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        server = await asyncio.start_server(self._client, "127.0.0.1", self.port)
        async with server:
            await server.serve_forever()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            line = await reader.readline()
            if not line:
                return
            if not line.startswith(b"*"):
                continue
            parts = []
            for _ in range(int(line[1:])):
                size = int((await reader.readline())[1:])
                parts.append((await reader.readexactly(size + 2))[:-2].decode())
            name = parts[0].upper()
            self.commands.append(name)
            writer.write(_answer(name))
            await writer.drain()


def _answer(name: str) -> bytes:
    """What Redis 6.2 answers, in RESP3 (redis-py asks for it with HELLO 3)."""
    if name == "HELLO":
        pairs = [b"server", b"redis", b"version", b"6.2.14", b"mode", b"standalone"]
        return b"%4\r\n" + b"".join(b"+%s\r\n" % p for p in pairs) + b"+proto\r\n:3\r\n"
    if name == "INFO":  # a verbatim string
        text = b"txt:redis_version:6.2.14\r\nmaxmemory_policy:noeviction\r\n"
        return b"=%d\r\n%s\r\n" % (len(text), text)
    if name == "PING":
        return b"+PONG\r\n"
    if name in ("CLIENT", "SELECT"):
        return b"+OK\r\n"
    if name == "GET":
        return b"_\r\n"
    if name == "EXISTS":
        return b":0\r\n"
    return b"-ERR unknown command\r\n"


def test_a_redis_older_than_7_is_refused(point: Point) -> None:
    old = OldRedis()
    old.start()
    env = point(REDIS_URL=f"redis://127.0.0.1:{old.port}/0")
    done = cli_enqueue("o-old")
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "vtex-relay: Redis 6.2.14 is too old: vtex-relay needs Redis 7.0 or newer (its scripts "
        "are a function library); upgrade Redis"
    )
    worker = worker_refusing(env)
    assert worker.returncode != 0
    assert "Redis 6.2.14 is too old" in worker.stderr
    assert "Traceback" not in worker.stderr
    writes = {"SET", "EVAL", "EVALSHA", "FCALL", "FUNCTION", "HSET", "LPUSH", "RPUSH", "SADD"}
    writes |= {"ZADD", "SCRIPT"}
    assert not writes & set(old.commands), old.commands


# --- the layout before this one --------------------------------------------------------------


def test_the_previous_layout_is_refused_then_migrated(
    redis_client: redis.Redis, sandbox: SandboxControl
) -> None:
    ids = [enqueue_invoice(f"o-m{n}", invoice(f"NF-{n}")) for n in range(3)]
    # What the previous version left: no stamp, no heads, no counters, no enqueue time.
    redis_client.delete(LAYOUT, "vr:account:teststore:heads", "vr:account:teststore:stats")
    for n, job_id in enumerate(ids):
        redis_client.hdel(OrderRef("teststore", f"o-m{n}").job_key(job_id), "t")
    connections.ordering.cache_clear()
    try:
        done = cli_enqueue("o-m9")
        assert done.returncode == 2
        assert "earlier layout (no layout stamp): run `vtex-relay migrate`" in done.stderr
        migrated = CliRunner().invoke(cli, ["migrate"])
        assert migrated.exit_code == 0, migrated.output
        assert migrated.stdout.strip() == "migrated to layout 2: 3 live order head(s) indexed"
        assert redis_client.zcard("vr:account:teststore:heads") == 3
        assert CliRunner().invoke(cli, ["migrate"]).stdout.startswith("already at layout 2")
        worker = Worker(dict(os.environ), "wmig").start()
        try:
            wait_for(lambda: len(sandbox.requests(method="POST")) == 3, what="the 3 delivered")
        finally:
            worker.stop()
        assert redis_client.zcard("vr:account:teststore:heads") == 0
    finally:
        connections.ordering.cache_clear()


# --- no send without a confirmed claim; no half-done script ------------------------------------


def test_a_claim_not_confirmed_sends_nothing(redis_client: redis.Redis) -> None:
    """With ENQUEUE_WAIT_REPLICAS and no replica to confirm the claim, the worker does not call
    VTEX: a failover could hand the job to another worker, which would not reconcile."""
    job = build_job("invoice", "o-claim", invoice("NF-1"), account="teststore")
    list(Ordering(redis_client).enqueue([job]))
    waiting = Ordering(redis_client, wait_replicas=1, wait_timeout_ms=50)
    vtex = FakeVtex()
    with vtex.client(fake_settings()) as client:
        result = run(job, client=client, ordering=waiting, settings=fake_settings())
    assert result.ending == "not-sent"
    assert result.text == (
        "not sent: the claim is not confirmed by 0 of 1 replica(s) within 50 ms "
        "(ENQUEUE_WAIT_REPLICAS)"
    )
    assert vtex.requests == []


def test_a_job_without_its_body_ends_dead_and_the_script_that_met_it_completes(
    redis_client: redis.Redis,
) -> None:
    """Data of an earlier layout (a job without its body) never fails a script half-way: the
    pump that meets it dead-letters it, saying why; a replay of it is refused, nothing changed."""
    ordering = Ordering(redis_client)
    first, second = (
        build_job("invoice", f"o-body{n}", invoice(f"NF-{n}"), account="teststore")
        for n in range(2)
    )
    list(ordering.enqueue([first]))
    # The second waits in the account's line (the first holds the window of one).
    small = Ordering(redis_client, window=1)
    list(small.enqueue([second]))
    ref = OrderRef.of(second)
    redis_client.delete(ref.body_key(second.job_id))
    token = "t-1"
    assert small.claim(OrderRef.of(first), first.job_id, token, 30).verdict == "run"
    # The claim pumped the line: the bodyless job is dead, with the reason, not pushed.
    status = order_status(redis_client, ref)
    assert status.jobs[0].state == "dead"
    assert "the job has no body in Redis" in status.jobs[0].attempts[-1].message
    assert [record.job_id for record in list_dead(redis_client)] == [second.job_id]
    before = redis_client.hgetall(ref.job_key(second.job_id))
    assert small.resolve(ref, second.job_id, "replay") == (
        "dead, without its body (data of an earlier layout?): discard it"
    )
    assert redis_client.hgetall(ref.job_key(second.job_id)) == before
    assert small.resolve(ref, second.job_id, "discard") is None
