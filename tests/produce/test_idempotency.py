"""A job identical to one enqueued for its order is enqueued once, from every producer.

Identical means the same kind, invoice number and body, unless the producer gives an
idempotency key: then the key alone decides (the same key is the first job whatever the body,
different keys are two jobs whatever the bodies). The answer to a duplicate is the first job's
id. A bad key is refused naming ``idempotencyKey``, with nothing enqueued. A discarded job no
longer counts, so the same job may be sent again; a dead one still does. Checked against what
Redis holds and, end to end, against what the sandbox received.
"""

import json
from datetime import UTC, datetime
from typing import Any

import pytest
import redis
from click.testing import CliRunner, Result

from tests.processes import Worker, read_message, text, wait_for
from tests.seed import invoice
from vtex_relay import enqueue_invoice, enqueue_tracking, enqueue_tracking_number
from vtex_relay.cli.main import cli
from vtex_relay.errors import InvalidJob, InvoiceConflict
from vtex_relay.jobs import Attempt
from vtex_relay.ops.dead_letters import discard
from vtex_relay.sandbox import SandboxControl
from vtex_relay.store.connections import ordering
from vtex_relay.store.keys import OrderRef
from vtex_relay.store.messages import QUEUE

ORDER = "o-1"
NUMBER = "NF-1"


def tracking(description: str, delivered: bool = False) -> dict[str, Any]:
    event = {"city": "Rio", "state": "RJ", "description": description, "date": "2024-06-23"}
    return {"isDelivered": delivered, "deliveredDate": None, "events": [event]}


def run(*args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=stdin, catch_exceptions=False)


def jobs_of(client: redis.Redis, order: str = ORDER) -> list[str]:
    """The order's job ids in sequence, as Redis holds them."""
    seqs = client.hgetall(OrderRef("teststore", order).key("seqs"))
    return [text(seqs[key]) for key in sorted(seqs, key=int)]


def queued_ids(client: redis.Redis) -> list[str]:
    return [read_message(raw)[1]["job_id"] for raw in reversed(client.lrange(QUEUE, 0, -1))]


def line(body: dict[str, Any], **fields: Any) -> str:
    return json.dumps(
        {"kind": "tracking", "orderId": ORDER, "invoiceNumber": NUMBER, "body": body, **fields}
    )


