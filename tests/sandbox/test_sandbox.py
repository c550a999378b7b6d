"""The sandbox as a real subprocess, driven over real HTTP (httpx) and its control API."""

from __future__ import annotations

import asyncio
import os
import selectors
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.seed import SEED_INVOICE, SEED_TRACKING, SEED_TRACKING_NUMBER
from vtex_relay.sandbox import SandboxControl

REPO = Path(__file__).resolve().parents[2]
KEY, TOKEN = "vtexappkey-test-ABCDEF", "SECRET-TOKEN-never-logged-42"
AUTH = {"X-VTEX-API-AppKey": KEY, "X-VTEX-API-AppToken": TOKEN}
OMS = "/api/oms/pvt/orders"


class Sandbox:
    """A running ``python -m vtex_relay.sandbox`` subprocess."""

    def __init__(self, *args: str) -> None:
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "vtex_relay.sandbox", "--port", "0", *args],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.url = self._read_url(deadline=time.monotonic() + 10)
        self.control = SandboxControl(self.url)
        self.control.wait_for(lambda c: c.health()["status"] == "ok", timeout=10)
        self.http = httpx.Client(base_url=self.url, headers=AUTH, timeout=5)

    def _read_url(self, deadline: float) -> str:
        assert self.proc.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self.proc.stdout, selectors.EVENT_READ)
            while time.monotonic() < deadline:
                if selector.select(timeout=deadline - time.monotonic()):
                    line = self.proc.stdout.readline()
                    assert line.startswith("sandbox listening on http://"), line
                    return line.split()[-1]
        raise TimeoutError("sandbox did not start")

    def stop(self) -> None:
        self.http.close()
        self.control.close()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def server() -> Iterator[Sandbox]:
    sandbox = Sandbox("--app-key", KEY, "--app-token", TOKEN, "--seed", "42")
    yield sandbox
    sandbox.stop()


@pytest.fixture
def sb(server: Sandbox) -> Sandbox:
    server.control.reset()
    return server


def post(sb: Sandbox, order_id: str, body: Any, **kwargs: Any) -> httpx.Response:
    return sb.http.post(f"{OMS}/{order_id}/invoice", json=body, **kwargs)


def packages(sb: Sandbox, order_id: str) -> list[dict[str, Any]]:
    order: dict[str, Any] = sb.http.get(f"{OMS}/{order_id}").json()
    result: list[dict[str, Any]] = order["packageAttachment"]["packages"]
    return result


def test_seed_bodies_are_accepted_and_shown_by_get_order(sb: Sandbox) -> None:
    response = post(sb, "1172452900788-01", SEED_INVOICE)
    assert response.status_code == 200
    receipt = response.json()
    assert receipt["orderId"] == "1172452900788-01"
    assert len(receipt["receipt"]) == 32
    int(receipt["receipt"], 16)
    invoice = f"{OMS}/1172452900788-01/invoice/9999"
    assert sb.http.patch(invoice, json=SEED_TRACKING_NUMBER).status_code == 200
    assert sb.http.put(invoice + "/tracking", json=SEED_TRACKING).status_code == 200

    order = sb.http.get(f"{OMS}/1172452900788-01").json()
    assert (order["status"], order["value"]) == ("invoiced", 10000)
    assert order["invoicedDate"] is not None
    [package] = order["packageAttachment"]["packages"]
    assert package["invoiceNumber"] == "9999"
    assert package["invoiceValue"] == 10000  # an integer in GET order, a string in the POST
    assert (package["type"], package["issuanceDate"]) == ("Output", "2024-01-31")
    assert (package["trackingNumber"], package["courier"]) == ("87658", None)
    assert package["items"][0]["id"] == "123"
    status = package["courierStatus"]
    assert status["finished"] is False
    assert [e["description"] for e in status["data"]] == [
        "Coletado pela transportadora",
        "A caminho de Curitiba",
    ]
    assert status["data"][0]["city"] == "Rio de Janeiro"

    log = sb.control.requests(order_id="1172452900788-01")
    assert [(r.method, r.status) for r in log] == [
        ("POST", 200),
        ("PATCH", 200),
        ("PUT", 200),
        ("GET", 200),
    ]
    assert log[0].body == SEED_INVOICE
    assert log[0].invoice_number == "9999"
    assert log[1].path == f"{OMS}/1172452900788-01/invoice/9999"
    assert all(r.applied_at is not None for r in log[:3])
    assert sb.control.order("1172452900788-01")["writes"] == {
        "invoice": 1,
        "tracking_number": 1,
        "tracking": 1,
    }


