"""The shared state of one benchmark invocation: Redis, the sandbox, the environment, the plan."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

import redis

from bench.harness import BenchError, RedisServer, Sandbox
from bench.procstats import cpu_seconds
from bench.workload import ACCOUNT
from tests.harness import wait_for
from vtex_relay.sandbox.control import RecordedRequest, SandboxControl


@dataclass(frozen=True)
class Plan:
    """Sizes and repeat counts; ``quick`` is the ~2-minute smoke run."""

    quick: bool
    repeats: int
    enqueue_jobs: int
    run_seconds: float  # target duration of one end-to-end run
    max_jobs: int  # no end-to-end run is bigger than this
    growth_sizes: tuple[int, ...]
    backlog_jobs: int  # jobs waiting in Redis for the RSS measurement
    latency_seconds: float
    concurrencies: tuple[int, ...]

    @classmethod
    def make(cls, quick: bool, repeats: int | None) -> Plan:
        if quick:
            return cls(True, repeats or 1, 5_000, 4.0, 8_000, (1_000, 5_000), 20_000, 6.0, (64,))
        return cls(
            False,
            repeats or 3,
            20_000,
            8.0,
            40_000,
            (1_000, 10_000, 100_000),
            100_000,
            15.0,
            (64, 32),
        )


@dataclass
class Context:
    """What every scenario uses; ``setup`` sets the environment before vtex-relay is imported."""

    plan: Plan
    redis_server: RedisServer = field(default_factory=RedisServer)
    sandbox: Sandbox = field(default_factory=Sandbox)
    control: SandboxControl | None = None
    env: dict[str, str] = field(default_factory=dict)
    run_counter: int = 0

    def setup(self) -> None:
        self.redis_server.start()
        self.sandbox.start()
        self.control = SandboxControl(self.sandbox.url, timeout=120)
        self.env = {
            **os.environ,
            "REDIS_URL": self.redis_server.url,
            "VTEX_ACCOUNT": ACCOUNT,
            "VTEX_APP_KEY": "bench-app-key",
            "VTEX_APP_TOKEN": "bench-app-token",
            "VTEX_BASE_URL": self.sandbox.url + "/{account}",
            "VTEX_TIMEOUT": "10",
            "VTEX_RATE_LIMIT": "0",  # no client-side limiter capping throughput
            # Like for like: plain Celery's task makes the POST only. The order-total check's
            # GET is measured on its own by bench/order_total.py.
            "VERIFY_ORDER_TOTAL": "false",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        os.environ.update(self.env)  # this process's producer reads the same settings

    def teardown(self) -> None:
        if self.control is not None:
            self.control.close()
        self.sandbox.stop()
        self.redis_server.stop()

    @property
    def sb(self) -> SandboxControl:
        assert self.control is not None
        return self.control

    def redis(self) -> redis.Redis:
        return self.redis_server.client()

    def prefix(self) -> str:
        """A fresh order-id prefix, so no two runs share an order."""
        self.run_counter += 1
        return f"R{self.run_counter:03d}"

    def fresh(self, latency_ms: float) -> int:
        """Empty Redis and the sandbox, set the sandbox's latency; return the log's last seq."""
        self.redis().flushall()
        self.sb.reset()
        self.sb.set_faults(latency_ms=latency_ms)
        seq: int = self.sb.health()["lastSeq"]
        return seq

    def posts_ok(self) -> int:
        counters: dict[str, dict[str, int]] = self.sb.stats()["counters"]
        return counters.get("POST", {}).get("200", 0)

    def post_errors(self) -> int:
        counters: dict[str, dict[str, int]] = self.sb.stats()["counters"]
        return sum(n for status, n in counters.get("POST", {}).items() if status != "200")

    def wait_applied(self, count: int, timeout: float) -> None:
        """Wait until the sandbox has answered 200 to *count* POSTs."""

        def done() -> bool:
            if self.post_errors():
                raise BenchError(f"the sandbox refused POSTs: {self.sb.stats()['counters']}")
            return self.posts_ok() >= count

        wait_for(
            done, timeout=timeout, what=f"{count} POSTs applied", interval=0.1, error=BenchError
        )

    def posts(self, since: int) -> list[RecordedRequest]:
        return self.sb.requests(method="POST", since=since)

    def redis_commands(self) -> int:
        return int(self.redis().info("stats")["total_commands_processed"])

    def redis_memory(self) -> int:
        return int(self.redis().info("memory")["used_memory"])

    def cpu(self) -> dict[str, float]:
        return {
            "sandbox": cpu_seconds(self.sandbox.pid),
            "redis": cpu_seconds(self.redis_server.pid),
        }


def wall() -> float:
    return time.time()


def info(message: str, **_: Any) -> None:
    """Progress on stderr, so stdout is only the table."""
    import sys

    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
