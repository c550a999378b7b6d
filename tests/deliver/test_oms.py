"""The OMS client: the requests it sends, how it classifies every outcome, what it never leaks."""

import email.utils
import json
import logging
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import ThreadingHTTPServer
from typing import Any, ClassVar

import httpx
import pytest
import respx

import vtex_relay  # noqa: F401 - before config: importing config first hits an import cycle
from config.settings import Settings
from tests.harness import JsonHandler, wait_for
from vtex_relay.deliver.oms import OmsClient
from vtex_relay.errors import ConfigurationError, OmsError, PermanentError, RetryableError
from vtex_relay.models import Receipt
from vtex_relay.operations import OPERATIONS as TABLE

KEY = "vtexappkey-unit-XYZ"
TOKEN = "UNIT-TOKEN-d0-not-leak-8c41e6"
SECRET = TOKEN[:12]  # even part of the token must not appear
ACCOUNT = "acme"
ORDER = "1172452900788-01"
INVOICE = "DFG-v7731485plzv-01"
BASE = f"http://127.0.0.1:8765/{ACCOUNT}"
ORDERS = "/api/oms/pvt/orders"
RECEIPT = {
    "date": "2024-02-07T15:22:56.7612218-02:00",
    "orderId": ORDER,
    "receipt": "38e0e47da2934847b489216d208cfd91",
}
INVOICE_BODY: dict[str, Any] = {
    "type": "Output",
    "issuanceDate": "2024-01-31",
    "invoiceNumber": INVOICE,
    "invoiceValue": "10000",
    "items": [{"id": "123", "price": 10000, "quantity": 1}],
}
PATCH_BODY: dict[str, Any] = {
    "trackingNumber": "87658",
    "trackingUrl": None,
    "courier": None,
    "dispatchedDate": None,
}
PUT_BODY: dict[str, Any] = {"isDelivered": False, "deliveredDate": None, "events": []}


def make_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "vtex_app_key": KEY,
        "vtex_app_token": TOKEN,
        "vtex_base_url": "http://127.0.0.1:8765/{account}",
        "vtex_timeout": 3.0,
        "lease_seconds": 60,  # the test environment's short lease is for 2-second calls
        **overrides,
    }
    return Settings(**values)


@pytest.fixture
def vtex() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router


@pytest.fixture
def client() -> Iterator[OmsClient]:
    with OmsClient(make_settings()) as oms:
        yield oms


def call(
    client: OmsClient,
    operation: str,
    account: str = ACCOUNT,
    order_id: str = ORDER,
    invoice_number: str = INVOICE,
) -> Any:
    """Make one of the four calls by name, with the standard arguments unless given."""
    if operation == "post":
        return client.write(TABLE["invoice"], account, order_id, None, INVOICE_BODY)
    if operation == "patch":
        op = TABLE["tracking-number"]
        return client.write(op, account, order_id, invoice_number, PATCH_BODY)
    if operation == "put":
        return client.write(TABLE["tracking"], account, order_id, invoice_number, PUT_BODY)
    return client.get_order(account, order_id)


OPERATIONS = [
    ("post", "POST", f"{ORDERS}/{ORDER}/invoice", INVOICE_BODY),
    ("patch", "PATCH", f"{ORDERS}/{ORDER}/invoice/{INVOICE}", PATCH_BODY),
    ("put", "PUT", f"{ORDERS}/{ORDER}/invoice/{INVOICE}/tracking", PUT_BODY),
    ("get", "GET", f"{ORDERS}/{ORDER}", None),
]


def fail_with(vtex: respx.MockRouter, client: OmsClient, **response: Any) -> OmsError:
    vtex.post(f"{ORDERS}/{ORDER}/invoice").respond(**response)
    with pytest.raises(OmsError) as caught:
        client.write(TABLE["invoice"], ACCOUNT, ORDER, None, INVOICE_BODY)
    return caught.value


