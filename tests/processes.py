"""Real processes for the tests: ``tests.harness``'s, run from the repository.

Nothing here sleeps to synchronise: every wait polls a condition until a deadline.
"""

import json
from pathlib import Path
from typing import Any

from tests import harness as testing
from tests.harness import RedisServer, free_port, wait_for
from vtex_relay.store.keys import text

__all__ = ["ROOT", "RedisServer", "Worker", "free_port", "read_message", "text", "wait_for"]

ROOT = Path(__file__).resolve().parent.parent


class Worker(testing.Worker):
    """A real ``celery -A worker.app worker`` (threads pool, mingle off) run from ROOT; its
    output goes to a log file."""

    def __init__(self, env: dict[str, str], name: str, *, concurrency: int = 8) -> None:
        options = ["--without-mingle"]
        super().__init__(env, name, concurrency=concurrency, options=options, cwd=ROOT)


def read_message(raw: bytes | str) -> tuple[str, dict[str, Any]]:
    """The task name and keyword arguments of a message in the Celery queue."""
    message = json.loads(raw)
    _args, kwargs, _embed = json.loads(message["body"])
    return message["headers"]["task"], kwargs