def test_account_prefix_keys_orders_by_account(sb: Sandbox) -> None:
    response = sb.http.post(f"/acme{OMS}/5-01/invoice", json=SEED_INVOICE)
    assert response.status_code == 200
    assert sb.control.order("5-01", account="acme")["order"]["status"] == "invoiced"
    with pytest.raises(httpx.HTTPStatusError):
        sb.control.order("5-01")  # the unprefixed account "" never saw this order
    [entry] = sb.control.requests(account="acme")
    assert (entry.account, entry.path) == ("acme", f"{OMS}/5-01/invoice")
    assert packages(sb, "5-01") == []


def test_credentials_are_required_and_never_logged(sb: Sandbox) -> None:
    url = f"{sb.url}{OMS}/7-01"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"X-VTEX-API-AppKey": KEY}).status_code == 401
    wrong = {"X-VTEX-API-AppKey": KEY, "X-VTEX-API-AppToken": "WRONG-TOKEN-xyz"}
    response = httpx.post(f"{url}/invoice", json=SEED_INVOICE, headers=wrong)
    assert response.status_code == 401
    assert response.json()["error"]["message"].startswith("Unauthorized")
    lower = {"x-vtex-api-appkey": KEY, "x-vtex-api-apptoken": TOKEN}
    assert httpx.get(url, headers=lower).status_code == 200

    assert [r.status for r in sb.control.requests(order_id="7-01")] == [401, 401, 401, 200]
    assert packages(sb, "7-01") == []
    log_text = httpx.get(f"{sb.url}/_sandbox/requests").text
    assert TOKEN not in log_text
    assert "WRONG-TOKEN-xyz" not in log_text


def _without(body: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != key}


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/invoice", {**SEED_INVOICE, "invoiceValue": 10000}, "invoiceValue"),
        ("/invoice", {**SEED_INVOICE, "invoiceValue": "100.00"}, "invoiceValue"),
        ("/invoice", {**SEED_INVOICE, "invoiceValue": "0"}, "invoiceValue"),
        ("/invoice", {**SEED_INVOICE, "type": "Sale"}, "type"),
        ("/invoice", _without(SEED_INVOICE, "items"), "items"),
        ("/invoice", _without(SEED_INVOICE, "issuanceDate"), "issuanceDate"),
        (
            "/invoice",
            {**SEED_INVOICE, "items": [{"id": "1", "price": 9.5, "quantity": 1}]},
            "items.0.price",
        ),
        ("/invoice", {**SEED_INVOICE, "items": [{"id": "1", "price": 100}]}, "items.0.quantity"),
        ("/invoice/9999", {"trackingUrl": None, "courier": None}, "trackingNumber"),
        ("/invoice/9999", {**SEED_TRACKING_NUMBER, "trackingNumber": 87658}, "trackingNumber"),
        ("/invoice/9999/tracking", _without(SEED_TRACKING, "isDelivered"), "isDelivered"),
        (
            "/invoice/9999/tracking",
            {**SEED_TRACKING, "events": [{"city": "X", "state": "Y", "description": "Z"}]},
            "events.0.date",
        ),
    ],
)
def test_spec_invalid_bodies_are_refused_naming_the_field(
    sb: Sandbox, path: str, body: dict[str, Any], field: str
) -> None:
    method = {"/invoice": "POST", "/invoice/9999": "PATCH"}.get(path, "PUT")
    response = sb.http.request(method, f"{OMS}/8-01{path}", json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["exception"]) == ("1", None)
    assert f"{field}:" in error["message"]
    [entry] = sb.control.requests(order_id="8-01")
    assert (entry.status, entry.applied_at, entry.body) == (400, None, body)


def test_non_json_body_is_refused_and_logged_raw(sb: Sandbox) -> None:
    headers = {"Content-Type": "application/json"}
    response = sb.http.post(f"{OMS}/9-01/invoice", content=b"{not json", headers=headers)
    assert response.status_code == 400
    assert sb.control.requests(order_id="9-01")[0].body == "{not json"
    response = sb.http.post(f"{OMS}/9-01/invoice", content=b"type=Output")
    assert response.status_code == 400
    assert "Content-Type" in response.json()["error"]["message"]


def test_tracking_needs_an_existing_invoice_with_a_tracking_number(sb: Sandbox) -> None:
    invoice = f"{OMS}/10-01/invoice/9999"
    patch = sb.http.patch(invoice, json=SEED_TRACKING_NUMBER)
    assert patch.status_code == 404
    assert patch.json()["error"]["message"] == "Invoice Not Found"
    assert sb.http.put(invoice + "/tracking", json=SEED_TRACKING).status_code == 404
    assert post(sb, "10-01", SEED_INVOICE).status_code == 200
    refused = sb.http.put(invoice + "/tracking", json=SEED_TRACKING)
    assert refused.status_code == 400
    assert "tracking number" in refused.json()["error"]["message"]
    assert sb.http.patch(invoice, json=SEED_TRACKING_NUMBER).status_code == 200
    delivered = {**SEED_TRACKING, "isDelivered": True, "deliveredDate": "2024-06-25 10:00"}
    assert sb.http.put(invoice + "/tracking", json=delivered).status_code == 200
    status = packages(sb, "10-01")[0]["courierStatus"]
    assert (status["finished"], status["deliveredDate"]) == (True, "2024-06-25 10:00")
    assert len(status["data"]) == 2


