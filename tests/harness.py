"""Real processes for tests and benchmarks: a redis-server, the sandbox and Celery workers.

Like ``celery.contrib.testing``: for the project's tests (``tests/processes.py``) and its
benchmark (``bench/harness.py``), not for production. Every process listens on 127.0.0.1, on a
port nothing else uses (never Redis's shared 6379), and writes its output to a file of its own.
Every wait polls a condition until a deadline: nothing sleeps to synchronise. A failure raises
the class's ``error``, ``AssertionError`` unless a subclass names another (the benchmark's
``BenchError``). Importing this module needs only the worker's dependencies: the sandbox, which
needs the ``sandbox`` extra, runs in a subprocess. Process trees are read with psutil.
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
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, ClassVar, Self, TypeVar

import psutil
import redis

T = TypeVar("T")
SHARED_REDIS_PORT = 6379
LOG_TAIL = 4000  # characters of a process's log shown when it exits early


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (never Redis's 6379)."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if port != SHARED_REDIS_PORT:
            return port


def wait_for(
    condition: Callable[[], T | None],
    *,
    timeout: float = 20.0,
    what: str | Callable[[], str] = "condition",
    interval: float = 0.02,
    error: type[Exception] = AssertionError,
) -> T:
    """Poll *condition* until it returns a truthy value, and return that; raise *error* after
    *timeout* seconds. *what* names the awaited condition in the error; a callable is called
    only then (to describe the state that was reached, say)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            described = what() if callable(what) else what
            raise error(f"timed out after {timeout:.0f}s waiting for {described}")
        time.sleep(interval)  # the polling interval, not a synchronisation


# --- process trees ---------------------------------------------------------------------------


def alive(pid: int) -> bool:
    """True while *pid* exists and is not a zombie."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def descendants(pid: int) -> list[int]:
    """The pids of every live process below *pid* (not *pid* itself)."""
    try:
        return [child.pid for child in psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return []


def stop_process(
    process: subprocess.Popen[bytes],
    sig: int = signal.SIGTERM,
    *,
    timeout: float = 15.0,
    tree: Sequence[int] | None = None,
) -> None:
    """Send *sig* (if it still runs), wait up to *timeout* s, then SIGKILL it; then SIGKILL
    what is left of its process tree (*tree*: its descendants, read now if not given), such
    as a prefork pool's processes that outlived their parent."""
    tree = descendants(process.pid) if tree is None else tree
    if process.poll() is None:
        process.send_signal(sig)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
    for pid in tree:
        if alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


# --- the processes ---------------------------------------------------------------------------


class Child:
    """A process started here, its output in ``log_path``; ``stop`` ends it and its children
    (and removes the log, unless ``keep_log``)."""

    error: ClassVar[type[Exception]] = AssertionError
    log_prefix: ClassVar[str] = "vtex-relay-"
    keep_log: ClassVar[bool] = False

    def __init__(self, name: str, *, env: dict[str, str] | None, cwd: Path | None) -> None:
        self.name = name
        self.env = dict(os.environ) if env is None else env
        self.cwd = cwd  # None: this process's working directory
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = Path(tempfile.mkstemp(prefix=f"{self.log_prefix}{name}-", suffix=".log")[1])

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def spawn(self, command: Sequence[str]) -> None:
        """Start *command*, its output appended to the log, without waiting for anything."""
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command, cwd=self.cwd, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )

    def wait_until(self, ready: Callable[[], T | None], timeout: float, what: str) -> T:
        """Wait for *ready* while the process runs; ``error`` (with its log) if it exits."""

        def check() -> T | None:
            assert self.process is not None
            if self.process.poll() is not None:
                raise self.error(f"{self.name} exited:\n{self.log()[-LOG_TAIL:]}")
            return ready()

        try:
            return wait_for(check, timeout=timeout, what=what, error=self.error)
        except BaseException:
            self.stop(signal.SIGKILL)
            raise

    def stop(self, sig: int = signal.SIGTERM, tree: Sequence[int] | None = None) -> None:
        if self.process is not None:
            stop_process(self.process, sig, tree=tree)
            self.process = None
        if not self.keep_log:
            self.remove_log()

    def remove_log(self) -> None:
        self.log_path.unlink(missing_ok=True)


class RedisServer(Child):
    """A redis-server of its own on *port* (default: a free one), no persistence unless asked
    (``SHUTDOWN SAVE``, or *options* such as ``--appendonly yes``, which come last and so win);
    ``start`` again, after it stopped or was killed, loads what was saved."""

    def __init__(self, port: int | None = None, *options: str) -> None:
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.dir = tempfile.mkdtemp(prefix=f"{self.log_prefix}redis-")
        self.options = list(options)
        super().__init__(f"redis-{self.port}", env=None, cwd=None)

    def start(self) -> Self:
        """Start it (same port, same directory) and wait until it answers PING."""
        binary = shutil.which("redis-server")
        if binary is None:
            raise self.error("redis-server is not installed (make test and make bench install it)")
        options = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", self.dir]
        self.spawn([binary, "--port", str(self.port), *options, *self.options])
        client = self.client()
        self.wait_until(lambda: _pings(client), 10, f"redis-server on port {self.port}")
        return self

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)

    def stop(self, sig: int = signal.SIGTERM, tree: Sequence[int] | None = None) -> None:
        """Stop it and remove its directory."""
        super().stop(sig, tree)
        shutil.rmtree(self.dir, ignore_errors=True)

    def kill(self) -> None:
        """SIGKILL it, as a crash would: its directory (an AOF) stays, for ``start``."""
        super().stop(signal.SIGKILL)


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


