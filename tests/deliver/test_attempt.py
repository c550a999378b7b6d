"""A worker's try, in-process: ``vtex_relay.deliver.attempt.run`` and ``decide`` with VTEX as an
``httpx.MockTransport`` (``tests/fake_vtex.py``; the sandbox for one real-socket check) and the
real ordering scripts on the test Redis. No worker process: each decision is asserted directly,
with the default settings where the worker tests run with test ones (RETRY_MAX_ATTEMPTS=30)."""

import logging
import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import redis
from celery.exceptions import Retry

import tasks.delivery
import worker.app
from tests.conftest import APP_KEY, APP_TOKEN, SANDBOX_URL
from tests.fake_vtex import FakeVtex, delivered, order_then, respond, settings
from tests.processes import read_message, wait_for
from vtex_relay.deliver import attempt as delivery
from vtex_relay.deliver.attempt import Result, Try, decide, run
from vtex_relay.deliver.oms import OmsClient
from vtex_relay.errors import JobDead, LeaseExpired, RetryableError
from vtex_relay.jobs import Attempt, Job
from vtex_relay.produce.api import build_job
from vtex_relay.redaction import Redactor
from vtex_relay.sandbox import SandboxControl
from vtex_relay.settings import Settings
from vtex_relay.store.keys import DEAD, LEASES, OrderRef, text
from vtex_relay.store.ordering import Claim, Ordering

DEFAULT_ATTEMPTS = Settings.model_fields["retry_max_attempts"].default
LATER = 3600.0  # a send-by an hour from now: no deadline in the way


def invoice(order_id: str = "o-1", account: str = "acme", number: str = "NF-1") -> Job:
    body = {
        "type": "Output",
        "issuanceDate": "2024-01-31",
        "invoiceNumber": number,
        "invoiceValue": "10000",
        "items": [{"id": "123", "price": 10000, "quantity": 1}],
    }
    return build_job("invoice", order_id, body, account=account)


def tracking_number(order_id: str = "o-1", number: str = "NF-1") -> Job:
    body = {"trackingNumber": "TRK-1", "courier": "Correios"}
    return build_job("tracking-number", order_id, body, invoice_number=number, account="acme")


def tracking(order_id: str = "o-1", number: str = "NF-1") -> Job:
    event = {
        "city": "Rio de Janeiro",
        "state": "RJ",
        "description": "Coletado",
        "date": "2024-06-23",
    }
    body = {"isDelivered": False, "events": [event]}
    return build_job("tracking", order_id, body, invoice_number=number, account="acme")


# What GET order shows once each of the jobs above landed.
LANDED_PACKAGE = {
    "invoiceNumber": "NF-1",
    "trackingNumber": "TRK-1",
    "courier": "Correios",
    "courierStatus": {
        "finished": False,
        "data": [{"city": "Rio de Janeiro", "state": "RJ", "description": "Coletado"}],
    },
}
LANDED = {"orderId": "o-1", "packageAttachment": {"packages": [LANDED_PACKAGE]}}
NOT_THERE = {"orderId": "o-1", "packageAttachment": {"packages": []}}


def claim(tries: int = 1, uncertain: bool = False) -> Claim:
    return Claim("run", seq=1, tries=tries, uncertain=uncertain)


def bound(tries: int, s: Settings) -> float:
    return min(s.retry_backoff_max, s.retry_backoff_base * 2.0 ** (tries - 1))


def redis_now(client: redis.Redis) -> float:
    seconds, micros = client.time()
    return seconds + micros / 1e6


