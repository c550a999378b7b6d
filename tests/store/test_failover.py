"""Redis Sentinel: a failover under load loses no acknowledged job and sends no invoice twice.

One primary, one replica and three sentinels on loopback ports (redis-server from Debian's
package, ``--sentinel``). ``REDIS_URL`` names the sentinels (kombu's form) and
``ENQUEUE_WAIT_REPLICAS=1``. Producers enqueue through the Python API and through the intake,
each job again until it is acknowledged (as an ERP re-sends after a 503). Two workers deliver
to the sandbox, with its faults on. The primary is SIGKILLed mid-run; the sentinels promote the
replica; the old primary comes back (empty) and the sentinels make it the new replica, so
acknowledgements can be confirmed again. Then: every acknowledged job delivered, each invoice
POSTed once, every order's calls in order, nothing left (``tests.chaos.check_orders``); the
time from the kill to the first delivery through the new primary is reported.
"""

import os
import random
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import redis

from tests import chaos
from tests.conftest import APP_KEY, APP_TOKEN
from tests.harness import Child, Intake
from tests.processes import RedisServer, Worker, free_port, wait_for
from vtex_relay.errors import QueueUnavailable, UnknownOrder
from vtex_relay.sandbox import SandboxControl
from vtex_relay.settings import get_settings
from vtex_relay.store import connections

pytestmark = pytest.mark.processes  # Redis servers of their own

T = TypeVar("T")
SERVICE = "relay"
ORDERS = 40
FAULTS = {"rate_5xx": 0.05, "rate_apply_drop": 0.03, "latency_ms": 20}


class Sentinel(Child):
    keep_log = True  # shown if a run fails: what the sentinels decided, and when

    def __init__(self, primary_port: int) -> None:
        self.port = free_port()
        folder = Path(tempfile.mkdtemp(prefix="vtex-relay-sentinel-"))
        self.config = folder / "sentinel.conf"
        self.config.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {folder}\n"
            f"sentinel monitor {SERVICE} 127.0.0.1 {primary_port} 2\n"
            f"sentinel down-after-milliseconds {SERVICE} 1000\n"
            f"sentinel failover-timeout {SERVICE} 5000\n"
            f"sentinel parallel-syncs {SERVICE} 1\n"
        )
        super().__init__(f"sentinel-{self.port}", env=None, cwd=folder)

    def start(self) -> "Sentinel":
        self.spawn(["redis-server", str(self.config), "--sentinel"])
        client = self.client()
        self.wait_until(lambda: _answers(client), 10, f"sentinel {self.port}")
        return self

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, decode_responses=True)


def _answers(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


def primary_port(sentinel: Sentinel) -> int | None:
    try:
        address: Any = sentinel.client().sentinel_get_master_addr_by_name(SERVICE)
    except redis.RedisError:
        return None
    return int(address[1]) if address else None


def synced(server: RedisServer) -> bool:
    """*server*, a replica, has loaded its primary's data and follows it."""
    return server.client().info("replication").get("master_link_status") == "up"


def failovers(sentinels: list[Sentinel]) -> int:
    """How many times the sentinels switched the primary (the most any one of them saw)."""
    return max(s.log().count("+switch-master") for s in sentinels)


def acquainted(sentinel: Sentinel) -> bool:
    """*sentinel* knows the replica and the two other sentinels."""
    client = sentinel.client()
    replicas: Any = client.sentinel_slaves(SERVICE)
    others: Any = client.sentinel_sentinels(SERVICE)
    return len(replicas) == 1 and len(others) == 2


@dataclass(frozen=True)
class Cluster:
    primary: RedisServer
    replica: RedisServer
    sentinels: list[Sentinel]


@pytest.fixture
def cluster(settings_env: pytest.MonkeyPatch) -> Iterator[Cluster]:
    primary = RedisServer().start()
    replica = RedisServer(None, "--replicaof", "127.0.0.1", str(primary.port)).start()
    sentinels = [Sentinel(primary.port).start() for _ in range(3)]
    try:
        wait_for(
            lambda: all(acquainted(s) for s in sentinels),
            timeout=30,
            what="the sentinels to know each other and the replica",
        )
        url = ";".join(f"sentinel://127.0.0.1:{s.port}" for s in sentinels) + "/0"
        for name, value in {
            "REDIS_URL": url,
            "REDIS_SENTINEL_MASTER": SERVICE,
            "ENQUEUE_WAIT_REPLICAS": "1",
            "ENQUEUE_WAIT_TIMEOUT_MS": "1000",
        }.items():
            settings_env.setenv(name, value)
        get_settings.cache_clear()
        connections.redis_client.cache_clear()
        connections.ordering.cache_clear()
        yield Cluster(primary, replica, sentinels)
    finally:
        connections.redis_client.cache_clear()
        connections.ordering.cache_clear()
        for process in [*sentinels, primary, replica]:
            process.stop()
        for sentinel in sentinels:
            sentinel.remove_log()


def until_acknowledged(call: Callable[[], T], retry: tuple[type[Exception], ...]) -> T:
    """*call* again until it is acknowledged, as an ERP does after a 503 (within a minute)."""
    deadline = time.monotonic() + 60
    while True:
        try:
            return call()
        except retry:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)  # the ERP's pause between two sends, not a synchronisation


class Rejected(Exception):
    pass


