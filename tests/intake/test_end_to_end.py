"""The intake end to end: VTEX's three calls over real HTTP, enqueued, delivered by a real
worker to the sandbox as the ERP sent them; the account from each of its sources; an ERP that
retries after its own time-out; Redis going away and coming back."""

import os

import httpx
import pytest
import redis

from tests.conftest import APP_TOKEN
from tests.harness import Intake
from tests.intake_support import (
    INVOICE,
    ORDER,
    TRACKING,
    TRACKING_NUMBER,
    client,
    jobs_of,
    post_invoice,
)
from tests.processes import RedisServer, Worker, wait_for
from vtex_relay.ops import dead_letters
from vtex_relay.sandbox import RecordedRequest, SandboxControl
from vtex_relay.store.keys import OrderRef


def test_the_three_calls_reach_vtex_as_the_erp_sent_them(
    intake: str, sandbox: SandboxControl, worker: Worker
) -> None:
    # The examples as VTEX's spec has them (the guide's leave out or null two fields, which
    # the relay fixes: README); the relay sends what it receives.
    invoice = {**INVOICE, "courier": "Correios"}
    tracking_number = {**TRACKING_NUMBER, "dispatchedDate": None}
    tracking = {**TRACKING, "deliveredDate": None}
    with client(intake) as http:
        first = post_invoice(http, "1172452900788-01", invoice)
        number = invoice["invoiceNumber"]
        second = http.patch(f"{ORDER}/1172452900788-01/invoice/{number}", json=tracking_number)
        third = http.put(f"{ORDER}/1172452900788-01/invoice/{number}/tracking", json=tracking)
    ids = []
    for answer in (first, second, third):
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["orderId"] == "1172452900788-01"
        assert body["receipt"] == answer.headers["X-Relay-Job-Id"]
        assert body["date"]
        ids.append(body["receipt"])
    assert len(set(ids)) == 3

    def three() -> list[RecordedRequest] | None:
        requests = sandbox.requests()
        return requests if len(requests) == 3 else None

    got = wait_for(three)
    assert [(r.method, r.path, r.account, r.status) for r in got] == [
        ("POST", f"{ORDER}/1172452900788-01/invoice", "teststore", 200),
        ("PATCH", f"{ORDER}/1172452900788-01/invoice/{number}", "teststore", 200),
        ("PUT", f"{ORDER}/1172452900788-01/invoice/{number}/tracking", "teststore", 200),
    ]
    # 200 from a sandbox that accepts only the account's key pair: its credentials were sent.
    assert [r.body for r in got] == [invoice, tracking_number, tracking]


def test_get_order_passes_through_with_the_account_credentials(
    intake: str, sandbox: SandboxControl
) -> None:
    sandbox.seed_order("o-get", value=2499, account="teststore")
    with client(intake) as http:
        answer = http.get(f"{ORDER}/o-get")
    assert answer.status_code == 200, answer.text
    assert answer.json()["orderId"] == "o-get"
    assert answer.json()["value"] == 2499
    [seen] = sandbox.requests(method="GET")
    assert (seen.path, seen.account, seen.status) == (f"{ORDER}/o-get", "teststore", 200)


@pytest.mark.parametrize(
    ("url", "headers", "account"),
    [
        (f"{ORDER}/o-a/invoice", {"Host": "hoststore.vtexcommercestable.com.br"}, "hoststore"),
        (f"{ORDER}/o-a/invoice", {"Host": "ownhost.relay.test:8080"}, "ownhost"),
        (f"{ORDER}/o-a/invoice?an=QueryStore", {}, "querystore"),
        (f"/pathstore{ORDER}/o-a/invoice", {}, "pathstore"),
        (f"{ORDER}/o-a/invoice", {}, "teststore"),
    ],
    ids=["vtex-host", "own-host", "an", "path-prefix", "default"],
)
def test_the_account_from_each_source(
    intake: str, redis_client: redis.Redis, url: str, headers: dict[str, str], account: str
) -> None:
    with client(intake) as http:
        answer = http.post(url, json=INVOICE, headers=headers)
    assert answer.status_code == 200, answer.text
    assert jobs_of(redis_client, account, "o-a") == [answer.json()["receipt"]]


def test_an_identical_invoice_again_is_the_same_answer(
    intake: str, redis_client: redis.Redis
) -> None:
    with client(intake) as http:
        first, again = (post_invoice(http, "o-dup", INVOICE) for _ in range(2))
    assert first.status_code == again.status_code == 200
    assert again.json()["receipt"] == first.json()["receipt"]
    assert jobs_of(redis_client, "teststore", "o-dup") == [first.json()["receipt"]]


def test_an_erp_retrying_after_its_time_out_gets_its_job_and_vtex_one_post(
    intake: str, redis_client: redis.Redis, sandbox: SandboxControl, worker: Worker
) -> None:
    invoice = {**INVOICE, "courier": "Correios"}
    # Redis holds writes for 1.5 s: the ERP's call, with a 0.5 s time-out, gives up waiting.
    redis_client.client_pause(1500, all=False)  # writes only
    with client(intake) as http:
        with pytest.raises(httpx.ReadTimeout):
            post_invoice(http, "o-retry", invoice, timeout=0.5)
        retried = post_invoice(http, "o-retry", invoice)  # answered once Redis resumes
    assert retried.status_code == 200, retried.text
    assert jobs_of(redis_client, "teststore", "o-retry") == [retried.json()["receipt"]]
    ref = OrderRef("teststore", "o-retry")

    def done() -> dead_letters.OrderStatus | None:
        status = dead_letters.order_status(redis_client, ref)
        return status if status.jobs[0].state == "done" else None

    status = wait_for(done)
    assert [job.job_id for job in status.jobs] == [retried.json()["receipt"]]
    assert len(sandbox.requests(method="POST", order_id="o-retry")) == 1


@pytest.mark.processes  # a Redis of its own
def test_redis_stopped_is_503_and_it_serves_again_when_redis_is_back() -> None:
    own = RedisServer().start()
    env = {**os.environ, "REDIS_URL": own.url}
    intake = Intake(env=env).start()
    try:
        with client(intake.url) as http:
            assert post_invoice(http, "o-r1", INVOICE).status_code == 200
            own.stop()
            down = post_invoice(http, "o-r2", INVOICE)
            assert down.status_code == 503, down.text
            assert int(down.headers["Retry-After"]) > 0
            assert "unavailable" in down.json()["error"]["message"]
            assert http.get("/relay/ready").status_code == 503
            os.makedirs(own.dir, exist_ok=True)  # stop removed it
            own.start()

            def served() -> httpx.Response | None:
                answer = post_invoice(http, "o-r2", INVOICE)
                return answer if answer.is_success else None

            back = wait_for(served)
            assert back.json()["receipt"]
            assert http.get("/relay/ready").json() == {"status": "ok"}
        assert own.client().dbsize() > 0
        assert APP_TOKEN not in intake.log()
    finally:
        intake.stop()
        own.stop()