class Relay:
    """One worker's view, in the test process: the fake VTEX, its client, the real ordering."""

    def __init__(self, client: redis.Redis, vtex: FakeVtex, s: Settings) -> None:
        self.redis = client
        self.vtex = vtex
        self.settings = s
        self.ordering = Ordering(client)
        self.client = vtex.client(s)

    def enqueue(self, *jobs: Job) -> None:
        assert {e.verdict for _, e in self.ordering.enqueue(jobs)} == {"enqueued"}

    def run(self, job: Job, **kwargs: Any) -> Result:
        return run(
            job, client=self.client, ordering=self.ordering, settings=self.settings, **kwargs
        )

    def decide(self, job: Job, the_claim: Claim, send_by: float | None = None) -> Try:
        send_by = time.monotonic() + LATER if send_by is None else send_by
        return decide(job, the_claim, send_by, client=self.client, settings=self.settings)

    def retry_due(self) -> None:
        """Wait until the sweep dispatches the job's retry (its backoff is milliseconds)."""
        wait_for(lambda: self.ordering.sweep(lost_after=60).retried, timeout=10, what="the retry")

    def job(self, job: Job) -> dict[str, str]:
        fields = self.redis.hgetall(OrderRef.of(job).job_key(job.job_id))
        return {text(k): text(v) for k, v in fields.items()}

    def order(self, job: Job) -> dict[str, str]:
        fields = self.redis.hgetall(OrderRef.of(job).key("order"))
        return {text(k): text(v) for k, v in fields.items()}

    def attempts(self, job: Job) -> list[Attempt]:
        rows = self.redis.lrange(OrderRef.of(job).attempts_key(job.job_id), 0, -1)
        return [Attempt.model_validate_json(row) for row in rows]

    def queued(self) -> list[tuple[str, str]]:
        """(task, job id) of each message in the Celery queue, oldest first."""
        messages = self.redis.lrange(self.ordering.queue, 0, -1)
        return [(task, kw["job_id"]) for task, kw in map(read_message, reversed(messages))]

    def pause_left(self, account: str) -> float | None:
        """Seconds left of the account's 429 pause, by Redis's clock (None: no pause)."""
        until = self.redis.get(OrderRef(account, "-").account_key("pause"))
        return None if until is None else float(until) - redis_now(self.redis)


@pytest.fixture
def vtex() -> FakeVtex:
    return FakeVtex()


@pytest.fixture
def make_relay(redis_client: redis.Redis, vtex: FakeVtex) -> Iterator[Callable[..., Relay]]:
    """Relays with the default settings but *overrides*; their clients closed at the end."""
    made: list[Relay] = []

    def make(**overrides: Any) -> Relay:
        made.append(Relay(redis_client, vtex, settings(**overrides)))
        return made[-1]

    yield make
    for each in made:
        each.client.close()


@pytest.fixture
def relay(make_relay: Callable[..., Relay]) -> Relay:
    return make_relay()


@pytest.fixture
def fast(make_relay: Callable[..., Relay]) -> Relay:
    """A relay whose retries are due within milliseconds (the other settings are defaults)."""
    return make_relay(retry_backoff_base=0.001, retry_backoff_max=0.002)


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger=delivery.log.name)
    return caplog


class TestRetryExhaustion:
    def test_the_default_is_eight_tries(self) -> None:
        assert DEFAULT_ATTEMPTS == 8  # README: RETRY_MAX_ATTEMPTS defaults to 8
        assert settings().retry_max_attempts == DEFAULT_ATTEMPTS

    def test_tries_one_to_seven_retry_and_the_eighth_is_dead(
        self, relay: Relay, vtex: FakeVtex
    ) -> None:
        vtex.answer = respond(503, text="busy")
        job = invoice()
        tries = [relay.decide(job, claim(tries=n)) for n in range(1, DEFAULT_ATTEMPTS + 1)]
        assert [t.decision for t in tries] == ["retry"] * 7 + ["dead"]
        for n, tried in enumerate(tries[:-1], start=1):
            assert 0 <= tried.delay <= bound(n, relay.settings)
        assert (tries[-1].delay, tries[-1].pause_account) == (0.0, 0.0)
        assert {(t.attempt.outcome, t.attempt.status, t.attempt.message) for t in tries} == {
            ("retryable", 503, "busy")
        }
        assert all(t.pause_account == 0.0 for t in tries)  # a 503 is about the job, not the account
        assert vtex.methods() == ["POST"] * 8

    def test_through_run_the_job_ends_dead_with_every_attempt(
        self, fast: Relay, vtex: FakeVtex, logs: pytest.LogCaptureFixture
    ) -> None:
        vtex.answer = respond(503, text="busy")
        job = invoice()
        fast.enqueue(job)
        results = []
        for _ in range(DEFAULT_ATTEMPTS):
            results.append(fast.run(job))
            if results[-1].ending == "retry":
                assert fast.job(job)["state"] == "retrying"
                fast.retry_due()
        assert [r.ending for r in results] == ["retry"] * 7 + ["dead"]
        assert results[-1].text == "dead: HTTP 503: busy"
        retry = results[0]
        assert retry.when is not None
        assert retry.tried is not None
        assert re.fullmatch(
            r"HTTP 503: busy; next try at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00 \(in 0\.0s\)",
            retry.text,
        )
        assert abs(retry.when - datetime.now(UTC)) < timedelta(seconds=5)

        state = fast.job(job)
        assert (state["state"], state["tries"]) == ("dead", "8")
        assert [a.outcome for a in fast.attempts(job)] == ["retryable"] * 8
        assert fast.order(job)["state"] == "held"
        assert fast.redis.hget(DEAD, job.job_id) == OrderRef.of(job).tag.encode()
        assert vtex.methods() == ["POST"] * 8
        assert "dead after 8 tries: HTTP 503: busy" in logs.text

        # A dead job's message, delivered again, runs nothing.
        again = fast.run(job)
        assert (again.ending, again.text) == (
            "dropped",
            "not run: the job is not ready (stale message)",
        )
        assert len(vtex.requests) == 8