def through_intake(url: str, order: chaos.PlannedOrder, job: chaos.PlannedJob) -> str:
    base = f"{url}/api/oms/pvt/orders/{order.order_id}/invoice"
    method, path = {
        "invoice": ("POST", base),
        "tracking-number": ("PATCH", f"{base}/{order.invoice_number}"),
        "tracking": ("PUT", f"{base}/{order.invoice_number}/tracking"),
    }[job.kind]
    headers = {"X-VTEX-API-AppKey": APP_KEY, "X-VTEX-API-AppToken": APP_TOKEN}
    try:
        answer = httpx.request(
            method, path, json=job.body, params={"an": order.account}, headers=headers, timeout=10
        )
    except httpx.TransportError as exc:
        raise Rejected(str(exc)) from None
    if answer.status_code == 503:
        raise Rejected(answer.text)
    assert answer.status_code == 200, answer.text
    receipt: str = answer.json()["receipt"]
    return receipt


@pytest.mark.parametrize("run", [1, 2, 3])
def test_a_failover_under_load_loses_nothing_acknowledged(
    run: int,
    cluster: Cluster,
    sandbox: SandboxControl,
) -> None:
    primary, replica = cluster.primary, cluster.replica
    seed = chaos.seed_for(f"failover{run}")
    rng = random.Random(seed)
    orders = chaos.plan_orders(rng, ORDERS, prefix=f"fo{run}{seed % 1000:03d}x")
    sandbox.set_faults(**FAULTS)
    env = dict(os.environ)
    intake = Intake(env=env).start()
    workers = [Worker(env, f"fw{n}").start() for n in range(2)]
    kill_after = rng.randrange(len(orders) // 4, len(orders) // 2)
    killed_at: list[float] = []
    comeback: list[RedisServer] = []

    def produce(share: list[chaos.PlannedOrder], by_intake: bool) -> None:
        for order in share:
            for job in order.jobs:

                def send(o: chaos.PlannedOrder = order, j: chaos.PlannedJob = job) -> str:
                    if by_intake:
                        return through_intake(intake.url, o, j)
                    return chaos.enqueue_job(o, j)

                order.job_ids.append(until_acknowledged(send, (Rejected, QueueUnavailable)))

    threads = [
        threading.Thread(target=produce, args=(orders[0::2], False)),
        threading.Thread(target=produce, args=(orders[1::2], True)),
    ]
    try:
        for thread in threads:
            thread.start()
        wait_for(
            lambda: sum(len(o.job_ids) == len(o.jobs) for o in orders) >= kill_after,
            timeout=120,
            what="orders acknowledged before the kill",
        )
        primary.kill()
        killed_at.append(time.time())
        wait_for(
            lambda: all(primary_port(s) == replica.port for s in cluster.sentinels),
            timeout=60,
            what="every sentinel to know the promoted replica",
        )
        # Back as the new primary's replica. Never as a primary: an empty primary that a
        # sentinel still believed in could make the promoted replica resync from it, empty.
        # And not promotable until its first sync is done: Redis 7.0 reports a replica that
        # never synced as if its link had just dropped (master_link_down_since_seconds:-1), so
        # a sentinel that found the new primary slow could promote it empty, and the new
        # primary would then resync from it and lose everything.
        back = RedisServer(
            primary.port, "--replicaof", "127.0.0.1", str(replica.port), "--replica-priority", "0"
        ).start()
        comeback.append(back)
        wait_for(lambda: synced(back), timeout=60, what="the old primary's first sync")
        back.client().config_set("replica-priority", 100)
        for thread in threads:
            thread.join(timeout=180)
        assert all(len(o.job_ids) == len(o.jobs) for o in orders), "a producer gave up"
        client = replica.client()

        def stuck() -> str:
            logs = "\n".join(s.log()[-2000:] for s in cluster.sentinels)
            roles = [server.client().info("replication") for server in (replica, *comeback)]
            try:
                report = chaos.stuck_report(client, orders)
            except UnknownOrder as exc:  # the promoted replica lost data: say what it holds
                report = f"{exc}; the promoted replica holds {client.dbsize()} keys"
            switched = failovers(cluster.sentinels)
            return f"{report}\nfailovers: {switched}\nsentinels:\n{logs}\nroles: {roles}"

        def idle() -> bool:
            try:
                return chaos.all_idle(client, orders)
            except UnknownOrder:  # an acknowledged order is gone: fail at once, saying why
                raise AssertionError(stuck()) from None

        wait_for(idle, timeout=180, interval=0.2, what=stuck)
        requests = sandbox.requests()
        findings, _ = chaos.check_orders(sandbox, client, orders, requests)
        assert not findings.violations, f"seed {seed}: {findings.violations[:10]}"
        delivered = [
            r.received_at
            for r in requests
            if r.received_at > killed_at[0] and r.method != "GET" and r.status == 200
        ]
        recovery = min(delivered) - killed_at[0]
        posts = sum(r.method == "POST" for r in requests)
        print(
            f"[failover{run}] seed={seed} orders={len(orders)} jobs={5 * len(orders)} "
            f"killed after {kill_after} orders; first VTEX call after the kill in "
            f"{recovery:.2f} s (the first delivery); POSTs={posts} violations=0"
        )
    finally:
        sandbox.set_faults(rate_5xx=0, rate_apply_drop=0, latency_ms=0)
        for worker in workers:
            worker.stop()
        intake.stop()
        for server in comeback:
            server.stop()
