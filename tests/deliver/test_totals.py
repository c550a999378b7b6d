"""An invoice that would leave the order wrong is not sent (VERIFY_ORDER_TOTAL, on by default).

The rules on their own (``totals.total_problem``), then a real worker with the check on, the
sandbox's orders carrying their totals: what VTEX received (a GET, and a POST only when the
invoice fits) and what the dead-letter queue holds.
"""

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from click.testing import CliRunner

from tests.processes import Worker, wait_for
from tests.seed import SEED_INVOICE, SEED_TRACKING, SEED_TRACKING_NUMBER, invoice
from vtex_relay import enqueue_invoice, enqueue_tracking, enqueue_tracking_number
from vtex_relay.cli.main import cli
from vtex_relay.deliver.totals import total_problem
from vtex_relay.errors import RetryableError
from vtex_relay.ops.dead_letters import list_dead
from vtex_relay.sandbox import SandboxControl
from vtex_relay.settings import Settings

ACCOUNT = "teststore"


def order(total: int, *packages: tuple[str, str, int]) -> dict[str, Any]:
    """GET order's answer: *total*, and (number, type, value) packages."""
    shown = [{"invoiceNumber": n, "type": t, "invoiceValue": v} for n, t, v in packages]
    return {"value": total, "packageAttachment": {"packages": shown}}


class TestRules:
    def test_single_wants_the_order_total(self) -> None:
        assert total_problem(order(10000), invoice("A", 10000), "single") is None
        assert total_problem(order(10000), invoice("A", 9000), "single") == (
            "invoice 9000 != order total 10000"
        )

    def test_partial_invoices_add_up_to_the_total_at_most(self) -> None:
        assert total_problem(order(10000), invoice("A", 6000), "partial") is None
        shown = order(10000, ("A", "Output", 6000))
        assert total_problem(shown, invoice("B", 4000), "partial") is None
        assert total_problem(shown, invoice("B", 5000), "partial") == (
            "invoices 6000 + 5000 > order total 10000"
        )
        # An earlier try of this very invoice landed: it is not counted twice.
        assert total_problem(shown, invoice("A", 6000), "partial") is None

    def test_a_return_needs_a_fully_invoiced_order(self) -> None:
        half = order(10000, ("A", "Output", 6000))
        assert "invoiced 6000 of 10000" in (
            total_problem(half, invoice("R", 1000, "Input"), "partial") or ""
        )
        full = order(10000, ("A", "Output", 10000), ("R1", "Input", 7000))
        assert total_problem(full, invoice("R2", 3000, "Input"), "single") is None
        assert total_problem(full, invoice("R2", 4000, "Input"), "single") == (
            "returns 7000 + 4000 > invoiced 10000"
        )

    @pytest.mark.parametrize("total", [None, "10000", 10000.0, True, -1])
    def test_a_total_that_is_not_cents_cannot_be_verified(self, total: object) -> None:
        with pytest.raises(RetryableError, match="cannot verify the order total"):
            total_problem({"value": total}, invoice("A", 10000), "single")
        with pytest.raises(RetryableError, match="cannot verify the order total"):
            total_problem({"packageAttachment": None}, invoice("A", 1), "single")

    def test_what_the_relay_delivered_counts_with_what_vtex_shows(self) -> None:
        shown = order(10000, ("A", "Output", 4000))
        posted = {"A": ("Output", 4000), "B": ("Output", 4000)}  # B: VTEX does not show it yet
        assert total_problem(shown, invoice("C", 4000), "partial", posted) == (
            "invoices 8000 + 4000 > order total 10000"
        )
        assert total_problem(shown, invoice("C", 2000), "partial", posted) is None

    def test_on_by_default(self) -> None:
        assert Settings.model_fields["verify_order_total"].default is True


@pytest.fixture
def checking(sandbox: SandboxControl, redis_client: redis.Redis) -> Iterator[Worker]:
    """A worker with the check on; account "teststore" partial, "single" the default policy."""
    env = {
        **os.environ,
        "VERIFY_ORDER_TOTAL": "true",
        "VTEX_ACCOUNTS": '{"splitstore": {"invoicePolicy": "partial"}}',
    }
    worker = Worker(env, "wtotal").start()
    yield worker
    worker.stop()


def writes(sandbox: SandboxControl, order_id: str) -> list[str]:
    return [r.method for r in sandbox.requests(order_id=order_id) if r.method != "GET"]


def test_the_guide_s_bodies_still_deliver(sandbox: SandboxControl, checking: Worker) -> None:
    enqueue_invoice("o-guide", SEED_INVOICE)
    number = SEED_INVOICE["invoiceNumber"]
    enqueue_tracking_number("o-guide", number, SEED_TRACKING_NUMBER)
    enqueue_tracking("o-guide", number, SEED_TRACKING)
    wait_for(lambda: len(writes(sandbox, "o-guide")) == 3, what="POST, PATCH, PUT")
    assert writes(sandbox, "o-guide") == ["POST", "PATCH", "PUT"]
    assert sandbox.order("o-guide", ACCOUNT)["order"]["status"] == "invoiced"


def test_an_invoice_below_the_total_is_dead_lettered_unsent(
    sandbox: SandboxControl, checking: Worker, redis_client: redis.Redis
) -> None:
    sandbox.seed_order("o-short", value=10000, account=ACCOUNT)
    job = enqueue_invoice("o-short", invoice("NF-9", 9000))
    [dead] = wait_for(lambda: list_dead(redis_client), what="the invoice dead-lettered")
    assert dead.job_id == job
    assert "invoice 9000 != order total 10000" in dead.last_error_line
    assert [r.method for r in sandbox.requests(order_id="o-short")] == ["GET"]  # no POST