class TestPythonApi:
    def test_an_identical_tracking_job_answers_with_the_first_id(
        self, redis_client: redis.Redis
    ) -> None:
        first = enqueue_tracking(ORDER, NUMBER, tracking("picked up"))
        assert enqueue_tracking(ORDER, NUMBER, tracking("picked up")) == first
        assert jobs_of(redis_client) == [first]
        assert queued_ids(redis_client) == [first]

    def test_an_identical_tracking_number_job_answers_with_the_first_id(
        self, redis_client: redis.Redis
    ) -> None:
        first = enqueue_tracking_number(ORDER, NUMBER, {"trackingNumber": "T-1"})
        assert enqueue_tracking_number(ORDER, NUMBER, {"trackingNumber": "T-1"}) == first
        assert jobs_of(redis_client) == [first]

    def test_another_body_or_invoice_number_is_another_job(self, redis_client: redis.Redis) -> None:
        first = enqueue_tracking(ORDER, NUMBER, tracking("picked up"))
        other_body = enqueue_tracking(ORDER, NUMBER, tracking("in transit"))
        other_invoice = enqueue_tracking(ORDER, "NF-2", tracking("picked up"))
        other_order = enqueue_tracking("o-2", NUMBER, tracking("picked up"))
        assert len({first, other_body, other_invoice, other_order}) == 4
        assert jobs_of(redis_client) == [first, other_body, other_invoice]
        assert jobs_of(redis_client, "o-2") == [other_order]

    def test_the_same_key_is_the_first_job_whatever_the_body(
        self, redis_client: redis.Redis
    ) -> None:
        first = enqueue_tracking(ORDER, NUMBER, tracking("picked up"), idempotency_key="k")
        assert enqueue_tracking(ORDER, NUMBER, tracking("lost"), idempotency_key="k") == first
        again = enqueue_tracking_number(ORDER, NUMBER, {"trackingNumber": "T"}, idempotency_key="k")
        assert again == first  # the key alone decides, whatever the kind
        assert jobs_of(redis_client) == [first]
        [raw] = redis_client.lrange(QUEUE, 0, -1)
        assert read_message(raw)[1]["body"]["events"][0]["description"] == "picked up"

    def test_different_keys_are_two_jobs_even_with_identical_bodies(
        self, redis_client: redis.Redis
    ) -> None:
        a = enqueue_tracking(ORDER, NUMBER, tracking("picked up"), idempotency_key="a")
        b = enqueue_tracking(ORDER, NUMBER, tracking("picked up"), idempotency_key="b")
        unkeyed = enqueue_tracking(ORDER, NUMBER, tracking("picked up"))
        assert len({a, b, unkeyed}) == 3
        assert jobs_of(redis_client) == [a, b, unkeyed]

    def test_a_key_is_per_order(self, redis_client: redis.Redis) -> None:
        a = enqueue_tracking(ORDER, NUMBER, tracking("picked up"), idempotency_key="k")
        b = enqueue_tracking("o-2", NUMBER, tracking("picked up"), idempotency_key="k")
        assert a != b
        assert (jobs_of(redis_client), jobs_of(redis_client, "o-2")) == ([a], [b])

    def test_a_new_key_does_not_make_a_second_invoice(self, redis_client: redis.Redis) -> None:
        first = enqueue_invoice(ORDER, invoice(NUMBER), idempotency_key="a")
        assert enqueue_invoice(ORDER, invoice(NUMBER), idempotency_key="b") == first
        with pytest.raises(InvoiceConflict):
            enqueue_invoice(ORDER, invoice("NF-2"), idempotency_key="c")
        assert jobs_of(redis_client) == [first]

    def test_a_key_of_200_characters_is_accepted(self, redis_client: redis.Redis) -> None:
        first = enqueue_tracking(ORDER, NUMBER, tracking("a"), idempotency_key="k" * 200)
        assert enqueue_tracking(ORDER, NUMBER, tracking("b"), idempotency_key="k" * 200) == first
        assert jobs_of(redis_client) == [first]

    @pytest.mark.parametrize("key", ["", "k" * 201, "a\nb", "tab\there", 7, b"bytes"])
    def test_a_bad_key_is_refused_naming_the_field(
        self, redis_client: redis.Redis, key: Any
    ) -> None:
        with pytest.raises(InvalidJob) as caught:
            enqueue_tracking(ORDER, NUMBER, tracking("picked up"), idempotency_key=key)
        assert [e.location for e in caught.value.errors] == ["idempotencyKey"]
        assert redis_client.keys("*") == []


class TestCli:
    def test_the_same_idempotency_key_prints_the_first_id(self, redis_client: redis.Redis) -> None:
        args = ["enqueue", "tracking", ORDER, NUMBER, "-", "--idempotency-key", "erp-42"]
        first = run(*args, stdin=json.dumps(tracking("picked up")))
        assert first.exit_code == 0, first.output
        again = run(*args, "--json", stdin=json.dumps(tracking("in transit")))
        assert again.exit_code == 0, again.output
        summary = json.loads(again.stdout)
        assert (summary["jobId"], summary["status"]) == (first.stdout.strip(), "duplicate")
        assert "not enqueued again" in again.stderr
        other = run(
            "enqueue",
            "tracking",
            ORDER,
            NUMBER,
            "-",
            "--idempotency-key",
            "erp-43",
            stdin=json.dumps(tracking("picked up")),
        )
        assert other.exit_code == 0
        assert jobs_of(redis_client) == [first.stdout.strip(), other.stdout.strip()]

    def test_an_identical_job_prints_the_first_id(self, redis_client: redis.Redis) -> None:
        body = json.dumps({"trackingNumber": "T-1"})
        first = run("enqueue", "tracking-number", ORDER, NUMBER, "-", stdin=body)
        again = run("enqueue", "tracking-number", ORDER, NUMBER, "-", stdin=body)
        assert again.exit_code == 0
        assert again.stdout == first.stdout
        assert jobs_of(redis_client) == [first.stdout.strip()]

    @pytest.mark.parametrize("key", ["", "k" * 201, "a\nb"])
    def test_a_bad_idempotency_key_exits_2(self, redis_client: redis.Redis, key: str) -> None:
        result = run(
            "enqueue",
            "invoice",
            ORDER,
            "-",
            "--idempotency-key",
            key,
            stdin=json.dumps(invoice(NUMBER)),
        )
        assert result.exit_code == 2
        assert "idempotencyKey" in result.stderr
        assert "nothing was enqueued" in result.stderr
        assert result.stdout == ""
        assert redis_client.keys("*") == []


