"""Processes for the benchmark: ``tests.harness``'s, failing with ``BenchError``.

Every wait polls a condition until a deadline; every process started here is stopped by its
owner's ``stop`` (callers use ``try``/``finally``). Nothing targets anything but 127.0.0.1.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from tests import harness as testing
from tests.harness import stop_all

ROOT = Path(__file__).resolve().parent.parent


class BenchError(RuntimeError):
    """A process did not start, a run did not finish in time, or a result is inconsistent."""


class RedisServer(testing.RedisServer):
    """A redis-server of the benchmark's own on a free port, no persistence."""

    error = BenchError
    log_prefix = "vtex-relay-bench-"

    def version(self) -> str:
        info = self.client().info("server")
        return str(info.get("redis_version", "?"))


class Sandbox(testing.Sandbox):
    """The sandbox on any free port, its faults' RNG seeded."""

    error = BenchError
    log_prefix = "vtex-relay-bench-"

    def __init__(self) -> None:
        super().__init__("--seed", "1", cwd=ROOT)


class Worker(testing.Worker):
    """A worker of *app* (vtex-relay's or plain Celery's); ``errors`` reads its log."""

    error = BenchError
    log_prefix = "vtex-relay-bench-"

    def errors(self) -> list[str]:
        """Log lines at ERROR/CRITICAL level or with a traceback (the first 5)."""
        lines = self.log().splitlines()
        bad = [ln for ln in lines if "ERROR/" in ln or "CRITICAL/" in ln or "Traceback" in ln]
        return bad[:5]


def stop_workers(workers: Sequence[Worker]) -> None:
    """Stop every worker (in parallel) and its pool processes; remove the logs."""
    stop_all(workers)
    for worker in workers:
        worker.remove_log()


def cli_batch(env: dict[str, str], path: Path) -> float:
    """Seconds for ``vtex-relay enqueue batch PATH``, from its process start to its exit."""
    script = Path(sys.executable).parent / "vtex-relay"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "vtex_relay"]
    started = time.perf_counter()
    done = subprocess.run(
        [*command, "enqueue", "batch", str(path)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        timeout=600,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise BenchError(f"vtex-relay enqueue batch exited {done.returncode}: {done.stderr!r}")
    return elapsed
