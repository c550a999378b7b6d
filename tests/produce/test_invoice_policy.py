"""The invoicing policy at enqueue: ``single`` (one Output invoice per order, the default) or
``partial`` (split shipments: any number of Output invoices), return invoices (Input) under
both, each invoice number one invoice, ever, and updates that name an invoice the order has,
tracking events after a tracking number — through the Python API, the CLI, the batch file and
a real worker delivering to the sandbox."""

import json
from typing import Any

import pytest
import redis
from click.testing import CliRunner, Result

from tests.processes import Worker, text, wait_for
from tests.seed import invoice
from vtex_relay import (
    InvalidJob,
    InvoiceConflict,
    enqueue_invoice,
    enqueue_tracking,
    enqueue_tracking_number,
)
from vtex_relay.cli.main import cli
from vtex_relay.sandbox import SandboxControl
from vtex_relay.store.keys import OrderRef

ORDER = "1172452900788-01"


def jobs_of(client: redis.Redis, order: str = ORDER) -> list[str]:
    seqs = client.hgetall(OrderRef("teststore", order).key("seqs"))
    return [text(seqs[k]) for k in sorted(seqs, key=int)]


def run(*args: str, stdin: str) -> Result:
    return CliRunner().invoke(cli, list(args), input=stdin, catch_exceptions=False)


def line(body: dict[str, Any], order: str = ORDER) -> str:
    return json.dumps({"kind": "invoice", "orderId": order, "body": body})


@pytest.fixture
def partial(settings_env: pytest.MonkeyPatch) -> None:
    settings_env.setenv("VTEX_ACCOUNTS", '{"teststore": {"invoicePolicy": "partial"}}')


class TestSingle:
    def test_a_return_follows_the_invoice(self, redis_client: redis.Redis) -> None:
        sale = enqueue_invoice(ORDER, invoice("NF-1", 10000))
        refund = enqueue_invoice(ORDER, invoice("NF-R1", 4000, "Input"))
        assert jobs_of(redis_client) == [sale, refund]

    def test_a_second_output_invoice_is_refused(self, redis_client: redis.Redis) -> None:
        first = enqueue_invoice(ORDER, invoice("NF-1", 6000))
        with pytest.raises(InvoiceConflict, match="invoicePolicy to partial"):
            enqueue_invoice(ORDER, invoice("NF-2", 4000))
        assert jobs_of(redis_client) == [first]

    def test_a_number_is_one_invoice(self, redis_client: redis.Redis) -> None:
        first = enqueue_invoice(ORDER, invoice("NF-1", 10000))
        with pytest.raises(InvoiceConflict, match="different invoice under number NF-1"):
            enqueue_invoice(ORDER, invoice("NF-1", 4000, "Input"))
        assert jobs_of(redis_client) == [first]


@pytest.mark.usefixtures("partial")
class TestPartial:
    def test_a_split_shipment(self, redis_client: redis.Redis) -> None:
        first = enqueue_invoice(ORDER, invoice("NF-1", 6000))
        second = enqueue_invoice(ORDER, invoice("NF-2", 4000))
        again = enqueue_invoice(ORDER, invoice("NF-2", 4000))
        assert again == second
        assert jobs_of(redis_client) == [first, second]

    def test_a_number_is_one_invoice(self, redis_client: redis.Redis) -> None:
        first = enqueue_invoice(ORDER, invoice("NF-1", 6000))
        with pytest.raises(InvoiceConflict, match="different invoice under number NF-1") as caught:
            enqueue_invoice(ORDER, invoice("NF-1", 4000))
        assert caught.value.job_id == first
        assert jobs_of(redis_client) == [first]

    def test_a_batch_with_two_invoices_and_a_return(self, redis_client: redis.Redis) -> None:
        lines = [
            line(invoice("NF-1", 6000)),
            line(invoice("NF-2", 4000)),
            line(invoice("NF-R1", 1000, "Input")),
        ]
        result = run("enqueue", "batch", "-", stdin="\n".join(lines))
        assert result.exit_code == 0, result.output
        assert jobs_of(redis_client) == result.stdout.split()

    def test_a_batch_reusing_a_number_enqueues_nothing(self, redis_client: redis.Redis) -> None:
        lines = [line(invoice("NF-1", 6000)), line(invoice("NF-1", 4000))]
        result = run("enqueue", "batch", "-", stdin="\n".join(lines))
        assert result.exit_code == 2
        assert "line 2: orderId: a different invoice under number NF-1 is on line 1" in (
            result.stderr
        )
        assert redis_client.keys("*") == []

    def test_a_batch_reusing_a_number_in_redis_enqueues_nothing(
        self, redis_client: redis.Redis
    ) -> None:
        first = enqueue_invoice(ORDER, invoice("NF-1", 6000))
        lines = [line(invoice("NF-9", 1), "o-2"), line(invoice("NF-1", 4000))]
        result = run("enqueue", "batch", "-", stdin="\n".join(lines))
        assert result.exit_code == 2
        assert (
            f"line 2: orderId: invoice number NF-1 is already a different invoice (job {first}"
            in (result.stderr)
        )
        assert jobs_of(redis_client, "o-2") == []