class TestBatch:
    def test_identical_lines_are_one_job(self, redis_client: redis.Redis) -> None:
        result = run("enqueue", "batch", "-", stdin="\n".join([line(tracking("x"))] * 3))
        assert result.exit_code == 0, result.output
        ids = result.stdout.split()
        assert len(ids) == 3
        assert len(set(ids)) == 1
        assert jobs_of(redis_client) == ids[:1]

    def test_lines_with_idempotency_keys(self, redis_client: redis.Redis) -> None:
        lines = [
            line(tracking("picked up"), idempotencyKey="k1"),
            line(tracking("in transit"), idempotencyKey="k1"),  # same key: the first job
            line(tracking("picked up"), idempotencyKey="k2"),  # another key: another job
        ]
        result = run("enqueue", "batch", "-", "--json", stdin="\n".join(lines))
        assert result.exit_code == 0, result.output
        jobs = json.loads(result.stdout)
        assert [j["status"] for j in jobs] == ["enqueued", "duplicate", "enqueued"]
        assert jobs[0]["jobId"] == jobs[1]["jobId"] != jobs[2]["jobId"]
        assert jobs_of(redis_client) == [jobs[0]["jobId"], jobs[2]["jobId"]]

    @pytest.mark.parametrize("key", ["", 7, ["k"], "k" * 201, "a\u0000b"])
    def test_a_bad_idempotency_key_names_the_line(
        self, redis_client: redis.Redis, key: object
    ) -> None:
        lines = [line(tracking("a")), line(tracking("b"), idempotencyKey=key)]
        result = run("enqueue", "batch", "-", stdin="\n".join(lines))
        assert result.exit_code == 2
        assert "line 2: idempotencyKey" in result.stderr
        assert "line 1" not in result.stderr
        assert redis_client.keys("*") == []


def kill(job_id: str, order: str = ORDER) -> None:
    """Play the worker: claim the job and record VTEX's refusal; the job is dead."""
    ref = OrderRef("teststore", order)
    assert ordering().claim(ref, job_id, "token", 60).verdict == "run"
    refusal = Attempt(at=datetime.now(UTC), outcome="permanent", status=400, message="Invalid")
    dead = ordering().finish(
        ref, job_id, "token", "dead", refusal.model_dump_json(), retention_seconds=3600
    )
    assert dead


@pytest.mark.parametrize("kind", ["invoice", "tracking-number"])
def test_a_dead_job_still_counts_a_discarded_one_does_not(
    redis_client: redis.Redis, kind: str
) -> None:
    def send() -> str:
        if kind == "invoice":
            return enqueue_invoice(ORDER, invoice(NUMBER))
        return enqueue_tracking_number(ORDER, NUMBER, {"trackingNumber": "T-1"})

    first = send()
    redis_client.delete(QUEUE)  # its message, taken by the "worker" below
    kill(first)
    assert send() == first  # dead: the job is still there, waiting for an operator
    discard(ordering(), redis_client, first)
    second = send()
    assert second != first
    assert jobs_of(redis_client) == [first, second]
    assert queued_ids(redis_client) == [second]  # the order was idle: dispatched at once
    assert send() == second


def test_the_same_tracking_sent_twice_is_put_once(
    worker: Worker, sandbox: SandboxControl, redis_client: redis.Redis
) -> None:
    order = "o-e2e"

    def put_bodies() -> list[Any]:
        return [r.body for r in sandbox.requests(order_id=order, method="PUT") if r.applied_at]

    enqueue_invoice(order, invoice(NUMBER))
    enqueue_tracking_number(order, NUMBER, {"trackingNumber": "T-1"})  # VTEX wants it first
    first = enqueue_tracking(order, NUMBER, tracking("picked up"))
    assert enqueue_tracking(order, NUMBER, tracking("picked up")) == first
    enqueue_tracking(order, NUMBER, tracking("in transit"))  # the order's last job, for now
    wait_for(
        lambda: len(put_bodies()) >= 2,
        timeout=20,
        what=lambda: f"both PUTs; got {sandbox.requests(order_id=order)}",
    )
    # Delivered already: the same job sent again is still the first one, not sent again.
    assert enqueue_tracking(order, NUMBER, tracking("picked up")) == first
    enqueue_tracking(order, NUMBER, tracking("delivered", delivered=True))
    wait_for(
        lambda: len(put_bodies()) >= 3,
        timeout=20,
        what=lambda: f"the third PUT; got {sandbox.requests(order_id=order)}",
    )
    descriptions = [body["events"][0]["description"] for body in put_bodies()]
    assert descriptions == ["picked up", "in transit", "delivered"]
    assert len(sandbox.requests(order_id=order, method="PUT")) == 3