def by_account(answers: dict[str, httpx.Response]) -> Any:
    return lambda request: answers[request.url.path.split("/")[1]]


class TestAccountPause:
    def test_a_429_pauses_its_account_for_retry_after(self, relay: Relay, vtex: FakeVtex) -> None:
        vtex.answer = by_account(
            {
                "acme": httpx.Response(429, headers={"Retry-After": "7"}, text="slow down"),
                "other": httpx.Response(200, json={"receipt": "r-other"}),
            }
        )
        first, same_account, other_account = invoice("o-1"), invoice("o-2"), invoice("o-3", "other")
        relay.enqueue(first, same_account, other_account)

        result = relay.run(first)
        assert result.ending == "retry"
        assert result.tried is not None
        assert result.tried.attempt.retry_after == 7.0
        assert result.tried.delay == result.tried.pause_account == 7.0
        left = relay.pause_left("acme")
        assert left is not None
        assert 6.5 < left <= 7.0
        assert relay.redis.pttl(OrderRef("acme", "-").account_key("pause")) <= 7000

        waiting = relay.run(same_account)
        assert waiting.ending == "wait"
        assert re.fullmatch(
            r"waiting [67]\.\d\ds for the account's rate limit or 429 pause", waiting.text
        )
        throttled = relay.job(same_account)
        assert throttled["state"] == "throttled"
        assert 6 < float(throttled["due_at"]) - redis_now(relay.redis) < 7
        assert throttled.get("tries", "0") == "0"  # no try counted

        assert relay.run(other_account).ending == "done"
        assert relay.pause_left("other") is None
        assert [r.url.path.split("/")[6] for r in vtex.requests] == ["o-1", "o-3"]

    @pytest.mark.parametrize(("pause", "expected"), [(6.0, 6.0), (2.0, 4.2)])
    def test_a_429_without_retry_after_pauses_for_vtex_429_pause(
        self,
        relay: Relay,
        vtex: FakeVtex,
        monkeypatch: pytest.MonkeyPatch,
        pause: float,
        expected: float,
    ) -> None:
        """VTEX advises about a minute after a 429: VTEX_429_PAUSE, or the backoff if longer."""
        asked: list[tuple[Any, ...]] = []

        def backoff(*args: Any) -> float:
            asked.append(args)
            return 4.2  # a draw of the full jitter, fixed for the test

        monkeypatch.setattr(delivery, "retry_delay", backoff)
        relay.settings = relay.settings.model_copy(update={"vtex_429_pause": pause})
        vtex.answer = respond(429, text="slow down")
        job, same_account = invoice("o-1"), invoice("o-2")
        relay.enqueue(job, same_account)
        result = relay.run(job)
        assert result.ending == "retry"
        assert result.tried is not None
        assert result.tried.attempt.retry_after is None
        assert asked == [(1, 1.0, 300.0, None)]  # try 1, the default base and cap
        assert result.tried.delay == 4.2
        assert result.tried.pause_account == expected
        left = relay.pause_left("acme")
        assert left is not None
        assert expected - 0.5 < left <= expected
        assert relay.run(same_account).ending == "wait"

    def test_a_429_on_the_last_try_still_pauses_the_account(
        self, relay: Relay, vtex: FakeVtex
    ) -> None:
        vtex.answer = respond(429, headers={"Retry-After": "7"})
        tried = relay.decide(invoice(), claim(tries=DEFAULT_ATTEMPTS))
        assert (tried.decision, tried.delay, tried.pause_account) == ("dead", 0.0, 7.0)

    @pytest.mark.parametrize("status", [408, 500, 503])
    def test_other_retryable_answers_pause_nothing(
        self, relay: Relay, vtex: FakeVtex, status: int
    ) -> None:
        vtex.answer = respond(status, headers={"Retry-After": "7"})
        job = invoice()
        relay.enqueue(job)
        result = relay.run(job)
        assert result.ending == "retry"
        assert result.tried is not None
        assert result.tried.pause_account == 0.0
        assert relay.pause_left("acme") is None