class TestRequests:
    """Method, URL, headers and body of each operation."""

    @pytest.mark.parametrize(("operation", "method", "path", "body"), OPERATIONS)
    def test_method_path_headers_body(
        self,
        vtex: respx.MockRouter,
        client: OmsClient,
        operation: str,
        method: str,
        path: str,
        body: Any,
    ) -> None:
        route = vtex.route(method=method, path=path).respond(200, json=RECEIPT)
        call(client, operation)
        assert route.call_count == 1
        request = route.calls.last.request
        assert str(request.url) == BASE + path
        assert request.headers["Accept"] == "application/json"
        assert request.headers["Content-Type"] == "application/json"
        assert request.headers["X-VTEX-API-AppKey"] == KEY
        assert request.headers["X-VTEX-API-AppToken"] == TOKEN
        if body is None:
            assert request.content == b""
        else:
            assert json.loads(request.content) == body

    def test_default_base_url(self) -> None:
        url = f"https://{ACCOUNT}.vtexcommercestable.com.br{ORDERS}/{ORDER}/invoice"
        with respx.mock() as vtex, OmsClient(make_settings(vtex_base_url=None)) as client:
            route = vtex.post(url).respond(200, json=RECEIPT)
            client.write(TABLE["invoice"], ACCOUNT, ORDER, None, INVOICE_BODY)
        assert route.call_count == 1

    def test_templated_base_url_uses_the_account(self) -> None:
        settings = make_settings(vtex_base_url="http://127.0.0.1:8765/{environment}/{account}/")
        url = f"http://127.0.0.1:8765/vtexcommercestable/shop-2{ORDERS}/{ORDER}"
        with respx.mock() as vtex, OmsClient(settings) as client:
            route = vtex.get(url).respond(200, json={"orderId": ORDER})
            assert client.get_order("shop-2", ORDER) == {"orderId": ORDER}
        assert route.call_count == 1

    def test_credentials_are_required(self) -> None:
        with pytest.raises(ConfigurationError, match="VTEX_APP_TOKEN"):
            OmsClient(make_settings(vtex_app_token=None))

    def test_many_threads_share_one_client(self, vtex: respx.MockRouter, client: OmsClient) -> None:
        vtex.post(f"{ORDERS}/{ORDER}/invoice").respond(200, json=RECEIPT)
        with ThreadPoolExecutor(max_workers=16) as pool:
            receipts = list(pool.map(lambda _: call(client, "post"), range(64)))
        assert receipts == [Receipt.model_validate(RECEIPT)] * 64

    def test_each_thread_keeps_a_connection_of_its_own(self) -> None:
        """A thread's calls go over one connection, kept between them, that no other thread
        uses (here the threads take turns: a shared pool would hand each the other's idle
        connection); closing the client closes every thread's connection."""
        with local_server() as base:
            client = OmsClient(make_settings(vtex_base_url=base))
            with ThreadPoolExecutor(max_workers=1) as one, ThreadPoolExecutor(1) as other:
                for _ in range(3):
                    for pool, order_id in ((one, "o-1"), (other, "o-2")):
                        pool.submit(
                            client.write, TABLE["invoice"], ACCOUNT, order_id, None, INVOICE_BODY
                        ).result(timeout=10)
                ports = [
                    {port for path, port in _Handler.seen if f"/{order_id}/" in path}
                    for order_id in ("o-1", "o-2")
                ]
                assert [len(used) for used in ports] == [1, 1], _Handler.seen
                assert ports[0] != ports[1], _Handler.seen
                client.close()
                wait_for(
                    lambda: _Handler.open_connections == 0,
                    timeout=10,
                    what="the server to see both connections closed",
                )

    def test_closed_by_the_context_manager(self) -> None:
        with OmsClient(make_settings()) as client:
            pass
        with pytest.raises(RuntimeError):
            client.get_order(ACCOUNT, ORDER)


BAD_TARGETS = [
    (operation, account, order_id, INVOICE)
    for account, order_id in [
        ("evil.com/x", ORDER),
        ("evil.com", ORDER),
        ("acme@evil.com", ORDER),
        (ACCOUNT, "../x"),
        (ACCOUNT, "1?x=1"),
        (ACCOUNT, "a#b"),
        (ACCOUNT, ""),
    ]
    for operation in ("post", "patch", "put", "get")
] + [
    (operation, ACCOUNT, ORDER, invoice_number)
    for invoice_number in ("6584634/09", "..", "a%2Fb", "a b", "")
    for operation in ("patch", "put")
]


