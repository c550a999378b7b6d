"""Celery task messages, built by the Redis script that dispatches a job.

A job's message is pushed onto the Celery queue by the same atomic script that gives the job
its turn (``common.lua``, ``dispatch``). That is what keeps "the job is ready" and "a worker
will get it" one step: no crash can leave one without the other. So the message cannot be
published through kombu, which writes it itself. Nor is it stored with the job: a waiting job
keeps only its body and envelope, and the message is written when the job is dispatched.

This module writes, once per process, a Lua function ``build_message`` that the scripts
share: the message Celery's own ``app.amqp.as_task_v2`` makes for a task, in the form kombu's
Redis transport writes (a JSON envelope), cut at the places that differ from job to job (task
name and id, keyword arguments, delivery tag). The body is JSON text, not base64 (no
``body_encoding``: kombu then takes it as it is). ``tests/store/test_messages.py`` checks the result
against what kombu writes and has kombu read it back.
"""

import re
from functools import lru_cache

from celery import Celery
from pydantic_core import to_json

# The Celery queue (a Redis list) that workers consume.
QUEUE = "vtex-relay"

# Stand-ins for what differs between messages; each becomes an argument of build_message.
_HOLES = {
    "__VR_TASK__": "task",
    "__VR_ID__": "job_id",
    '"__VR_BODY__"': "cjson.encode(body)",
    '"__VR_REPR__"': "cjson.encode(repr)",
    "__VR_TAG__": "tag",
}


@lru_cache(maxsize=1)
def message_app() -> Celery:
    """A Celery app that only builds messages: the format is Celery's, whatever the worker's
    configuration, so a producer needs neither the worker app nor a broker connection."""
    return Celery("vtex_relay", set_as_current=False)


def _template(app: Celery) -> tuple[str, str]:
    """The message with stand-ins for its varying parts, and the task body's JSON around
    ``__VR_KWARGS__`` (``[args, kwargs, embed]``)."""
    headers, properties, body, _sent_event = app.amqp.as_task_v2(
        "__VR_ID__",
        "__VR_TASK__",
        kwargs={},
        argsrepr="()",
        kwargsrepr="__VR_REPR__",
        # Not the building process's name: the scripts embed the template, and one script per
        # process would pile up in Redis's script cache.
        origin="vtex-relay",
    )
    args, _kwargs, embed = body
    message = to_json(
        {
            "body": "__VR_BODY__",
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": {**headers, "kwargsrepr": "__VR_REPR__"},
            "properties": {
                **properties,
                "delivery_mode": 2,
                "delivery_info": {"exchange": "", "routing_key": QUEUE},
                "priority": 0,
                "delivery_tag": "__VR_TAG__",
            },
        }
    ).decode()
    return message, to_json([args, "__VR_KWARGS__", embed]).decode()


def _long_string(text: str) -> str:
    """*text* as a Lua long-bracket literal (no escapes inside)."""
    level = "=" * next(n for n in range(1, 10) if f"]{'=' * n}]" not in text)
    return f"[{level}[{text}]{level}]"


@lru_cache(maxsize=1)
def lua() -> str:
    """The Lua ``build_message(task, job_id, tag, ref, number, enqueued_at, body)``: the message
    of the job, as kombu would LPUSH it. *body* is the VTEX body's compact JSON; the keyword
    arguments are ``Job.message_kwargs()``, in its order, and Flower's ``kwargsrepr`` is
    them without the body (customer data)."""
    message, task_body = _template(message_app())
    pattern = "(" + "|".join(re.escape(hole) for hole in _HOLES) + ")"
    parts = [
        _HOLES[part] if index % 2 else _long_string(part)
        for index, part in enumerate(re.split(pattern, message))
        if part
    ]
    before, after = task_body.split('"__VR_KWARGS__"')
    return f"""
local function build_message(task, job_id, tag, ref, number, enqueued_at, body)
  local account, order_id = string.match(ref, "^([^:]*):(.*)$")
  local head = '{{"job_id":' .. cjson.encode(job_id) .. ',"account":' .. cjson.encode(account)
    .. ',"order_id":' .. cjson.encode(order_id) .. ',"invoice_number":'
    .. (number == "" and "null" or cjson.encode(number))
  local tail = ',"enqueued_at":' .. cjson.encode(enqueued_at) .. '}}'
  local repr = head .. tail
  body = {_long_string(before)} .. head .. ',"body":' .. body .. tail .. {_long_string(after)}
  return {" .. ".join(parts)}
end
"""