KINDS = [invoice, tracking_number, tracking]


class TestReconcileInTheTry:
    @pytest.mark.parametrize("make", KINDS, ids=lambda make: make.__name__)
    def test_an_uncertain_job_that_landed_is_done_without_a_write(
        self, relay: Relay, vtex: FakeVtex, logs: pytest.LogCaptureFixture, make: Any
    ) -> None:
        vtex.answer = order_then(LANDED)
        tried = relay.decide(make(), claim(tries=2, uncertain=True))
        assert (tried.decision, tried.attempt.outcome) == ("done", "reconciled")
        assert vtex.methods() == ["GET"]
        assert "already at VTEX (an earlier try landed), not sent again" in logs.text

    @pytest.mark.parametrize(
        ("make", "write"), [(invoice, "POST"), (tracking_number, "PATCH"), (tracking, "PUT")]
    )
    def test_an_uncertain_job_not_at_vtex_is_sent(
        self, relay: Relay, vtex: FakeVtex, make: Any, write: str
    ) -> None:
        vtex.answer = order_then(NOT_THERE)
        tried = relay.decide(make(), claim(tries=2, uncertain=True))
        assert (tried.decision, tried.attempt.outcome) == ("done", "delivered")
        assert vtex.methods() == ["GET", write]

    def test_a_certain_job_is_sent_without_reading_the_order(
        self, relay: Relay, vtex: FakeVtex
    ) -> None:
        vtex.answer = order_then(LANDED)
        assert relay.decide(invoice(), claim(tries=1)).attempt.outcome == "delivered"
        assert vtex.methods() == ["POST"]

    @pytest.mark.parametrize(
        "answer",
        [httpx.Response(503, text="down"), httpx.Response(200, text="<html>")],
        ids=["5xx", "not-json"],
    )
    def test_a_failed_get_is_a_retry_and_nothing_is_sent(
        self, relay: Relay, vtex: FakeVtex, answer: httpx.Response
    ) -> None:
        vtex.answer = order_then(answer)
        tried = relay.decide(invoice(), claim(tries=2, uncertain=True))
        assert (tried.decision, tried.attempt.outcome) == ("retry", "retryable")
        assert tried.attempt.status == answer.status_code
        assert vtex.methods() == ["GET"]

    def test_a_time_out_then_a_reconciled_try(self, fast: Relay, vtex: FakeVtex) -> None:
        """Through run(): a POST whose answer never came marks the job uncertain; the next try
        finds the invoice at VTEX and ends the job done, without a second POST."""

        def timed_out(request: httpx.Request) -> httpx.Response:
            raise httpx.ReadTimeout("no answer", request=request)

        vtex.answer = timed_out
        job = invoice()
        fast.enqueue(job)
        first = fast.run(job)
        assert first.ending == "retry"
        assert first.tried is not None
        assert first.tried.attempt.maybe_applied
        assert fast.job(job)["uncertain"] == "1"

        fast.retry_due()
        vtex.answer = order_then(LANDED)
        second = fast.run(job)
        assert (second.ending, second.text) == ("done", "reconciled")
        assert vtex.methods() == ["POST", "GET"]
        assert [a.outcome for a in fast.attempts(job)] == ["retryable", "reconciled"]
        assert fast.order(job)["state"] == "idle"


