"""Real processes for the tests: a redis-server on its own port and Celery workers.

Nothing here sleeps to synchronise: every wait polls a condition until a deadline.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import redis

T = TypeVar("T")
ROOT = Path(__file__).resolve().parent.parent


def text(value: object) -> str:
    """A Redis reply as text (redis-py types replies as ``bytes | str``)."""
    return value.decode() if isinstance(value, bytes) else str(value)


def free_port() -> int:
    """A TCP port nothing listens on right now (never Redis's shared 6379)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for(
    condition: Callable[[], T | None],
    *,
    timeout: float = 20.0,
    what: str | Callable[[], str] = "condition",
    interval: float = 0.02,
) -> T:
    """Poll *condition* until it returns a truthy value; fail after *timeout* seconds.

    *what* names the awaited condition in the failure; a callable is called only then (to
    describe the state that was reached, say).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            described = what() if callable(what) else what
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {described}")
        time.sleep(interval)  # the polling interval, not a synchronisation


class RedisServer:
    """A redis-server of the tests' own, on a free port, that tests may stop and restart."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.dir = tempfile.mkdtemp(prefix="vtex-relay-redis-")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start it and wait until it answers PING."""
        binary = shutil.which("redis-server")
        assert binary, "redis-server is not installed (scripts/test.sh installs it)"
        # No persistence by default; a test that restarts Redis saves first (SHUTDOWN SAVE).
        options = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", self.dir]
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), *options], stdout=subprocess.DEVNULL
        )
        client = self.client()
        wait_for(lambda: _pings(client), timeout=10, what=f"redis-server on port {self.port}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


class Worker:
    """A real ``celery -A worker.app worker`` subprocess; its output goes to a log file."""

    def __init__(self, env: dict[str, str], name: str, *, concurrency: int = 8) -> None:
        self.env = env
        self.name = name
        self.concurrency = concurrency
        self.log_path = Path(tempfile.mkstemp(prefix=f"vtex-relay-{name}-", suffix=".log")[1])
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> "Worker":
        command = [
            sys.executable, "-m", "celery", "-A", "worker.app", "worker",
            "--pool", "threads", "--concurrency", str(self.concurrency),
            "--hostname", f"{self.name}@%h", "--without-gossip", "--without-mingle",
            "--loglevel", "INFO",
        ]  # fmt: skip
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        try:
            wait_for(self._ready, timeout=30, what=f"worker {self.name} to be ready")
        except BaseException:
            self.stop(signal.SIGKILL)
            raise
        return self

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"worker {self.name} exited:\n{self.log()}")
        return " ready." in self.log()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, timeout: float = 15) -> str:
        """Wait until a line of the worker's log contains *text*; return that line."""

        def line() -> str | None:
            return next((ln for ln in self.log().splitlines() if text in ln), None)

        return wait_for(line, timeout=timeout, what=f"{text!r} in the log of {self.name}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


def child_env(**overrides: str) -> dict[str, str]:
    """The environment for a child process: the test settings plus *overrides*."""
    return {**os.environ, **overrides}
