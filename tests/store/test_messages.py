"""The task messages our Redis scripts write against what kombu itself writes for the same task.

A script builds a job's message when it dispatches the job (see vtex_relay/store/messages.py). If a
kombu or Celery upgrade changes the format, this fails.
"""

import json

import redis

from tests.processes import read_message, text
from vtex_relay.jobs import Job
from vtex_relay.store.messages import QUEUE
from vtex_relay.store.ordering import Ordering
from worker.app import app

JOB = Job(
    kind="tracking",
    account="teststore",
    order_id="o-1",
    invoice_number="NF-1",
    body={"isDelivered": False, "deliveredDate": None, "events": []},
)


def dispatched(client: redis.Redis, job: Job) -> str:
    """The message the enqueue script pushes for *job* (its order is idle: it is dispatched)."""
    [(_job, result)] = Ordering(client).enqueue([job])
    assert result.verdict == "enqueued"
    return text(client.rpop(QUEUE))


def test_the_message_has_kombu_s_shape(redis_client: redis.Redis) -> None:
    ours = json.loads(dispatched(redis_client, JOB))
    app.send_task(JOB.kind, kwargs=JOB.message_kwargs(), task_id=JOB.job_id, queue=QUEUE)
    theirs = json.loads(text(redis_client.rpop(QUEUE)))

    assert ours.keys() == theirs.keys()
    assert ours["headers"].keys() == theirs["headers"].keys()
    assert ours["properties"].keys() == theirs["properties"].keys() - {"body_encoding"}
    for field in ("content-type", "content-encoding"):
        assert ours[field] == theirs[field]
    for field in ("task", "id", "root_id", "lang", "retries", "eta"):
        assert ours["headers"][field] == theirs["headers"][field]
    for field in ("delivery_info", "delivery_mode", "priority", "correlation_id"):
        assert ours["properties"][field] == theirs["properties"][field]
    # Our body is JSON text, kombu's base64 of it: without a body_encoding kombu takes it as is.
    assert "body_encoding" not in ours["properties"]
    assert ours["properties"]["delivery_tag"] == f"{JOB.job_id}.1"
    assert read_message(json.dumps(ours))[1] == JOB.message_kwargs()


def test_flower_sees_the_envelope_without_the_body(redis_client: redis.Redis) -> None:
    headers = json.loads(dispatched(redis_client, JOB))["headers"]
    shown = json.loads(headers["kwargsrepr"])
    assert shown["order_id"] == "o-1"
    assert "body" not in shown


def test_kombu_reads_a_message_with_non_ascii_text(redis_client: redis.Redis) -> None:
    job = Job(
        kind="tracking",
        account="teststore",
        order_id="o-2",
        invoice_number="NF-2",
        body={
            "isDelivered": False,
            "deliveredDate": None,
            "events": [
                {
                    "city": "São Paulo",
                    "state": "SP",
                    "description": "Em trânsito",
                    "date": "2024-01-31",
                }
            ],
        },
    )
    redis_client.lpush(QUEUE, dispatched(redis_client, job))

    with app.connection_for_read() as connection:
        message = connection.SimpleQueue(QUEUE, no_ack=True).get(timeout=5)
        _args, kwargs, _embed = message.decode()

    assert kwargs["body"]["events"][0]["city"] == "São Paulo"
    assert kwargs == job.message_kwargs()
