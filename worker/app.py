"""The Celery application, configured once from the settings.

``celery -A worker.app worker`` finds ``app`` here. A missing or invalid setting ends the
program with one line naming the variable (``SystemExit``) instead of a traceback.
"""

from typing import Any

from celery import Celery
from celery.signals import celeryd_init

from config import Settings, get_settings
from vtex_relay.errors import ConfigurationError
from vtex_relay.messages import QUEUE



def create_app(settings: Settings) -> Celery:
    """Build the Celery app for *settings*; tasks are registered from ``tasks.delivery``."""
    app = Celery("vtex_relay", broker=settings.redis_url, include=["tasks.delivery"])
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        # Outcomes are recorded by vtex-relay itself and shown by Flower from events;
        # a result backend would only duplicate them.
        task_ignore_result=True,
        task_default_queue=QUEUE,
        # Flower builds its task views from these events. No "task-sent" event: it costs the
        # producer a second Redis write and a repr per job (enqueue ~30% slower); a job shows
        # in Flower from the moment a worker receives it.
        worker_send_task_events=True,
        task_send_sent_event=False,
        # Ack after the call, not before: a worker that dies mid-call leaves the message to
        # be redelivered instead of losing it. One message reserved per slot keeps the
        # backlog in Redis rather than in a worker's memory.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        # A producer with Redis down fails within seconds instead of hanging.
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5},
        broker_transport_options={"socket_connect_timeout": 5},
    )
    return app


def _settings_or_exit() -> Settings:
    try:
        return get_settings()
    except ConfigurationError as exc:
        raise SystemExit(f"vtex-relay: {exc}") from None


app = create_app(_settings_or_exit())


@celeryd_init.connect
def _check_credentials(**_: Any) -> None:
    # A worker without credentials would fail every job; refuse to start instead.
    try:
        get_settings().require_credentials()
    except ConfigurationError as exc:
        raise SystemExit(f"vtex-relay: {exc}") from None
