"""The sweep that runs inside every worker process: due retries, expired leases, lost messages.

Every ``SWEEP_INTERVAL`` seconds it re-publishes the jobs whose retry wait is over, the
jobs whose worker's lease ran out (the worker died or hung mid-call), and the jobs whose
message was lost after ``LEASE_SECONDS`` (a worker killed between kombu taking the message
off the queue and the claim, a revoked task, a Redis write lost). Each sweep is one
atomic script, so any number of workers can sweep at once; a job is dispatched by one of
them only. A job stranded by a dead worker therefore runs again within
``LEASE_SECONDS + SWEEP_INTERVAL``; kombu's own redelivery (ack emulation) is off.
"""

import logging
import threading
from typing import Any

from celery.signals import worker_ready, worker_shutdown
from redis.exceptions import RedisError

from vtex_relay.settings import get_settings
from vtex_relay.store.connections import ordering

log = logging.getLogger(__name__)

_stop = threading.Event()
MIN_WAIT = 0.01  # at most 100 sweeps a second, however many accounts are due


def sweep_forever(interval: float, lost_after: float, worker: str = "", beat: float = 10) -> None:
    """Sweep until the worker shuts down; a Redis outage is logged and waited out. Each sweep
    records *worker*'s heartbeat (``vtex-relay health``, the metrics): at least every *beat*
    seconds."""
    while not _stop.is_set():
        wait = min(interval, beat)
        try:
            swept = ordering().sweep(lost_after, worker=worker)
        except RedisError as exc:
            log.warning("sweep failed, Redis unreachable (%s); trying again", exc)
        else:
            if swept.recovered or swept.replaced:
                log.info(
                    "sweep: %d jobs recovered from expired leases, %d lost messages replaced",
                    swept.recovered,
                    swept.replaced,
                )
            if swept.retried or swept.released:
                log.debug(
                    "sweep: %d retries due, %d throttled jobs released",
                    swept.retried,
                    swept.released,
                )
            if swept.next_due is not None:
                # An account's line is due sooner (its rate or pause lets it send): wake then,
                # so that it sends at its rate, not in bursts a sweep interval apart.
                wait = min(interval, max(swept.next_due, MIN_WAIT))
        _stop.wait(wait)


@worker_ready.connect
def _start(sender: Any = None, **_: Any) -> None:
    _stop.clear()
    settings = get_settings()
    name = str(getattr(sender, "hostname", "") or "")  # the worker's node name, as Celery's
    beat = settings.heartbeat_timeout / 3  # two missed beats are not yet a dead worker
    args = (settings.sweep_interval, settings.lease_seconds, name, beat)
    threading.Thread(target=sweep_forever, args=args, name="vtex-relay-sweep", daemon=True).start()


@worker_shutdown.connect
def _stop_sweeping(**_: Any) -> None:
    _stop.set()