def test_partial_invoices_and_repeat_post(sb: Sandbox) -> None:
    sb.control.seed_order("11-01", value=10000)
    first = post(sb, "11-01", {**SEED_INVOICE, "invoiceNumber": "A1", "invoiceValue": "4000"})
    refund = {**SEED_INVOICE, "type": "Input", "invoiceNumber": "R1", "invoiceValue": "9000"}
    assert post(sb, "11-01", refund).status_code == 200
    assert sb.http.get(f"{OMS}/11-01").json()["status"] == "handling"  # Input does not count
    again = post(sb, "11-01", {**SEED_INVOICE, "invoiceNumber": "A1", "invoiceValue": "5000"})
    assert again.json()["receipt"] != first.json()["receipt"]
    # As VTEX does: a number posted again only renews its receipt; its value stays 4000.
    assert packages(sb, "11-01")[0]["invoiceValue"] == 4000
    assert sb.http.get(f"{OMS}/11-01").json()["status"] == "handling"
    post(sb, "11-01", {**SEED_INVOICE, "invoiceNumber": "A2", "invoiceValue": "6000"})
    order = sb.control.order("11-01")
    assert order["order"]["status"] == "invoiced"
    assert [p["invoiceNumber"] for p in order["order"]["packageAttachment"]["packages"]] == [
        "A1",
        "R1",
        "A2",
    ]
    assert order["invoicePosts"] == {"A1": 2, "R1": 1, "A2": 1}
    assert order["writes"]["invoice"] == 4


def test_fail_orders_poisons_writes_only_until_cleared(sb: Sandbox) -> None:
    sb.control.set_faults(fail_orders={"12-01": 400})
    response = post(sb, "12-01", SEED_INVOICE)
    assert response.status_code == 400
    assert "12-01" in response.json()["error"]["message"]
    assert sb.http.get(f"{OMS}/12-01").status_code == 200
    assert post(sb, "13-01", SEED_INVOICE).status_code == 200  # other orders unaffected
    sb.control.set_faults(fail_orders={})
    assert post(sb, "12-01", SEED_INVOICE).status_code == 200
    assert [r.fault for r in sb.control.requests(order_id="12-01")] == ["fail_order", None, None]


@pytest.mark.parametrize(("fault", "status"), [("rate_429", 429), ("rate_5xx", 503)])
def test_refusing_faults_do_not_apply(sb: Sandbox, fault: str, status: int) -> None:
    sb.control.set_faults(**{fault: 1.0}, retry_after=7)
    response = post(sb, "14-01", SEED_INVOICE)
    assert response.status_code == status
    if status == 429:
        assert response.headers["Retry-After"] == "7"
    assert sb.http.get(f"{OMS}/14-01").status_code == status  # GETs get faults too
    sb.control.set_faults(**{fault: 0.0})
    assert packages(sb, "14-01") == []
    [entry, _, _] = sb.control.requests(order_id="14-01")
    assert (entry.status, entry.applied_at) == (status, None)


def test_timeout_fault_stalls_without_applying(sb: Sandbox) -> None:
    sb.control.set_faults(rate_timeout=1.0, stall_seconds=2)
    with pytest.raises(httpx.ReadTimeout):
        post(sb, "15-01", SEED_INVOICE, timeout=0.3)
    [entry] = sb.control.requests(order_id="15-01")
    assert (entry.status, entry.fault, entry.applied_at) == ("stalled", "timeout", None)
    sb.control.set_faults(rate_timeout=0.0)
    assert packages(sb, "15-01") == []


def test_apply_then_drop_applies_and_closes_the_connection(sb: Sandbox) -> None:
    sb.control.set_faults(rate_apply_drop=1.0)
    with pytest.raises(httpx.RemoteProtocolError):
        post(sb, "16-01", SEED_INVOICE)
    [entry] = sb.control.requests(order_id="16-01")
    assert (entry.status, entry.fault) == ("dropped", "apply_drop")
    assert entry.applied_at is not None
    sb.control.set_faults(rate_apply_drop=0.0)
    assert [p["invoiceNumber"] for p in packages(sb, "16-01")] == ["9999"]


