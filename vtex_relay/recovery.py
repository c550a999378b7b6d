"""The sweep that runs inside every worker process: due retries and expired leases.

Every ``SWEEP_INTERVAL`` seconds it re-publishes the jobs whose retry wait is over and the
jobs whose worker's lease ran out (the worker died or hung mid-call). Each sweep is one
atomic script, so any number of workers can sweep at once; a job is dispatched by one of
them only. A job stranded by a dead worker therefore runs again within
``LEASE_SECONDS + SWEEP_INTERVAL`` — not after kombu's visibility timeout.
"""

import logging
import threading
from typing import Any

from celery.signals import worker_ready, worker_shutdown
from redis.exceptions import RedisError

from config import get_settings
from vtex_relay.connections import ordering

log = logging.getLogger(__name__)

_stop = threading.Event()


def sweep_forever(interval: float) -> None:
    """Sweep until the worker shuts down; a Redis outage is logged and waited out."""
    while not _stop.is_set():
        try:
            retried, recovered = ordering().sweep()
        except RedisError as exc:
            log.warning("sweep failed, Redis unreachable (%s); trying again", exc)
        else:
            if retried or recovered:
                log.info("sweep: %d retries due, %d jobs recovered from expired leases",
                         retried, recovered)  # fmt: skip
        _stop.wait(interval)


@worker_ready.connect
def _start(**_: Any) -> None:
    _stop.clear()
    interval = get_settings().sweep_interval
    threading.Thread(
        target=sweep_forever, args=(interval,), name="vtex-relay-sweep", daemon=True
    ).start()


@worker_shutdown.connect
def _stop_sweeping(**_: Any) -> None:
    _stop.set()