def test_a_split_shipment_and_an_early_return(
    sandbox: SandboxControl, checking: Worker, redis_client: redis.Redis, settings_env: Any
) -> None:
    settings_env.setenv("VTEX_ACCOUNTS", '{"splitstore": {"invoicePolicy": "partial"}}')
    sandbox.seed_order("o-split", value=10000, account="splitstore")
    enqueue_invoice("o-split", invoice("NF-1", 6000), account="splitstore")
    early = enqueue_invoice("o-split", invoice("NF-R1", 1000, "Input"), account="splitstore")
    [dead] = wait_for(lambda: list_dead(redis_client), what="the early return dead-lettered")
    assert dead.job_id == early
    assert "invoiced 6000 of 10000" in dead.last_error_line
    assert writes(sandbox, "o-split") == ["POST"]  # the 6,000 invoice; the return unsent


def test_a_split_shipment_then_a_return(
    sandbox: SandboxControl, checking: Worker, settings_env: Any
) -> None:
    settings_env.setenv("VTEX_ACCOUNTS", '{"splitstore": {"invoicePolicy": "partial"}}')
    sandbox.seed_order("o-whole", value=10000, account="splitstore")
    for body in (invoice("NF-1", 6000), invoice("NF-2", 4000), invoice("NF-R1", 1000, "Input")):
        enqueue_invoice("o-whole", body, account="splitstore")
    wait_for(lambda: len(writes(sandbox, "o-whole")) == 3, what="the three invoices POSTed")
    shown = sandbox.order("o-whole", "splitstore")
    assert shown["order"]["status"] == "invoiced"
    assert shown["invoicePosts"] == {"NF-1": 1, "NF-2": 1, "NF-R1": 1}
    # The operator sees what the last GET order read: the total, invoiced before the return.
    view = CliRunner().invoke(cli, ["order", "o-whole", "--account", "splitstore", "--json"])
    assert view.exit_code == 0, view.output
    assert json.loads(view.stdout)["vtex"] | {"readAt": None} == {
        "status": "invoiced",
        "value": 10000,
        "invoiced": 10000,
        "returned": 0,
        "readAt": None,
    }
    text_view = CliRunner().invoke(cli, ["order", "o-whole", "--account", "splitstore"]).stdout
    assert "status invoiced; invoiced 10,000 of 10,000" in text_view


def test_partial_invoices_add_up_while_vtex_shows_them_late(
    sandbox: SandboxControl, checking: Worker, redis_client: redis.Redis, settings_env: Any
) -> None:
    """VTEX's GET shows an invoice 3 s after it accepted it: the relay's own ledger counts."""
    settings_env.setenv("VTEX_ACCOUNTS", '{"splitstore": {"invoicePolicy": "partial"}}')
    sandbox.set_faults(invoice_lag_seconds=3)
    sandbox.seed_order("o-lag", value=10000, account="splitstore")
    jobs = [
        enqueue_invoice("o-lag", invoice(f"NF-{n}", 4000), account="splitstore") for n in range(5)
    ]
    [dead] = wait_for(lambda: list_dead(redis_client), what="the third invoice dead-lettered")
    assert dead.job_id == jobs[2]
    assert "invoices 8000 + 4000 > order total 10000" in dead.last_error_line
    posts = [r for r in sandbox.requests(order_id="o-lag") if r.method == "POST"]
    assert [r.invoice_number for r in posts] == ["NF-0", "NF-1"]  # 8,000 of 10,000
    assert sandbox.order("o-lag", "splitstore")["invoicePosts"] == {"NF-0": 1, "NF-1": 1}


@pytest.fixture
def checking_briefly(sandbox: SandboxControl, redis_client: redis.Redis) -> Iterator[Worker]:
    """A worker with the check on and three tries a job."""
    env = {
        **os.environ,
        "VERIFY_ORDER_TOTAL": "true",
        "RETRY_MAX_ATTEMPTS": "3",
        "VTEX_ACCOUNTS": '{"trusting": {"verifyOrderTotal": false}}',
    }
    worker = Worker(env, "wbrief").start()
    yield worker
    worker.stop()


def test_an_unreadable_total_is_never_a_post(
    sandbox: SandboxControl, checking_briefly: Worker, redis_client: redis.Redis
) -> None:
    totals: dict[str, object] = {"o-null": None, "o-text": "10000", "o-float": 10000.0}
    totals |= {"o-bool": True}
    for order_id, total in totals.items():
        sandbox.seed_order(order_id, value=total, account=ACCOUNT)
        enqueue_invoice(order_id, invoice("NF-1", 10000))
    wait_for(
        lambda: len(list_dead(redis_client)) == len(totals),
        timeout=30,
        what="every invoice dead-lettered",
    )
    dead = list_dead(redis_client)
    for record in dead:
        assert "cannot verify the order total" in record.last_error_line
    for order_id in totals:
        methods = [r.method for r in sandbox.requests(order_id=order_id)]
        assert methods == ["GET"] * 3  # three tries, each a GET, never a POST
    # An account that turned the check off is not read first: its invoice goes.
    sandbox.seed_order("o-trust", value="abc", account="trusting")
    enqueue_invoice("o-trust", invoice("NF-1", 10000), account="trusting")
    wait_for(lambda: sandbox.requests(order_id="o-trust"), what="the trusting account's POST")
    assert [r.method for r in sandbox.requests(order_id="o-trust")] == ["POST"]
