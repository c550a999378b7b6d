"""The Celery application, configured once from the settings.

``celery -A worker.app worker`` finds ``app`` here. A missing or invalid setting ends the
program with one line naming the variable (``SystemExit``) instead of a traceback.
"""

import logging
from typing import Any

from celery import Celery
from celery.signals import after_setup_logger, after_setup_task_logger, celeryd_init
from redis.exceptions import RedisError

from config import Settings, get_settings
from vtex_relay.errors import ConfigurationError
from vtex_relay.redaction import Redactor, install
from vtex_relay.store import connections
from vtex_relay.store.messages import QUEUE
from worker import flower_guard


def create_app(settings: Settings) -> Celery:
    """Build the Celery app for *settings*; tasks are registered from ``tasks.delivery``."""
    app = Celery(
        "vtex_relay",
        broker=settings.redis_url,
        include=["tasks.delivery", "vtex_relay.deliver.sweep"],
    )
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        # Outcomes are recorded by vtex-relay itself and shown by Flower from events;
        # a result backend would only duplicate them.
        task_ignore_result=True,
        task_default_queue=QUEUE,
        # Flower builds its task views from these events. Off by default, as in Celery: Flower
        # turns them on in every worker while it runs (enable_events every 5 s), so they cost
        # CPU (~15% of a worker's, bench/results.md) only while someone watches; TASK_EVENTS=true
        # sends them from the first job. No "task-sent" event: it costs
        # the producer a second Redis write and a repr per job (enqueue ~30% slower); a job
        # shows in Flower from the moment a worker receives it.
        worker_send_task_events=settings.task_events,
        task_send_sent_event=False,
        # The guarantees come from vtex_relay.store.ordering, not from Celery (docs/delivery.md).
        # Celery's part: one message reserved per thread (the backlog stays in Redis, not in
        # worker memory), no Celery retries or ETAs, and the ack as a task starts: a claimed
        # job is covered by its lease and an unclaimed one by the lost-message sweep, so a late
        # ack buys nothing, and late acks pending from pool threads when the broker connection
        # drops can leave the worker consuming nothing after Redis comes back (celery#8030,
        # celery#8091; seen here with the threads pool in tests/store/test_redis_restart.py).
        task_acks_late=False,
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        broker_transport_options={
            **_sentinel_options(settings),
            "socket_connect_timeout": 5,
            # kombu's ack emulation copies every message into an "unacked" hash in Redis and
            # deletes it at the ack: two more Redis transactions a job (a quarter of a worker's
            # CPU, bench/results.md), and a redelivery after visibility_timeout that runs a
            # slow job twice. vtex-relay needs neither: a claimed job is covered by its lease,
            # a lost message by the sweep (docs/delivery.md). Without it, kombu still counts
            # prefetched messages in memory (the prefetch limit holds) and puts them back on the
            # queue when a worker shuts down.
            "ack_emulation": False,
        },
    )
    return app


def _sentinel_options(settings: Settings) -> dict[str, Any]:
    # A sentinel:// REDIS_URL: kombu asks the sentinels for the primary, and again after a
    # failover; the URL's password is the primary's, the sentinels' is their own setting.
    if settings.sentinels() is None:
        return {}
    options: dict[str, Any] = {"master_name": settings.redis_sentinel_master}
    if settings.redis_sentinel_password is not None:
        secret = settings.redis_sentinel_password.get_secret_value()
        options["sentinel_kwargs"] = {"password": secret}
    return options


def _settings_or_exit() -> Settings:
    try:
        return get_settings()
    except ConfigurationError as exc:
        raise SystemExit(f"vtex-relay: {exc}") from None


def _tokens_or_exit(settings: Settings) -> list[str]:
    try:
        return settings.tokens()
    except ConfigurationError as exc:  # a token file or variable that cannot be read
        raise SystemExit(f"vtex-relay: {exc}") from None


_settings = _settings_or_exit()
app = create_app(_settings)
# Cuts every configured token (global and each account's) out of attempt records, task
# results, exceptions and log lines.
redact = Redactor(_tokens_or_exit(_settings))


@after_setup_logger.connect
@after_setup_task_logger.connect
def _redact_logs(logger: logging.Logger, **_: Any) -> None:
    install(redact, [logger, logging.getLogger()])


@after_setup_logger.connect
def _one_line_per_job(**_: Any) -> None:
    # Celery logs "received" and "succeeded" for every task; vtex-relay logs each try's
    # outcome with its order (deliver/attempt.py). Three lines a job cost ~10% of a worker's
    # CPU on the hot path; these two add nothing.
    logging.getLogger("celery.worker.strategy").setLevel(logging.WARNING)
    logging.getLogger("celery.app.trace").setLevel(logging.WARNING)


@celeryd_init.connect
def _check_credentials(**_: Any) -> None:
    # A worker without credentials (or with an account whose token cannot be read) would fail
    # jobs; refuse to start instead.
    try:
        get_settings().require_credentials()
        connections.ordering()  # preflight: Redis's version, eviction policy, key layout
    except ConfigurationError as exc:
        raise SystemExit(f"vtex-relay: {exc}") from None
    except RedisError as exc:  # not up yet: the worker waits for it, and checks on first use
        logging.getLogger(__name__).warning("Redis not reachable at start (%s)", exc)


# `celery -A worker.app flower`: on 127.0.0.1 by default, never unauthenticated elsewhere.
flower_guard.install()
