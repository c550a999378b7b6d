"""Celery task messages, built ahead of time so that a Redis script can publish them.

A job's message is pushed onto the Celery queue by the same atomic script that makes the
job ready (enqueue, the previous job finishing, a retry falling due, an operator's replay).
That is what keeps "the job is ready" and "a worker will get it" one step: no crash can
leave one without the other. So the message cannot be published through kombu, which
writes it itself; it is built here instead, in the form kombu's Redis transport writes
(a JSON envelope holding the base64 body), with the headers from Celery's own
``app.amqp.as_task_v2``. ``tests/test_messages.py`` checks it against what kombu writes.
"""

import base64
import json
from functools import lru_cache
from typing import Any

from celery import Celery
from pydantic_core import to_json

from vtex_relay.jobs import Job

# Each dispatch replaces it with a fresh tag (job id and dispatch count), so kombu's
# in-memory bookkeeping of a worker's messages never mixes up two deliveries of one job.
DELIVERY_TAG_PLACEHOLDER = "__VTEX_RELAY_DELIVERY_TAG__"

# The Celery queue (a Redis list) that workers consume.
QUEUE = "vtex-relay"


@lru_cache(maxsize=1)
def message_app() -> Celery:
    """A Celery app that only builds messages: the format is Celery's, whatever the worker's
    configuration, so a producer needs neither the worker app nor a broker connection."""
    return Celery("vtex_relay", set_as_current=False)


def build_message(app: Celery, job: Job, queue: str) -> str:
    """The message that runs *job* (task named after its kind), as kombu would LPUSH it."""
    kwargs = job.message_kwargs()
    # Flower shows kwargsrepr: the envelope without the body, which holds customer data.
    summary = to_json({k: v for k, v in kwargs.items() if k != "body"}).decode()
    headers, properties, body, _sent_event = app.amqp.as_task_v2(
        job.job_id, job.kind, kwargs=kwargs, argsrepr="()", kwargsrepr=summary
    )
    # pydantic-core's JSON encoder: several times faster than json.dumps on a message, and a
    # batch builds one a line; compact JSON that kombu reads like its own.
    payload = to_json(body)
    return to_json(
        {
            "body": base64.b64encode(payload).decode(),
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": headers,
            "properties": {
                **properties,
                "delivery_mode": 2,
                "delivery_info": {"exchange": "", "routing_key": queue},
                "priority": 0,
                "body_encoding": "base64",
                "delivery_tag": DELIVERY_TAG_PLACEHOLDER,
            },
        }
    ).decode()


def read_message(raw: bytes | str) -> tuple[str, dict[str, Any]]:
    """The task name and keyword arguments of a queued message (for tests and operators)."""
    message = json.loads(raw)
    _args, kwargs, _embed = json.loads(base64.b64decode(message["body"]))
    return message["headers"]["task"], kwargs