def test_apply_then_stall_applies_and_keeps_serving_others(sb: Sandbox) -> None:
    sb.control.set_faults(rate_apply_stall=1.0, stall_seconds=3)
    with pytest.raises(httpx.ReadTimeout):
        post(sb, "17-01", SEED_INVOICE, timeout=0.3)
    sb.control.set_faults(rate_apply_stall=0.0)
    started = time.monotonic()
    assert [p["invoiceNumber"] for p in packages(sb, "17-01")] == ["9999"]
    assert time.monotonic() - started < 2  # the 3 s stall does not block the server
    entry = sb.control.requests(order_id="17-01", method="POST")[0]
    assert (entry.status, entry.fault) == ("stalled", "apply_stall")
    assert entry.applied_at is not None


def test_latency_is_concurrent(sb: Sandbox) -> None:
    sb.control.set_faults(latency_ms=300)

    async def burst() -> list[int]:
        async with httpx.AsyncClient(base_url=sb.url, headers=AUTH) as client:
            calls = [client.get(f"{OMS}/18-{i:02d}") for i in range(20)]
            return [r.status_code for r in await asyncio.gather(*calls)]

    started = time.monotonic()
    assert asyncio.run(burst()) == [200] * 20
    elapsed = time.monotonic() - started
    assert 0.3 <= elapsed < 3  # 20 x 300 ms in parallel (6 s in series)


def test_seeded_faults_replay_after_reset(sb: Sandbox) -> None:
    def run() -> list[int]:
        sb.control.set_faults(rate_429=0.3, rate_5xx=0.3)
        return [sb.http.get(f"{OMS}/19-01").status_code for _ in range(30)]

    first = run()
    assert {200, 429, 503} <= set(first)
    sb.control.reset()
    assert run() == first


def test_request_log_filters_since_stats_and_clear(sb: Sandbox) -> None:
    start = sb.control.health()["lastSeq"]
    post(sb, "20-01", SEED_INVOICE)
    sb.http.get(f"{OMS}/20-01")
    sb.http.get(f"{OMS}/21-01")
    sb.http.get("/api/oms/pvt/nothing-here")
    assert len(sb.control.requests(since=start)) == 4
    assert [r.order_id for r in sb.control.requests(method="get")] == ["20-01", "21-01", None]
    assert len(sb.control.requests(since=start + 3)) == 1
    unknown = sb.control.requests(since=start + 3)[0]
    assert (unknown.status, unknown.path) == (404, "/api/oms/pvt/nothing-here")
    stats = sb.control.stats()
    assert stats["counters"] == {"GET": {"200": 2, "404": 1}, "POST": {"200": 1}}
    assert stats["total"] == 4
    assert sum(s["count"] for s in stats["perSecond"]) == 4
    sb.control.clear_requests()
    assert sb.control.requests() == []
    assert sb.control.stats()["total"] == 0
    assert sb.control.order("20-01")["order"]["status"] == "invoiced"  # orders survive a clear


def test_control_api_refuses_bad_faults(sb: Sandbox) -> None:
    with pytest.raises(httpx.HTTPStatusError):
        sb.control.set_faults(rate_429=1.5)
    with pytest.raises(httpx.HTTPStatusError):
        sb.control.set_faults(rate_429=0.6, rate_5xx=0.6)
    with pytest.raises(httpx.HTTPStatusError):
        sb.control.set_faults(no_such_fault=1)
    assert sb.control.faults()["rate_429"] == 0.0


def test_command_line_options() -> None:
    other = Sandbox(
        "--order-total",
        "5000",
        "--rate-429",
        "1",
        "--retry-after",
        "3",
        "--log-limit",
        "5",
        "--strict-schema",
    )
    try:
        anyone = {"X-VTEX-API-AppKey": "k", "X-VTEX-API-AppToken": "t"}
        response = other.http.get(f"{OMS}/1-01", headers=anyone)
        assert (response.status_code, response.headers["Retry-After"]) == (429, "3")
        other.control.set_faults(rate_429=0.0)
        assert other.http.get(f"{OMS}/1-01", headers=anyone).json()["value"] == 5000
        # --strict-schema: the spec's own rules, which VTEX's guide examples break.
        refused = other.http.post(f"{OMS}/1-01/invoice", json=SEED_INVOICE, headers=anyone)
        assert refused.status_code == 400
        assert "courier:" in refused.json()["error"]["message"]
        invoice = {**SEED_INVOICE, "courier": "carrierOne"}
        assert other.http.post(f"{OMS}/1-01/invoice", json=invoice).status_code == 200
        patch = other.http.patch(f"{OMS}/1-01/invoice/9999", json=SEED_TRACKING_NUMBER)
        assert patch.status_code == 400
        assert "dispatchedDate:" in patch.json()["error"]["message"]
        for _ in range(4):
            other.http.get(f"{OMS}/1-01", headers=anyone)
        assert [r.seq for r in other.control.requests()] == [5, 6, 7, 8, 9]  # --log-limit 5
        assert [r.seq for r in other.control.requests(since=7)] == [8, 9]
    finally:
        other.stop()
