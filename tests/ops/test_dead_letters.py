"""The operator commands against the real test Redis: states are built through ``Ordering``.

A test plays the worker's part by hand: it pops the job's message off the queue, claims the
job and finishes it, so each state is the one the scripts themselves produce.
"""

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import click
import pytest
import redis
from click.testing import CliRunner, Result

from config import get_settings
from tests.processes import free_port, read_message
from vtex_relay.cli.dlq import dlq, order
from vtex_relay.jobs import Attempt, Job
from vtex_relay.store.keys import DEAD, DISCARDED, OrderRef
from vtex_relay.store.messages import QUEUE
from vtex_relay.store.ordering import Decision, Ordering

ACCOUNT = "teststore"
ORDER = "1172452900788-01"
INVOICE = {
    "type": "Output",
    "issuanceDate": "2024-01-31",
    "invoiceNumber": "9999",
    "invoiceValue": "10000",
    "items": [{"id": "123", "price": 10000, "quantity": 1}],
}
RETENTION = 3600
NINE = datetime(2024, 1, 31, 9, 0, tzinfo=UTC)
TEN = datetime(2024, 1, 31, 10, 0, tzinfo=UTC)

# The commands as `vtex-relay` will have them once cli.py attaches them.
root = click.Group("vtex-relay", commands=[dlq, order])


def run(*args: str) -> Result:
    return CliRunner().invoke(root, list(args), catch_exceptions=False)