@pytest.mark.usefixtures("partial")
def test_a_split_shipment_is_delivered_in_order(
    sandbox: SandboxControl, worker: Worker, redis_client: redis.Redis
) -> None:
    enqueue_invoice(ORDER, invoice("NF-1", 6000))
    enqueue_tracking_number(ORDER, "NF-1", {"trackingNumber": "TR-1"})
    enqueue_invoice(ORDER, invoice("NF-2", 4000))
    enqueue_tracking_number(ORDER, "NF-2", {"trackingNumber": "TR-2"})
    wait_for(lambda: len(sandbox.requests(order_id=ORDER)) >= 4, what="the four calls")
    sent = [(r.method, r.invoice_number or r.body.get("invoiceNumber")) for r in sandbox.requests()]
    assert sent == [("POST", "NF-1"), ("PATCH", "NF-1"), ("POST", "NF-2"), ("PATCH", "NF-2")]
    assert sandbox.order(ORDER, "teststore")["invoicePosts"] == {"NF-1": 1, "NF-2": 1}


EVENTS = {"isDelivered": False, "events": []}


class TestUpdates:
    """Updates name an invoice the order has, and tracking events follow a tracking number."""

    def test_an_update_of_an_unknown_invoice_is_refused(self, redis_client: redis.Redis) -> None:
        first = enqueue_invoice(ORDER, invoice("NF-1", 10000))
        with pytest.raises(InvalidJob, match=r"has no invoice NF-9 \(its invoices: NF-1\)"):
            enqueue_tracking_number(ORDER, "NF-9", {"trackingNumber": "TR-9"})
        assert jobs_of(redis_client) == [first]

    def test_tracking_events_wait_for_a_tracking_number(self, redis_client: redis.Redis) -> None:
        first = enqueue_invoice(ORDER, invoice("NF-1", 10000))
        with pytest.raises(InvalidJob, match="send the tracking number first"):
            enqueue_tracking(ORDER, "NF-1", EVENTS)
        patch = enqueue_tracking_number(ORDER, "NF-1", {"trackingNumber": "TR-1"})
        put = enqueue_tracking(ORDER, "NF-1", EVENTS)
        assert jobs_of(redis_client) == [first, patch, put]

    def test_an_invoice_with_its_tracking_number(self, redis_client: redis.Redis) -> None:
        sale = enqueue_invoice(ORDER, {**invoice("NF-1", 10000), "trackingNumber": "TR-1"})
        put = enqueue_tracking(ORDER, "NF-1", EVENTS)
        assert jobs_of(redis_client) == [sale, put]

    def test_an_order_whose_invoice_the_relay_never_saw(self, redis_client: redis.Redis) -> None:
        put = enqueue_tracking(ORDER, "NF-elsewhere", EVENTS)  # invoiced some other way
        assert jobs_of(redis_client) == [put]

    def test_the_cli_refuses_with_exit_2(self, redis_client: redis.Redis) -> None:
        enqueue_invoice(ORDER, invoice("NF-1", 10000))
        result = run("enqueue", "tracking", ORDER, "NF-1", "-", stdin=json.dumps(EVENTS))
        assert result.exit_code == 2
        assert "invoiceNumber: invoice NF-1 has no tracking number yet" in result.stderr
        assert len(jobs_of(redis_client)) == 1

    def test_a_batch_checks_its_own_earlier_lines(self, redis_client: redis.Redis) -> None:
        def update(kind: str, number: str, body: dict[str, Any]) -> str:
            return json.dumps(
                {"kind": kind, "orderId": ORDER, "invoiceNumber": number, "body": body}
            )

        good = [
            line(invoice("NF-1", 10000)),
            update("tracking-number", "NF-1", {"trackingNumber": "TR-1"}),
            update("tracking", "NF-1", EVENTS),
        ]
        bad = [
            line(invoice("NF-1", 10000)),
            update("tracking", "NF-1", EVENTS),
            update("tracking-number", "NF-2", {"trackingNumber": "TR-2"}),
        ]
        refused = run("enqueue", "batch", "-", stdin="\n".join(bad))
        assert refused.exit_code == 2
        assert "line 2: invoiceNumber: invoice NF-1 has no tracking number yet" in refused.stderr
        assert "line 3: invoiceNumber: the order has no invoice NF-2 (its invoices: NF-1)" in (
            refused.stderr
        )
        assert redis_client.keys("*") == []
        accepted = run("enqueue", "batch", "-", stdin="\n".join(good))
        assert accepted.exit_code == 0, accepted.output
        assert jobs_of(redis_client) == accepted.stdout.split()


@pytest.mark.usefixtures("partial")
def test_the_operator_sees_the_order_s_invoices(redis_client: redis.Redis) -> None:
    sale = enqueue_invoice(ORDER, invoice("NF-1", 6000))
    second = enqueue_invoice(ORDER, invoice("NF-2", 4000))
    refund = enqueue_invoice(ORDER, invoice("NF-R1", 1000, "Input"))
    result = CliRunner().invoke(cli, ["order", ORDER, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["invoices"] == [
        {
            "invoiceNumber": "NF-1",
            "type": "Output",
            "invoiceValue": 6000,
            "state": "ready",
            "jobId": sale,
        },
        {
            "invoiceNumber": "NF-2",
            "type": "Output",
            "invoiceValue": 4000,
            "state": "queued",
            "jobId": second,
        },
        {
            "invoiceNumber": "NF-R1",
            "type": "Input",
            "invoiceValue": 1000,
            "state": "queued",
            "jobId": refund,
        },
    ]
    shown = CliRunner().invoke(cli, ["order", ORDER], catch_exceptions=False).stdout
    assert "NF-2     Output  4,000  queued" in shown