class TestIdentifiers:
    """Values that shape the URL are checked again; a bad one sends nothing."""

    @pytest.mark.parametrize(("operation", "account", "order_id", "invoice_number"), BAD_TARGETS)
    def test_refused_without_a_request(
        self,
        vtex: respx.MockRouter,
        client: OmsClient,
        operation: str,
        account: str,
        order_id: str,
        invoice_number: str,
    ) -> None:
        vtex.route().respond(200, json=RECEIPT)
        with pytest.raises(PermanentError) as caught:
            call(client, operation, account, order_id, invoice_number)
        assert caught.value.status is None
        assert caught.value.message.startswith("invalid ")
        assert vtex.calls.call_count == 0


class TestSuccess:
    @pytest.mark.parametrize("operation", ["post", "patch", "put"])
    @pytest.mark.parametrize("status", [200, 201, 202])
    def test_receipt_parsed(
        self, vtex: respx.MockRouter, client: OmsClient, operation: str, status: int
    ) -> None:
        vtex.route().respond(status, json={**RECEIPT, "extra": 1})
        assert call(client, operation) == Receipt.model_validate(RECEIPT)

    @pytest.mark.parametrize(
        "response",
        [
            {"status_code": 204},
            {"status_code": 200, "text": "OK"},
            {"status_code": 200, "text": "<html>"},
            {"status_code": 200, "json": ["not", "an", "object"]},
            {"status_code": 200, "json": {"receipt": 123}},
        ],
    )
    def test_unreadable_2xx_is_still_success(
        self, vtex: respx.MockRouter, client: OmsClient, response: dict[str, Any]
    ) -> None:
        vtex.route().respond(**response)
        assert call(client, "post") == Receipt()

    def test_get_order_returns_the_json(self, vtex: respx.MockRouter, client: OmsClient) -> None:
        order = {"orderId": ORDER, "status": "handling", "packageAttachment": {"packages": []}}
        vtex.get(f"{ORDERS}/{ORDER}").respond(200, json=order)
        assert client.get_order(ACCOUNT, ORDER) == order

    @pytest.mark.parametrize("response", [{"text": "not json"}, {"json": []}, {"text": ""}])
    def test_get_order_unreadable_is_retryable(
        self, vtex: respx.MockRouter, client: OmsClient, response: dict[str, Any]
    ) -> None:
        # An empty dict would read as "no invoice yet" and could trigger a second POST.
        vtex.get(f"{ORDERS}/{ORDER}").respond(200, **response)
        with pytest.raises(RetryableError) as caught:
            client.get_order(ACCOUNT, ORDER)
        assert caught.value.status == 200


class TestStatusClassification:
    @pytest.mark.parametrize("status", [408, 500, 502, 503, 504, 599])
    def test_retryable_statuses(
        self, vtex: respx.MockRouter, client: OmsClient, status: int
    ) -> None:
        error = fail_with(vtex, client, status_code=status, text="busy")
        assert isinstance(error, RetryableError)
        assert (error.status, error.message, error.retry_after) == (status, "busy", None)

    @pytest.mark.parametrize("status", [400, 401, 403, 404, 405, 409, 422, 301, 302, 307])
    def test_permanent_statuses(
        self, vtex: respx.MockRouter, client: OmsClient, status: int
    ) -> None:
        error = fail_with(vtex, client, status_code=status, text="no")
        assert isinstance(error, PermanentError)
        assert error.status == status

    def test_redirect_not_followed(self, vtex: respx.MockRouter, client: OmsClient) -> None:
        elsewhere = vtex.route(host="elsewhere.example").respond(200, json=RECEIPT)
        error = fail_with(
            vtex, client, status_code=302, headers={"Location": "http://elsewhere.example/x"}
        )
        assert isinstance(error, PermanentError)
        assert elsewhere.call_count == 0

    @pytest.mark.parametrize("operation", ["patch", "put", "get"])
    def test_every_operation_classifies(
        self, vtex: respx.MockRouter, client: OmsClient, operation: str
    ) -> None:
        vtex.route().respond(503)
        with pytest.raises(RetryableError):
            call(client, operation)


