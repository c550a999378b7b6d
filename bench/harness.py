"""Processes for the benchmark: redis-server, the sandbox and Celery workers.

Every wait polls a condition until a deadline; every process started here is stopped by its
owner's ``stop`` (callers use ``try``/``finally``). Nothing targets anything but 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import redis

from bench.procstats import alive, descendants

T = TypeVar("T")
ROOT = Path(__file__).resolve().parent.parent


class BenchError(RuntimeError):
    """A process did not start, a run did not finish in time, or a result is inconsistent."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (never 6379)."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if port != 6379:
            return port


def wait_for(
    condition: Callable[[], T | None], *, timeout: float, what: str, interval: float = 0.02
) -> T:
    """Poll *condition* until it returns something truthy; ``BenchError`` after *timeout* s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def _stop_process(
    process: subprocess.Popen[bytes], timeout: float = 15.0, tree: list[int] | None = None
) -> None:
    """SIGTERM, wait up to *timeout*, then SIGKILL what is left of its process tree."""
    tree = descendants(process.pid) if tree is None else tree
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    for pid in tree:  # children that outlived their parent (a prefork pool's processes)
        if alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


# --- redis-server ----------------------------------------------------------------------------


class _Child:
    """A subprocess the benchmark started: its pid, and stopping it (see ``_stop_process``)."""

    process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def _stop_child(self, tree: list[int] | None = None) -> None:
        if self.process is not None:
            _stop_process(self.process, tree=tree)
            self.process = None


class RedisServer(_Child):
    """A redis-server of the benchmark's own on a free port, no persistence."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.dir = tempfile.mkdtemp(prefix="vtex-relay-bench-redis-")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            raise BenchError("redis-server is not installed (bench/run.sh installs it)")
        command = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                   "--appendonly", "no", "--dir", self.dir]  # fmt: skip
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        client = self.client()
        wait_for(lambda: _pings(client), timeout=10, what=f"redis-server on port {self.port}")
        return self

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)

    def version(self) -> str:
        info = self.client().info("server")
        return str(info.get("redis_version", "?"))

    def stop(self) -> None:
        self._stop_child()
        shutil.rmtree(self.dir, ignore_errors=True)


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


# --- the sandbox -----------------------------------------------------------------------------


class Sandbox(_Child):
    """``python -m vtex_relay.sandbox --port 0`` as a subprocess; the port is read from stdout."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""
        self._log = Path(tempfile.mkstemp(prefix="vtex-relay-bench-sandbox-", suffix=".log")[1])

    def start(self) -> Sandbox:
        command = [sys.executable, "-m", "vtex_relay.sandbox", "--host", "127.0.0.1",
                   "--port", "0", "--seed", "1"]  # fmt: skip
        with self._log.open("wb") as log:
            self.process = subprocess.Popen(
                command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ)
            )
        line = wait_for(self._listening, timeout=30, what="the sandbox to listen")
        self.url = line
        return self

    def _listening(self) -> str | None:
        assert self.process is not None
        if self.process.poll() is not None:
            raise BenchError(f"the sandbox exited:\n{self._log.read_text(errors='replace')}")
        found = re.search(r"listening on (http://\S+)", self._log.read_text(errors="replace"))
        return found.group(1) if found else None

    def stop(self) -> None:
        self._stop_child()
        self._log.unlink(missing_ok=True)


# --- Celery workers --------------------------------------------------------------------------


class Worker(_Child):
    """One ``celery -A APP worker`` subprocess, output to a log file, ready when it says so."""

    def __init__(self, app: str, name: str, options: Sequence[str], env: dict[str, str]) -> None:
        self.app = app
        self.name = name
        self.options = list(options)
        self.env = env
        self.log_path = Path(tempfile.mkstemp(prefix=f"vtex-relay-bench-{name}-", suffix=".log")[1])
        self.process: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0

    def launch(self) -> Worker:
        """Start the process without waiting for it to be ready (see ``wait_ready``)."""
        command = [sys.executable, "-m", "celery", "-A", self.app, "worker",
                   "--hostname", f"{self.name}@%h", *self.options]  # fmt: skip
        with self.log_path.open("wb") as log:
            self.started_at = time.time()
            self.process = subprocess.Popen(
                command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        return self

    def wait_ready(self, timeout: float = 60.0) -> None:
        wait_for(self._ready, timeout=timeout, what=f"worker {self.name} to be ready")

    def _ready(self) -> bool:
        assert self.process is not None
        text = self.log_path.read_text(errors="replace")
        if self.process.poll() is not None:
            raise BenchError(f"worker {self.name} exited:\n{text[-3000:]}")
        return " ready." in text

    def errors(self) -> list[str]:
        """Log lines at ERROR/CRITICAL level or with a traceback (the first 5)."""
        lines = self.log_path.read_text(errors="replace").splitlines()
        bad = [ln for ln in lines if "ERROR/" in ln or "CRITICAL/" in ln or "Traceback" in ln]
        return bad[:5]

    def stop(self, tree: list[int] | None = None) -> None:
        self._stop_child(tree)

    def remove_log(self) -> None:
        self.log_path.unlink(missing_ok=True)


def start_workers(workers: Sequence[Worker], timeout: float = 60.0) -> None:
    """Launch all at once (so they start together), then wait for each to be ready."""
    for worker in workers:
        worker.launch()
    for worker in workers:
        worker.wait_ready(timeout)


def stop_workers(workers: Sequence[Worker]) -> None:
    """Stop every worker (in parallel) and its pool processes; remove the logs."""
    trees = {id(w): descendants(w.pid) for w in workers if w.process is not None}
    for worker in workers:
        if worker.process is not None and worker.process.poll() is None:
            worker.process.send_signal(signal.SIGTERM)  # all shut down in parallel
    for worker in workers:
        worker.stop(trees.get(id(worker)))
        worker.remove_log()
