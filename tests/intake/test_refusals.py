"""Every refusal of the CLI, through the intake: its status, VTEX's error shape, every bad field
named, no token in the answer, and nothing enqueued (Redis unchanged)."""

import json
import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest
import redis

from tests.conftest import APP_KEY
from tests.intake_support import (
    INVOICE,
    JSON,
    ORDER,
    TRACKING,
    client,
    post_invoice,
    snapshot,
    vtex_error,
)

NESTED = b"[" * 100_000 + b"]" * 100_000


@pytest.fixture
def http(intake: str) -> Iterator[httpx.Client]:
    with client(intake) as http:
        yield http


def raw_request(url: str, request: bytes) -> bytes:
    """Send *request* as is (no client normalising its path) and read the answer."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname or "", parts.port or 80), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def headers_for(body: bytes) -> bytes:
    return (
        f"Host: x\r\nX-VTEX-API-AppKey: {APP_KEY}\r\nX-VTEX-API-AppToken: "
        "TOKEN-must-never-leak-5f1b2c9e7d\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()


def test_bad_fields_are_400_naming_every_one(http: httpx.Client, redis_client: redis.Redis) -> None:
    body = {**INVOICE, "invoiceValue": "24.99", "items": [{"id": 1, "price": "x"}]}
    del body["issuanceDate"]
    answer = post_invoice(http, "o-1", body)
    message = vtex_error(answer, 400)
    fields = {f["field"] for f in answer.json()["error"]["fields"]}
    assert {"body.issuanceDate", "body.invoiceValue", "body.items.0.id"} <= fields
    assert {"body.items.0.price", "body.items.0.quantity"} <= fields
    assert "nothing was enqueued" in message
    assert redis_client.dbsize() == 0


@pytest.mark.parametrize(
    "path",
    [
        f"{ORDER}/../x/invoice",
        f"{ORDER}/o-1/invoice/../x",
        f"{ORDER}/o%2F1/invoice",
        f"{ORDER}/o-1/invoice/NF%2F1",
        f"{ORDER}/o-1/invoice/NF%2F1/tracking",
        f"{ORDER}/%2E%2E/invoice",
        f"{ORDER}/o-1/invoice/NF@1",
        f"{ORDER}/-o/invoice",
    ],
)
def test_path_tricks_are_400_and_change_no_url(
    intake: str, redis_client: redis.Redis, path: str
) -> None:
    body = json.dumps(INVOICE).encode()
    method = "POST" if path.endswith("/invoice") else "PATCH"
    if path.endswith("/tracking"):
        method = "PUT"
    answer = raw_request(
        intake, f"{method} {path} HTTP/1.1\r\n".encode() + headers_for(body) + body
    )
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:300]
    assert b'"error"' in answer
    assert redis_client.dbsize() == 0


@pytest.mark.parametrize(
    ("query", "field"),
    [("?an=bad_store", "account (an)"), ("?an=a&an=b", "an"), ("?an=other", "account")],
)
def test_a_bad_or_ambiguous_account_is_400(
    intake: str, redis_client: redis.Redis, query: str, field: str
) -> None:
    with client(intake, Host="hoststore.vtexcommercestable.com.br") as http:
        answer = http.post(f"{ORDER}/o-1/invoice{query}", json=INVOICE)
    vtex_error(answer, 400)
    assert answer.json()["error"]["fields"][0]["field"] == field
    assert redis_client.dbsize() == 0


def test_a_conflicting_invoice_is_409_naming_the_existing_one(
    http: httpx.Client, redis_client: redis.Redis
) -> None:
    first = post_invoice(http, "o-1", INVOICE)
    assert first.status_code == 200
    before = snapshot(redis_client)
    other = {**INVOICE, "invoiceNumber": "NF-OTHER"}
    message = vtex_error(post_invoice(http, "o-1", other), 409)
    assert f"already has invoice {INVOICE['invoiceNumber']}" in message
    assert first.json()["receipt"] in message
    same_number = {**INVOICE, "invoiceValue": "1"}
    message = vtex_error(post_invoice(http, "o-1", same_number), 409)
    assert f"a different invoice under number {INVOICE['invoiceNumber']}" in message
    assert snapshot(redis_client) == before


def test_an_update_for_an_invoice_the_order_lacks_is_404_and_one_too_early_409(
    http: httpx.Client, redis_client: redis.Redis
) -> None:
    assert INVOICE["trackingNumber"] is None
    assert post_invoice(http, "o-1", INVOICE).status_code == 200
    before = snapshot(redis_client)
    answer = http.put(f"{ORDER}/o-1/invoice/NF-NONE/tracking", json=TRACKING)
    assert "has no invoice NF-NONE" in vtex_error(answer, 404)  # VTEX's answer
    assert answer.json()["error"]["fields"][0]["field"] == "invoiceNumber"
    answer = http.put(f"{ORDER}/o-1/invoice/{INVOICE['invoiceNumber']}/tracking", json=TRACKING)
    assert "has no tracking number yet" in vtex_error(answer, 409)  # the state, not the request
    assert snapshot(redis_client) == before


@pytest.mark.parametrize("size", [2**20, 5 * 2**20])  # over MAX_BODY_BYTES; over what is read
def test_an_oversized_body_is_413(http: httpx.Client, redis_client: redis.Redis, size: int) -> None:
    body = {**INVOICE, "embeddedInvoice": "x" * size}
    answer = post_invoice(http, "o-1", body)
    assert "bytes" in vtex_error(answer, 413)
    assert redis_client.dbsize() == 0


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b'{"type": ', "not JSON"),
        (b'{"type": "Output\xff"}', "not UTF-8"),
        (NESTED, "not parsable: arrays or objects nested"),
        (b'{"invoiceValue": ' + b"9" * 5000 + b"}", "not parsable: a number"),
        (b"[1, 2]", "must be a JSON object"),
        (b"", "not JSON"),
        (b'{"type": "\\ud800", "\\udfff": 1}', "not text: a string has an unpaired"),
    ],
)
def test_malformed_json_is_400(
    http: httpx.Client, redis_client: redis.Redis, content: bytes, reason: str
) -> None:
    answer = http.post(f"{ORDER}/o-1/invoice", content=content, headers=JSON)
    assert reason in vtex_error(answer, 400)
    assert redis_client.dbsize() == 0


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_a_wrong_content_type_is_400(
    http: httpx.Client, redis_client: redis.Redis, content_type: str | None
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    answer = http.post(f"{ORDER}/o-1/invoice", content=json.dumps(INVOICE), headers=headers)
    assert "Content-Type must be application/json" in vtex_error(answer, 400)
    assert redis_client.dbsize() == 0


def test_unknown_routes_and_methods(http: httpx.Client, redis_client: redis.Redis) -> None:
    vtex_error(http.get("/api/oms/pvt/orders"), 404)
    answer = http.delete(f"{ORDER}/o-1/invoice")
    vtex_error(answer, 405)
    assert answer.headers["Allow"] == "POST"
    assert redis_client.dbsize() == 0


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + b"\x00" * 64,  # a TLS hello
        b"POST /api/oms/pvt/orders/o-1/invoice HTTP/1.1\r\nContent-Length: zz\r\n\r\n",
        b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nX-Big: " + b"b" * 20_000 + b"\r\n\r\n",
    ],
    ids=["tls", "bad-length", "long-line", "long-header"],
)
def test_a_malformed_request_is_refused_and_the_intake_goes_on(
    intake: str, http: httpx.Client, redis_client: redis.Redis, request_bytes: bytes
) -> None:
    answer = raw_request(intake, request_bytes)
    assert answer == b"" or (answer.startswith(b"HTTP/1.") and answer[9:10] == b"4"), answer[:200]
    assert redis_client.dbsize() == 0
    assert http.get("/relay/health").status_code == 200