def run_json(*args: str) -> Any:
    result = run(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture
def ordering(redis_client: redis.Redis) -> Ordering:
    return Ordering(redis_client)


def invoice(order_id: str = ORDER) -> Job:
    return Job(
        kind="invoice", account=ACCOUNT, order_id=order_id, invoice_number="9999", body=INVOICE
    )


def tracking_number(order_id: str = ORDER) -> Job:
    return Job(
        kind="tracking-number",
        account=ACCOUNT,
        order_id=order_id,
        invoice_number="9999",
        body={"trackingNumber": "87658"},
    )


def enqueue(ordering: Ordering, *jobs: Job) -> None:
    list(ordering.enqueue(jobs))


def queued_ids(client: redis.Redis) -> list[str]:
    """Job ids of the messages waiting in the queue, next to be taken first."""
    return [read_message(raw)[1]["job_id"] for raw in reversed(client.lrange(QUEUE, 0, -1))]


def attempt(outcome: str, at: datetime, status: int | None, message: str) -> str:
    return Attempt.model_validate(
        {"at": at, "outcome": outcome, "status": status, "message": message, "worker": "w1"}
    ).model_dump_json()


def run_once(
    ordering: Ordering, client: redis.Redis, job: Job, outcome: Decision, note: str
) -> None:
    """Take *job*'s message off the queue, claim the job and finish it with *outcome*."""
    [raw] = [m for m in client.lrange(QUEUE, 0, -1) if read_message(m)[1]["job_id"] == job.job_id]
    client.lrem(QUEUE, 1, raw)  # type: ignore[arg-type]  # redis-py's stub says str; bytes work
    ref = OrderRef.of(job)
    assert ordering.claim(ref, job.job_id, "token", 60).verdict == "run"
    assert ordering.finish(ref, job.job_id, "token", outcome, note, retention_seconds=RETENTION)


def kill(ordering: Ordering, client: redis.Redis, job: Job, at: datetime = TEN) -> None:
    """A 503 then a 400: the job is dead and holds its order."""
    run_once(ordering, client, job, "retry", attempt("retryable", at, 503, "Service Unavailable"))
    ordering.sweep(lost_after=3600)  # the retry is due at once (no delay): dispatch it
    run_once(ordering, client, job, "dead", attempt("permanent", at, 400, "Invalid\ninvoice"))


@pytest.fixture
def dead_invoice(ordering: Ordering, redis_client: redis.Redis) -> Job:
    """An order whose invoice is dead and whose tracking-number job waits behind it."""
    job, behind = invoice(), tracking_number()
    enqueue(ordering, job, behind)
    kill(ordering, redis_client, job)
    return job


class TestList:
    def test_nothing_dead(self, redis_client: redis.Redis) -> None:
        assert run("dlq", "list").stdout == "no dead jobs\n"
        assert run_json("dlq", "list") == []

    def test_oldest_death_first_with_the_last_error(
        self, ordering: Ordering, redis_client: redis.Redis
    ) -> None:
        late, early = invoice("order-late"), invoice("order-early")
        enqueue(ordering, late, early)
        kill(ordering, redis_client, late, at=TEN)
        kill(ordering, redis_client, early, at=NINE)
        listed = run_json("dlq", "list")
        assert [job["jobId"] for job in listed] == [early.job_id, late.job_id]
        assert listed[0]["account"] == ACCOUNT
        assert listed[0]["orderId"] == "order-early"
        assert listed[0]["kind"] == "invoice"
        assert listed[0]["lastError"] == {
            "at": "2024-01-31T09:00:00Z",
            "outcome": "permanent",
            "status": 400,
            "message": "Invalid\ninvoice",
        }

    def test_text_is_an_aligned_table(self, dead_invoice: Job) -> None:
        header, row = run("dlq", "list").stdout.splitlines()
        assert header.split() == [
            "JOB",
            "ID",
            "ORDER",
            "KIND",
            "TRIES",
            "DIED",
            "AT",
            "LAST",
            "ERROR",
        ]
        assert row.startswith(dead_invoice.job_id)
        assert header.index("ORDER") == row.index(f"{ACCOUNT}/{ORDER}")
        assert header.index("LAST ERROR") == row.index("permanent HTTP 400: Invalid invoice")


class TestShow:
    def test_json_has_the_body_and_every_attempt(self, dead_invoice: Job) -> None:
        shown = run_json("dlq", "show", dead_invoice.job_id)
        assert shown["jobId"] == dead_invoice.job_id
        assert shown["state"] == "dead"
        assert shown["seq"] == 1
        assert shown["tries"] == 2
        assert shown["invoiceNumber"] == "9999"
        assert shown["body"] == INVOICE
        assert [(a["outcome"], a["status"], a["worker"]) for a in shown["attempts"]] == [
            ("retryable", 503, "w1"),
            ("permanent", 400, "w1"),
        ]
        assert shown["lastError"]["message"] == "Invalid\ninvoice"

    def test_text_block(self, dead_invoice: Job) -> None:
        text = run("dlq", "show", dead_invoice.job_id).stdout
        assert re.search(r"^state: +dead$", text, re.MULTILINE)
        assert f"order:      {ACCOUNT}/{ORDER} (seq 1)" in text
        assert '"invoiceNumber": "9999"' in text
        assert "attempts (2):" in text
        assert "Service Unavailable" in text
        assert f"vtex-relay dlq replay {dead_invoice.job_id}" in text

    def test_a_discarded_job_can_still_be_shown(
        self, ordering: Ordering, redis_client: redis.Redis, dead_invoice: Job
    ) -> None:
        assert run("dlq", "discard", dead_invoice.job_id).exit_code == 0
        shown = run_json("dlq", "show", dead_invoice.job_id)
        assert shown["state"] == "discarded"
        assert len(shown["attempts"]) == 2

    def test_unknown_job_says_where_to_look(self, redis_client: redis.Redis) -> None:
        result = run("dlq", "show", "no-such-job")
        assert result.exit_code == 2
        assert result.stdout == ""
        assert "no-such-job" in result.stderr
        assert "vtex-relay order ORDER_ID" in result.stderr


class TestReplay:
    def test_puts_the_message_back_and_the_order_active(
        self, redis_client: redis.Redis, dead_invoice: Job
    ) -> None:
        result = run("dlq", "replay", dead_invoice.job_id)
        assert result.exit_code == 0, result.output
        assert "active again" in result.stdout
        assert queued_ids(redis_client) == [dead_invoice.job_id]  # not the job behind it
        assert not redis_client.hexists(DEAD, dead_invoice.job_id)
        status = run_json("order", ORDER)
        assert status["state"] == "active"
        assert [(j["state"], j["tries"]) for j in status["jobs"]] == [("ready", 0), ("queued", 0)]

    def test_a_job_that_is_no_longer_dead(self, dead_invoice: Job) -> None:
        run("dlq", "replay", dead_invoice.job_id)
        result = run("dlq", "replay", dead_invoice.job_id)
        assert result.exit_code == 2
        assert "not a dead or discarded job" in result.stderr

    def test_a_discarded_job_names_its_state(self, dead_invoice: Job) -> None:
        run("dlq", "discard", dead_invoice.job_id)
        result = run("dlq", "replay", dead_invoice.job_id)
        assert result.exit_code == 2
        assert f"job {dead_invoice.job_id} is discarded, not dead" in result.stderr


class TestDiscard:
    def test_releases_the_next_job(self, redis_client: redis.Redis, dead_invoice: Job) -> None:
        behind = run_json("order", ORDER)["jobs"][1]["jobId"]
        result = run("dlq", "discard", dead_invoice.job_id)
        assert result.exit_code == 0, result.output
        assert f"released the order's next job (seq 2, {behind})" in result.stdout
        assert queued_ids(redis_client) == [behind]
        assert redis_client.hget(DISCARDED, dead_invoice.job_id) == f"{ACCOUNT}:{ORDER}".encode()
        assert run_json("dlq", "list") == []
        status = run_json("order", ORDER)
        assert (status["state"], status["head"]) == ("active", 2)
        assert [j["state"] for j in status["jobs"]] == ["discarded", "ready"]

    def test_the_only_job_leaves_the_order_idle(
        self, ordering: Ordering, redis_client: redis.Redis
    ) -> None:
        job = invoice()
        enqueue(ordering, job)
        kill(ordering, redis_client, job)
        assert "idle" in run("dlq", "discard", job.job_id).stdout
        assert redis_client.llen(QUEUE) == 0
        assert run_json("order", ORDER)["state"] == "idle"

    def test_unknown_job(self, redis_client: redis.Redis) -> None:
        result = run("dlq", "discard", "no-such-job")
        assert result.exit_code == 2
        assert "no-such-job is not a dead or discarded job" in result.stderr


class TestOrder:
    def test_jobs_behind_a_dead_head_are_held(self, dead_invoice: Job) -> None:
        status = run_json("order", ORDER, "--account", ACCOUNT)
        assert (status["account"], status["orderId"]) == (ACCOUNT, ORDER)
        assert (status["state"], status["head"]) == ("held", 1)
        dead, held = status["jobs"]
        assert (dead["seq"], dead["jobId"], dead["kind"], dead["state"]) == (
            1,
            dead_invoice.job_id,
            "invoice",
            "dead",
        )
        assert len(dead["attempts"]) == 2
        assert (held["seq"], held["kind"], held["state"], held["attempts"]) == (
            2,
            "tracking-number",
            "held",
            [],
        )

    def test_text_table(self, dead_invoice: Job) -> None:
        lines = run("order", ORDER).stdout.splitlines()
        assert lines[0] == f"order {ACCOUNT}/{ORDER}: held at seq 1"
        header, dead, held = lines[2:5]
        assert header.split()[:6] == ["SEQ", "JOB", "ID", "KIND", "STATE", "TRIES"]
        assert dead.split()[:4] == ["1", dead_invoice.job_id, "invoice", "dead"]
        assert held.split()[2:4] == ["tracking-number", "held"]
        assert header.index("STATE") == dead.index("dead") == held.index("held")
        assert f"see `vtex-relay dlq show {dead_invoice.job_id}`" in lines[-1]

    def test_retrying_and_expired_done_jobs(
        self, ordering: Ordering, redis_client: redis.Redis
    ) -> None:
        first, second = invoice(), tracking_number()
        enqueue(ordering, first, second)
        run_once(ordering, redis_client, first, "done", attempt("delivered", NINE, 200, ""))
        redis_client.delete(OrderRef.of(first).job_key(first.job_id))  # its retention ran out
        run_once(ordering, redis_client, second, "retry", attempt("retryable", TEN, 429, "slow"))
        # Not swept yet: the second job waits as "retrying", with the time it is due.
        status = run_json("order", ORDER)
        assert status["state"] == "active"
        done, retrying = status["jobs"]
        assert (done["seq"], done["state"], done["kind"]) == (1, "done", None)
        assert retrying["state"] == "retrying"
        assert retrying["dueAt"] is not None
        assert retrying["lastError"]["status"] == 429

    def test_unknown_order(self, redis_client: redis.Redis) -> None:
        result = run("order", "o-never")
        assert result.exit_code == 2
        assert "no job was ever enqueued for order o-never of account teststore" in result.stderr

    def test_bad_order_id(self, redis_client: redis.Redis) -> None:
        result = run("order", "../x")
        assert result.exit_code == 2
        assert "invalid order id" in result.stderr


@pytest.fixture
def redis_down(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    url = f"redis://127.0.0.1:{free_port()}/0"
    monkeypatch.setenv("REDIS_URL", url)
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()  # the next test reads the real settings again


@pytest.mark.parametrize(
    "args", [("dlq", "list"), ("dlq", "show", "j"), ("dlq", "replay", "j"), ("order", ORDER)]
)
def test_unreachable_redis_exits_1(redis_down: str, args: tuple[str, ...]) -> None:
    result = run(*args)
    assert result.exit_code == 1
    assert f"cannot reach Redis at {redis_down}" in result.stderr
    assert result.stdout == ""