class TestLeaseExpired:
    @pytest.mark.parametrize("uncertain", [False, True])
    def test_nothing_leaves_after_send_by(
        self, relay: Relay, vtex: FakeVtex, uncertain: bool
    ) -> None:
        with pytest.raises(LeaseExpired, match="the job's lease could run out"):
            relay.decide(invoice(), claim(uncertain=uncertain), send_by=time.monotonic() - 1)
        assert vtex.requests == []

    def test_run_returns_not_sent_and_leaves_the_job_to_its_lease(
        self,
        relay: Relay,
        vtex: FakeVtex,
        logs: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        # A worker frozen between its claim and its call: the send-by went by meanwhile.
        monkeypatch.setattr(delivery, "send_deadline", lambda *_: time.monotonic() - 1)
        job = invoice()
        relay.enqueue(job)
        result = relay.run(job)
        assert result.ending == "not-sent"
        assert result.text.startswith("not sent: the job's lease could run out before this call")
        assert vtex.requests == []
        state = relay.job(job)
        assert state["state"] == "running"
        assert "lease_token" in state
        assert relay.redis.zscore(LEASES, OrderRef.of(job).member(job.job_id)) is not None
        assert relay.attempts(job) == []
        assert "the job is recovered when its lease ends" in logs.text

    def test_the_send_deadline(self, relay: Relay) -> None:
        the_claim = Claim("run", seq=1, tries=1, hold=0.5)
        # lease 11 s, timeout 2 s: the request may leave until 11 + 0.5 - (2 * 2 + 1) s after.
        assert delivery.send_deadline(100.0, the_claim, relay.settings) == 106.5

    def test_over_a_real_socket(self, sandbox: SandboxControl) -> None:
        real = settings(
            vtex_base_url=SANDBOX_URL + "/{account}", vtex_app_key=APP_KEY, vtex_app_token=APP_TOKEN
        )
        job = invoice("o-late", "teststore")
        with OmsClient(real) as client:
            with pytest.raises(LeaseExpired):
                decide(job, claim(), time.monotonic() - 1, client=client, settings=real)
            assert sandbox.requests(order_id="o-late") == []
            in_time = decide(job, claim(), time.monotonic() + 30, client=client, settings=real)
        assert in_time.attempt.outcome == "delivered"
        assert [r.method for r in sandbox.requests(order_id="o-late")] == ["POST"]


class TestOutcomes:
    def test_done_advances_the_order(self, relay: Relay, vtex: FakeVtex) -> None:
        first, second = invoice(), tracking_number()
        relay.enqueue(first, second)
        assert relay.queued() == [("invoice", first.job_id)]

        result = relay.run(first, worker="w-test")
        assert (result.ending, result.text) == ("done", "delivered")
        assert result.tried is not None
        assert result.tried.attempt.worker == "w-test"
        done = relay.job(first)
        assert done["state"] == "done"
        assert not relay.redis.exists(OrderRef.of(first).body_key(first.job_id))  # kept until done
        assert relay.attempts(first)[0].message == "receipt r-1"
        assert relay.job(second)["state"] == "ready"
        assert relay.queued() == [("invoice", first.job_id), ("tracking-number", second.job_id)]
        assert relay.order(first)["head"] == "2"

        assert relay.run(second).ending == "done"
        assert (relay.order(first)["head"], relay.order(first)["state"]) == ("0", "idle")
        assert vtex.methods() == ["POST", "PATCH"]

    def test_a_refusal_is_dead_and_holds_the_order(
        self, relay: Relay, vtex: FakeVtex, logs: pytest.LogCaptureFixture
    ) -> None:
        vtex.answer = respond(404, json={"error": {"message": "Invoice Not Found"}})
        job, later = tracking_number(), tracking()
        relay.enqueue(job, later)
        result = relay.run(job)
        assert (result.ending, result.text) == ("dead", "dead: HTTP 404: Invoice Not Found")
        assert result.tried is not None
        assert (result.tried.attempt.outcome, result.tried.attempt.status) == ("permanent", 404)
        assert relay.order(job)["state"] == "held"
        assert relay.job(later)["state"] == "queued"
        assert f"(job {job.job_id}): refused by VTEX: HTTP 404: Invoice Not Found" in logs.text

    def test_a_busy_or_queued_job_is_dropped(
        self, relay: Relay, vtex: FakeVtex, logs: pytest.LogCaptureFixture
    ) -> None:
        running, queued = invoice(), tracking_number()
        relay.enqueue(running, queued)
        assert (
            relay.ordering.claim(OrderRef.of(running), running.job_id, "other", 11).verdict == "run"
        )
        busy, stale = relay.run(running), relay.run(queued)
        assert (busy.ending, busy.text) == (
            "dropped",
            "not run: the job is not ready (busy message)",
        )
        assert (stale.ending, stale.text) == (
            "dropped",
            "not run: the job is not ready (stale message)",
        )
        assert vtex.requests == []
        assert "message dropped, the job is not ready (busy)" in logs.text

    def test_a_lease_lost_during_the_call_records_nothing(
        self, relay: Relay, vtex: FakeVtex, logs: pytest.LogCaptureFixture
    ) -> None:
        job = invoice()
        key = OrderRef.of(job).job_key(job.job_id)

        def taken_over(request: httpx.Request) -> httpx.Response:
            relay.redis.hset(key, "lease_token", "another-worker")  # its lease ran out meanwhile
            return delivered()(request)

        vtex.answer = taken_over
        relay.enqueue(job)
        result = relay.run(job)
        assert result.ending == "lost"
        assert result.text == (
            "outcome not recorded: the lease ran out and another worker took the job over"
        )
        state = relay.job(job)
        assert (state["state"], state["lease_token"]) == ("running", "another-worker")
        assert "lease ran out during the call; another worker took the job over" in logs.text


class TestRedaction:
    def test_the_attempt_and_the_result_are_scrubbed(self, relay: Relay, vtex: FakeVtex) -> None:
        vtex.answer = respond(400, json={"message": "bad key s3cret-xyz here"})
        job = invoice()
        relay.enqueue(job)
        result = relay.run(job, redact=Redactor(["s3cret-xyz"]))
        assert result.text == "dead: HTTP 400: bad key [redacted] here"
        assert relay.attempts(job)[0].message == "bad key [redacted] here"

    def test_by_default_the_settings_token_is_cut(self, relay: Relay, vtex: FakeVtex) -> None:
        # The client scrubs its own token; the try scrubs the settings' (here another one).
        other = settings(vtex_app_token="OTHER-TOKEN-123")
        vtex.answer = respond(400, text="echo OTHER-TOKEN-123")
        tried = decide(
            invoice(), claim(), time.monotonic() + LATER, client=relay.client, settings=other
        )
        assert tried.attempt.message == "echo [redacted]"


class TestTheTask:
    """tasks/delivery.py: the process's collaborators in, Flower's SUCCESS / RETRY / FAILURE out."""

    @pytest.fixture
    def given(self, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
        results: list[Any] = []

        def fake_run(job: Job, **kwargs: Any) -> Result:
            assert kwargs["client"] is tasks.delivery.oms_client()
            assert kwargs["redact"] is worker.app.redact
            assert kwargs["logger"] is tasks.delivery.log
            assert isinstance(kwargs["ordering"], Ordering)
            result: Result = results.pop(0)
            return result

        monkeypatch.setattr(tasks.delivery, "run", fake_run)
        # The scripts bound to a client that is never called: no Redis, no preflight here.
        scripts = Ordering(redis.Redis(port=1))
        monkeypatch.setattr(tasks.delivery, "ordering", lambda: scripts)
        return results

    def test_done_is_the_result(self, given: list[Any]) -> None:
        given.append(Result("done", "delivered"))
        assert tasks.delivery.run_job(invoice()) == "delivered"
        given.append(Result("wait", "waiting 2.00s for the account's rate limit or 429 pause"))
        assert tasks.delivery.run_job(invoice()).startswith("waiting")

    def test_retry_raises_celery_retry_with_when(self, given: list[Any]) -> None:
        when = datetime.now(UTC) + timedelta(seconds=3)
        given.append(Result("retry", "HTTP 503: busy; next try at ...", when=when))
        with pytest.raises(Retry) as caught:
            tasks.delivery.run_job(invoice())
        assert isinstance(caught.value.exc, RetryableError)
        assert str(caught.value.exc) == "HTTP 503: busy; next try at ..."
        assert caught.value.when == when

    def test_dead_raises_job_dead(self, given: list[Any]) -> None:
        given.append(Result("dead", "dead: HTTP 404: Invoice Not Found"))
        with pytest.raises(JobDead, match=r"^dead: HTTP 404: Invoice Not Found$"):
            tasks.delivery.run_job(invoice())