class TestRetryAfter:
    @pytest.mark.parametrize(
        ("header", "expected"),
        [
            ("30", 30.0),
            ("0", 0.0),
            (" 7 ", 7.0),
            ("1.5", 1.5),
            ("soon", None),
            ("-5", None),
            ("", None),
            ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # in the past: no wait
        ],
    )
    def test_seconds_and_garbage(
        self, vtex: respx.MockRouter, client: OmsClient, header: str, expected: float | None
    ) -> None:
        error = fail_with(vtex, client, status_code=429, headers={"Retry-After": header})
        assert isinstance(error, RetryableError)
        assert (error.status, error.retry_after) == (429, expected)

    def test_http_date_becomes_seconds_from_now(
        self, vtex: respx.MockRouter, client: OmsClient
    ) -> None:
        header = email.utils.formatdate(time.time() + 120, usegmt=True)
        error = fail_with(vtex, client, status_code=429, headers={"Retry-After": header})
        assert isinstance(error, RetryableError)
        assert error.retry_after is not None
        assert 100 < error.retry_after <= 120

    def test_absent(self, vtex: respx.MockRouter, client: OmsClient) -> None:
        error = fail_with(vtex, client, status_code=429)
        assert isinstance(error, RetryableError)
        assert error.retry_after is None
        assert error.maybe_applied is False


class TestVtexMessage:
    """A refusal carries VTEX's own message, bounded to 500 characters."""

    @pytest.mark.parametrize(
        ("response", "message"),
        [
            (
                {"json": {"error": {"code": "1", "message": "Invoice Not Found"}}},
                "Invoice Not Found",
            ),
            ({"json": {"message": "Order not found"}}, "Order not found"),
            ({"json": {"Message": "The request is invalid."}}, "The request is invalid."),
            ({"json": {"error": "Value above order total"}}, "Value above order total"),
            ({"json": {"code": 7}}, '{"code":7}'),
            ({"text": "plain refusal"}, "plain refusal"),
            ({"text": ""}, "Bad Request"),
        ],
    )
    def test_message_extracted(
        self, vtex: respx.MockRouter, client: OmsClient, response: dict[str, Any], message: str
    ) -> None:
        error = fail_with(vtex, client, status_code=400, **response)
        assert isinstance(error, PermanentError)
        assert error.message == message
        assert str(error) == f"HTTP 400: {message}"

    @pytest.mark.parametrize("response", [{"text": "x" * 5000}, {"json": {"message": "y" * 5000}}])
    def test_message_bounded(
        self, vtex: respx.MockRouter, client: OmsClient, response: dict[str, Any]
    ) -> None:
        error = fail_with(vtex, client, status_code=400, **response)
        assert len(error.message) == 500


class TestTransportErrors:
    @pytest.mark.parametrize(
        "exc",
        [httpx.ConnectError("refused"), httpx.ConnectTimeout("slow"), httpx.PoolTimeout("full")],
    )
    def test_not_sent(
        self, vtex: respx.MockRouter, client: OmsClient, exc: httpx.HTTPError
    ) -> None:
        vtex.route().mock(side_effect=exc)
        with pytest.raises(RetryableError) as caught:
            call(client, "post")
        assert caught.value.maybe_applied is False
        assert caught.value.status is None
        assert type(exc).__name__ in caught.value.message

    @pytest.mark.parametrize(
        "exc",
        [
            httpx.ReadTimeout("slow"),
            httpx.WriteTimeout("slow"),
            httpx.ReadError("reset"),
            httpx.WriteError("broken pipe"),
            httpx.RemoteProtocolError("Server disconnected without sending a response."),
        ],
    )
    def test_maybe_applied(
        self, vtex: respx.MockRouter, client: OmsClient, exc: httpx.HTTPError
    ) -> None:
        vtex.route().mock(side_effect=exc)
        with pytest.raises(RetryableError) as caught:
            call(client, "post")
        assert caught.value.maybe_applied is True
        assert caught.value.status is None

    @pytest.mark.parametrize(
        "exc", [httpx.LocalProtocolError("bad header"), httpx.UnsupportedProtocol("ftp")]
    )
    def test_request_we_cannot_send(
        self, vtex: respx.MockRouter, client: OmsClient, exc: httpx.HTTPError
    ) -> None:
        vtex.route().mock(side_effect=exc)
        with pytest.raises(PermanentError) as caught:
            call(client, "post")
        assert caught.value.status is None

    def test_no_exception_chained(self, vtex: respx.MockRouter, client: OmsClient) -> None:
        # The httpx exception holds the request, whose headers hold the token.
        vtex.route().mock(side_effect=httpx.ReadTimeout("slow"))
        with pytest.raises(RetryableError) as caught:
            call(client, "post")
        assert caught.value.__cause__ is None
        assert caught.value.__context__ is None


