"""Requests that arrive together share one pipelined ``enqueue_many`` call.

Redis is called from one thread of its own, so the event loop goes on parsing requests
while a call waits on Redis; whatever arrived meanwhile goes in the next call, as one pipeline.
Under light load that is one job a call (no added wait); under heavy load, many jobs a round
trip. Each job is still decided on its own: ``enqueue_many`` gives each its verdict, and a
job ``skipped`` only because an earlier job of its order in the same call was refused is sent
again in the next call, where it is decided alone (as it would have been without company).
``QueueUnavailable`` (Redis unreachable) is raised to every request of the failed call.
"""

import asyncio
from collections import deque
from concurrent.futures import ThreadPoolExecutor

from vtex_relay.jobs import Job
from vtex_relay.produce.api import enqueue_many
from vtex_relay.store.enqueuing import Enqueued

MAX_CALL = 1_000  # jobs in one call: one pipeline of the producer's


class Coalescer:
    """Enqueues jobs submitted from one event loop; ``close`` when done."""

    def __init__(self) -> None:
        self._pending: deque[tuple[Job, asyncio.Future[Enqueued]]] = deque()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="enqueue")
        self._running: asyncio.Task[None] | None = None

    async def enqueue(self, job: Job) -> Enqueued:
        """*job*'s verdict (``enqueued``, ``duplicate``, ``conflict``, ``failed``, ...)."""
        future: asyncio.Future[Enqueued] = asyncio.get_running_loop().create_future()
        self._pending.append((job, future))
        if self._running is None:
            self._running = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                count = min(len(self._pending), MAX_CALL)
                batch = [self._pending.popleft() for _ in range(count)]
                jobs = [job for job, _ in batch]
                try:
                    results = await loop.run_in_executor(self._executor, enqueue_many, jobs)
                except Exception as exc:  # QueueUnavailable, or a bug: every waiter hears it
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                again = []
                for (job, future), result in zip(batch, results, strict=True):
                    if result.verdict == "skipped":
                        again.append((job, future))
                    elif not future.done():  # a request cancelled by its client is done
                        future.set_result(result)
                self._pending.extendleft(reversed(again))
        finally:
            self._running = None

    def close(self) -> None:
        self._executor.shutdown(wait=True)
