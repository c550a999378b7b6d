"""One invoice per order, at enqueue time, from every producer: the Python API, the CLI and
a batch file. A different invoice is refused naming the existing one; an identical one
answers with the first job's id and creates no job. Checked against Redis itself.
"""

import json
from typing import Any

import pytest
import redis
from click.testing import CliRunner, Result

from tests.processes import text
from vtex_relay import enqueue_invoice, enqueue_tracking_number
from vtex_relay.cli.main import cli
from vtex_relay.errors import InvoiceConflict
from vtex_relay.store.keys import OrderRef
from vtex_relay.store.messages import QUEUE

ORDER = "o-1"
INVOICE: dict[str, Any] = {
    "type": "Output",
    "issuanceDate": "2024-01-31T18:25:43-05:00",
    "invoiceNumber": "NF-1",
    "invoiceValue": "2499",
    "items": [{"id": "123", "price": 2499, "quantity": 1}],
}
OTHER = {**INVOICE, "invoiceNumber": "NF-2"}


def run(*args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=stdin, catch_exceptions=False)


def jobs_of(client: redis.Redis, order: str = ORDER) -> list[str]:
    seqs = client.hgetall(OrderRef("teststore", order).key("seqs"))
    return [text(seqs[key]) for key in sorted(seqs, key=int)]


class TestPythonApi:
    def test_identical_invoice_answers_with_the_first_job(self, redis_client: redis.Redis) -> None:
        first = enqueue_invoice(ORDER, INVOICE)
        assert enqueue_invoice(ORDER, dict(INVOICE)) == first
        assert jobs_of(redis_client) == [first]
        assert redis_client.llen(QUEUE) == 1

    def test_a_different_invoice_is_refused(self, redis_client: redis.Redis) -> None:
        first = enqueue_invoice(ORDER, INVOICE)
        with pytest.raises(InvoiceConflict) as caught:
            enqueue_invoice(ORDER, OTHER)
        assert caught.value.job_id == first
        assert "already has invoice NF-1" in str(caught.value)
        assert "tracking-number job (PATCH)" in str(caught.value)
        assert jobs_of(redis_client) == [first]

    def test_refused_while_queued_behind_and_after_delivery_alike(
        self, redis_client: redis.Redis
    ) -> None:
        first = enqueue_invoice(ORDER, INVOICE)
        enqueue_tracking_number(ORDER, "NF-1", {"trackingNumber": "T-1"})
        redis_client.hset(OrderRef("teststore", ORDER).job_key(first), "state", "done")
        with pytest.raises(InvoiceConflict, match="done"):
            enqueue_invoice(ORDER, OTHER)

    def test_other_orders_and_accounts_are_independent(self, redis_client: redis.Redis) -> None:
        enqueue_invoice(ORDER, INVOICE)
        enqueue_invoice("o-2", OTHER)
        enqueue_invoice(ORDER, OTHER, account="otherstore")
        assert redis_client.llen(QUEUE) == 3


class TestCli:
    def test_duplicate_prints_the_original_id(self, redis_client: redis.Redis) -> None:
        first = run("enqueue", "invoice", ORDER, "-", stdin=json.dumps(INVOICE))
        again = run("enqueue", "invoice", ORDER, "-", "--json", stdin=json.dumps(INVOICE))
        assert again.exit_code == 0
        summary = json.loads(again.stdout)
        assert summary["jobId"] == first.stdout.strip()
        assert summary["status"] == "duplicate"
        assert "not enqueued again" in again.stderr
        assert jobs_of(redis_client) == [first.stdout.strip()]

    def test_conflict_exits_2_naming_the_existing_invoice(self, redis_client: redis.Redis) -> None:
        first = run("enqueue", "invoice", ORDER, "-", stdin=json.dumps(INVOICE)).stdout.strip()
        result = run("enqueue", "invoice", ORDER, "-", stdin=json.dumps(OTHER))
        assert result.exit_code == 2
        assert f"already has invoice NF-1 (job {first}" in result.stderr
        assert "nothing was enqueued" in result.stderr
        assert result.stdout == ""
        assert jobs_of(redis_client) == [first]


class TestBatch:
    def line(self, body: dict[str, Any], order: str = ORDER) -> str:
        return json.dumps({"kind": "invoice", "orderId": order, "body": body})

    def test_conflicting_lines_in_one_batch_enqueue_nothing(
        self, redis_client: redis.Redis
    ) -> None:
        lines = [self.line(INVOICE), self.line(INVOICE, "o-2"), self.line(OTHER)]
        result = run("enqueue", "batch", "-", stdin="\n".join(lines))
        assert result.exit_code == 2
        assert "line 3: orderId: a different invoice for this order is on line 1" in result.stderr
        assert redis_client.keys("*") == []

    def test_a_line_conflicting_with_redis_enqueues_nothing(
        self, redis_client: redis.Redis
    ) -> None:
        first = enqueue_invoice(ORDER, INVOICE)
        result = run(
            "enqueue", "batch", "-", stdin="\n".join([self.line(INVOICE, "o-2"), self.line(OTHER)])
        )
        assert result.exit_code == 2
        assert f"line 2: orderId: the order already has invoice NF-1 (job {first}" in result.stderr
        assert jobs_of(redis_client, "o-2") == []

    def test_duplicate_lines_answer_with_one_job(self, redis_client: redis.Redis) -> None:
        first = enqueue_invoice(ORDER, INVOICE)
        result = run("enqueue", "batch", "-", stdin="\n".join([self.line(INVOICE)] * 3))
        assert result.exit_code == 0
        assert result.stdout.split() == [first] * 3
        assert jobs_of(redis_client) == [first]