def leaks(error: BaseException) -> bool:
    texts = [str(error), repr(error), repr(error.args), repr(vars(error))]
    return any(SECRET in text or KEY in text for text in texts)


class TestNoCredentialLeak:
    """The token never appears in an exception or a log record, whatever happens."""

    @pytest.mark.parametrize(
        "outcome",
        [
            {"status_code": 400, "json": {"message": f"bad token {TOKEN}"}},
            {"status_code": 401, "text": f"X-VTEX-API-AppToken: {TOKEN}"},
            {"status_code": 403, "text": "x" * 485 + TOKEN},  # token across the 500-char cut
            {"status_code": 429, "headers": {"Retry-After": "x"}},
            {"status_code": 500},
            {"side_effect": httpx.ConnectError("refused")},
            {"side_effect": httpx.ReadTimeout("slow")},
            {"side_effect": httpx.RemoteProtocolError("dropped")},
        ],
    )
    def test_errors_and_logs(
        self,
        vtex: respx.MockRouter,
        client: OmsClient,
        caplog: pytest.LogCaptureFixture,
        outcome: dict[str, Any],
    ) -> None:
        route = vtex.route()
        if "side_effect" in outcome:
            route.mock(side_effect=outcome["side_effect"])
        else:
            route.respond(**outcome)
        caplog.set_level(logging.DEBUG)
        with pytest.raises(OmsError) as caught:
            call(client, "post")
        assert not leaks(caught.value)
        assert SECRET not in caplog.text
        assert all(SECRET not in repr(record.__dict__) for record in caplog.records)

    def test_invalid_identifier(self, client: OmsClient) -> None:
        with pytest.raises(PermanentError) as caught:
            client.get_order(ACCOUNT, TOKEN + "/x")
        assert SECRET not in str(caught.value)

    def test_over_a_real_socket(self, caplog: pytest.LogCaptureFixture) -> None:
        """httpcore and h11 log at DEBUG over a real connection; none of it holds the token."""
        with local_server() as base, OmsClient(make_settings(vtex_base_url=base)) as client:
            caplog.set_level(logging.DEBUG)
            assert client.write(
                TABLE["invoice"], ACCOUNT, ORDER, None, INVOICE_BODY
            ) == Receipt.model_validate(RECEIPT)
            with pytest.raises(PermanentError) as caught:
                client.get_order(ACCOUNT, ORDER)
        assert not leaks(caught.value)
        assert any(record.name.startswith("httpcore") for record in caplog.records)
        assert SECRET not in caplog.text
        assert all(SECRET not in repr(record.__dict__) for record in caplog.records)


class _Handler(JsonHandler):
    protocol_version = "HTTP/1.1"  # keeps the connection open between requests
    seen: ClassVar[list[tuple[str, int]]] = []  # (path, client port) of each POST, in order
    open_connections = 0
    _counting = threading.Lock()

    def setup(self) -> None:
        super().setup()
        with self._counting:
            type(self).open_connections += 1

    def finish(self) -> None:
        super().finish()
        with self._counting:
            type(self).open_connections -= 1

    def do_POST(self) -> None:
        self.read_body()
        self.seen.append((self.path, self.client_address[1]))
        self.answer(200, json.dumps(RECEIPT).encode())

    def do_GET(self) -> None:
        self.answer(403, b'{"error": {"message": "Forbidden"}}')


class local_server:
    """A real HTTP server on a free port, for the duration of a ``with`` block."""

    def __enter__(self) -> str:
        _Handler.seen.clear()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return f"http://127.0.0.1:{self._server.server_address[1]}/{{account}}"

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