class Sandbox(Child):
    """``python -m vtex_relay.sandbox --port PORT OPTIONS`` (0: any free port); ``url`` once
    it listens. Its process needs the ``sandbox`` extra; this one does not."""

    def __init__(
        self,
        *options: str,
        port: int = 0,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        super().__init__("sandbox", env=env, cwd=cwd)
        self.options = options
        self.port = port
        self.url = ""

    def start(self, timeout: float = 30.0) -> Self:
        port = ["--host", "127.0.0.1", "--port", str(self.port)]
        self.spawn([sys.executable, "-m", "vtex_relay.sandbox", *port, *self.options])
        self.url = self.wait_until(self._listening, timeout, "the sandbox to listen")
        return self

    def _listening(self) -> str | None:
        found = re.search(r"listening on (http://\S+)", self.log())
        return found.group(1) if found else None


class Worker(Child):
    """``celery -A APP worker`` (gossip off, log level INFO, *options* after) as a subprocess;
    ready once its log says so. Its log stays after ``stop``, to be read (``remove_log``)."""

    keep_log = True

    def __init__(
        self,
        env: dict[str, str],
        name: str,
        *,
        app: str = "worker.app",
        pool: str = "threads",
        concurrency: int | None = None,  # None: Celery's default (the number of CPUs)
        options: Sequence[str] = (),
        cwd: Path | None = None,
    ) -> None:
        super().__init__(name, env=env, cwd=cwd)
        self.app = app
        self.pool = pool
        self.concurrency = concurrency
        self.options = list(options)

    def launch(self) -> None:
        """Start the worker without waiting for it to be ready (see ``wait_ready``)."""
        concurrency = [] if self.concurrency is None else ["--concurrency", str(self.concurrency)]
        self.spawn(
            [
                *(sys.executable, "-m", "celery", "-A", self.app, "worker"),
                *("--hostname", f"{self.name}@%h", "--pool", self.pool, *concurrency),
                *("--without-gossip", "--loglevel", "INFO", *self.options),
            ]
        )

    def wait_ready(self, timeout: float = 60.0) -> None:
        self.wait_until(lambda: " ready." in self.log(), timeout, f"worker {self.name} to be ready")

    def start(self, timeout: float = 30.0) -> Self:
        self.launch()
        self.wait_ready(timeout)
        return self

    def wait_for_log(self, text: str, timeout: float = 15) -> str:
        """Wait until a line of the worker's log contains *text*; return that line."""

        def line() -> str | None:
            return next((ln for ln in self.log().splitlines() if text in ln), None)

        return wait_for(line, timeout=timeout, what=f"{text!r} in the log of {self.name}")


def start_workers(workers: Sequence[Worker], timeout: float = 60.0) -> None:
    """Launch them all at once (so they start together), then wait for each to be ready."""
    for worker in workers:
        worker.launch()
    for worker in workers:
        worker.wait_ready(timeout)


def stop_all(processes: Sequence[Child], sig: int = signal.SIGTERM) -> None:
    """Stop them side by side: *sig* to each, then wait for each (see ``stop_process``)."""
    running = [p for p in processes if p.process is not None]
    trees = {id(p): descendants(p.pid) for p in running}  # before the parents go
    for item in running:
        assert item.process is not None
        if item.process.poll() is None:
            item.process.send_signal(sig)
    for item in running:
        assert item.process is not None
        with contextlib.suppress(subprocess.TimeoutExpired):
            item.process.wait(timeout=15)
        item.stop(sig, trees[id(item)])


# --- a local HTTP server ---------------------------------------------------------------------


class JsonHandler(BaseHTTPRequestHandler):
    """A quiet ``http.server`` handler (no line per request) that answers JSON."""

    def read_body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length", "0")))

    def answer(self, status: int, payload: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class Intake(Child):
    """``python -m vtex_relay serve --host 127.0.0.1 --port PORT`` (0: any free port); ``url``
    once it listens. Its process needs the ``intake`` extra; this one does not."""

    def __init__(
        self, *, port: int = 0, env: dict[str, str] | None = None, cwd: Path | None = None
    ) -> None:
        super().__init__("intake", env=env, cwd=cwd)
        self.port = port
        self.url = ""

    def start(self, timeout: float = 30.0) -> Self:
        port = ["--host", "127.0.0.1", "--port", str(self.port)]
        self.spawn([sys.executable, "-m", "vtex_relay", "serve", *port])
        self.url = self.wait_until(self._listening, timeout, "the intake to listen")
        return self

    def _listening(self) -> str | None:
        found = re.search(r"intake listening on (http://\S+)", self.log())
        return found.group(1) if found else None
