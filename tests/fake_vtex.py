"""VTEX in the test process: an ``httpx.MockTransport`` that answers from a function and
records every request that reached it, and settings and an ``OmsClient`` that use it."""

from collections.abc import Callable
from typing import Any

import httpx

from vtex_relay.deliver.oms import OmsClient
from vtex_relay.settings import Settings

APP_KEY = "vtexappkey-fake-ABC"
APP_TOKEN = "FAKE-TOKEN-not-to-be-kept-91d3"
BASE_URL = "http://vtex.test/{account}"
ORDERS = "/api/oms/pvt/orders"
RECEIPT = {"date": "2024-02-07T15:22:56", "orderId": "x", "receipt": "r-1"}

Answer = Callable[[httpx.Request], httpx.Response]


def settings(**overrides: Any) -> Settings:
    """Settings for in-process tries against the fake VTEX. Given explicitly, so the test
    environment's (RETRY_MAX_ATTEMPTS=30 and short backoffs, for the worker processes) does not
    apply; a setting not given here or in *overrides* has its default."""
    values: dict[str, Any] = {
        "vtex_app_key": APP_KEY,
        "vtex_app_token": APP_TOKEN,
        "vtex_base_url": BASE_URL,
        "vtex_timeout": 2.0,
        "lease_seconds": 11.0,
        "retry_max_attempts": Settings.model_fields["retry_max_attempts"].default,
        "retry_backoff_base": Settings.model_fields["retry_backoff_base"].default,
        "retry_backoff_max": Settings.model_fields["retry_backoff_max"].default,
        "vtex_rate_limit": 0.0,
        **overrides,
    }
    return Settings(**values)


def respond(status: int = 200, **kwargs: Any) -> Answer:
    """Always the same answer (``json=``, ``text=``, ``headers=`` as for ``httpx.Response``)."""
    return lambda _request: httpx.Response(status, **kwargs)


def delivered() -> Answer:
    """VTEX accepting every write with a receipt."""
    return respond(200, json=RECEIPT)


def order_then(order: Any, write: Answer | None = None) -> Answer:
    """GET order answers *order* (a JSON value, or an ``httpx.Response``); writes answer *write*
    (default: accepted)."""
    write = write or delivered()

    def answer(request: httpx.Request) -> httpx.Response:
        if request.method != "GET":
            return write(request)
        return order if isinstance(order, httpx.Response) else httpx.Response(200, json=order)

    return answer


class FakeVtex:
    """Answers each request with *answer* and keeps every request that reached it."""

    def __init__(self, answer: Answer | None = None) -> None:
        self.answer = answer or delivered()
        self.requests: list[httpx.Request] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        # httpcore calls a request's "trace" hook as it starts writing the request to the
        # socket; that is where the OMS client's send-by deadline refuses a late request.
        # MockTransport has no httpcore, so it is called here the same way: a refused request
        # raises before it is recorded, as a real one raises before its bytes leave.
        trace = request.extensions.get("trace")
        if trace is not None:
            trace("http11.send_request_headers.started", {"request": request})
        self.requests.append(request)
        return self.answer(request)

    def client(self, settings: Settings) -> OmsClient:
        return OmsClient(settings, transport=httpx.MockTransport(self.handle))

    def methods(self) -> list[str]:
        return [request.method for request in self.requests]
