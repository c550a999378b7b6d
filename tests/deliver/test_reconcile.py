"""Did an earlier try land? Each branch of ``reconcile.shows``, for each kind of job, against
GET order answers built here (VTEX in the test process: ``tests/fake_vtex.py``)."""

from types import MappingProxyType
from typing import Any

import httpx
import pytest

from tests.fake_vtex import FakeVtex, order_then, settings
from vtex_relay.deliver.reconcile import shows as order_shows
from vtex_relay.errors import PermanentError, RetryableError
from vtex_relay.jobs import Job
from vtex_relay.produce.api import build_job

ORDER = "1172452900788-01"
NUMBER = "NF-1001"
RIO = {"city": "Rio de Janeiro", "state": "RJ", "description": "Coletado", "date": "2024-06-23"}
SP = {"city": "Sao Paulo", "state": "SP", "description": "A caminho", "date": "2024-06-24"}


def invoice_job() -> Job:
    body = {
        "type": "Output",
        "issuanceDate": "2024-01-31",
        "invoiceNumber": NUMBER,
        "invoiceValue": "10000",
        "items": [{"id": "123", "price": 10000, "quantity": 1}],
    }
    return build_job("invoice", ORDER, body, account="acme")


def tracking_number_job(**body: Any) -> Job:
    return build_job("tracking-number", ORDER, body, invoice_number=NUMBER, account="acme")


def tracking_job(events: list[dict[str, Any]], delivered: bool = False) -> Job:
    body = {"isDelivered": delivered, "events": events}
    if delivered:
        body["deliveredDate"] = "2024-06-25"
    return build_job("tracking", ORDER, body, invoice_number=NUMBER, account="acme")


def order(*packages: dict[str, Any]) -> dict[str, Any]:
    """An order as GET order shows it, with *packages* in its package attachment."""
    return {"orderId": ORDER, "status": "invoiced", "packageAttachment": {"packages": packages}}


def package(number: str = NUMBER, **fields: Any) -> dict[str, Any]:
    return {"invoiceNumber": number, "invoiceValue": 10000, "courier": "", **fields}


def courier_status(*events: dict[str, Any], finished: bool = False) -> dict[str, Any]:
    data = [
        {k: e[k] for k in ("city", "state", "description")} | {"date": e["date"]} for e in events
    ]
    return {"courierStatus": {"status": "", "finished": finished, "data": data}}


@pytest.fixture
def vtex() -> FakeVtex:
    return FakeVtex()


def shows(vtex: FakeVtex, job: Job, answer: Any) -> bool:
    """Whether *job* is found in the order VTEX answers GET order with; one GET, nothing else."""
    vtex.answer = order_then(answer)
    with vtex.client(settings()) as client:
        found = order_shows(client.get_order(job.account, job.order_id), job)
    assert vtex.methods() == ["GET"]
    assert vtex.requests[0].url.path == f"/acme/api/oms/pvt/orders/{ORDER}"
    return found


class TestInvoice:
    def test_landed_when_a_package_has_its_number(self, vtex: FakeVtex) -> None:
        assert shows(vtex, invoice_job(), order(package("NF-other"), package()))

    @pytest.mark.parametrize(
        "answer",
        [
            order(),
            order(package("NF-other")),
            {"orderId": ORDER},
            {"orderId": ORDER, "packageAttachment": None},
            {"orderId": ORDER, "packageAttachment": {"packages": None}},
            {"orderId": ORDER, "packageAttachment": {"packages": ["junk", package("nf-1001")]}},
        ],
        ids=[
            "no-packages",
            "another-invoice",
            "no-attachment",
            "null-attachment",
            "null-packages",
            "junk-and-other-case",
        ],
    )
    def test_not_landed_without_that_package(self, vtex: FakeVtex, answer: Any) -> None:
        assert not shows(vtex, invoice_job(), answer)


class TestTrackingNumber:
    BODY = MappingProxyType(
        {
            "trackingNumber": "TRK-1",
            "trackingUrl": "https://track.example/TRK-1",
            "courier": "Correios",
        }
    )

    def test_landed_when_every_field_matches(self, vtex: FakeVtex) -> None:
        assert shows(vtex, tracking_number_job(**self.BODY), order(package(**self.BODY)))

    @pytest.mark.parametrize("field", ["trackingNumber", "trackingUrl", "courier"])
    def test_not_landed_when_a_field_differs(self, vtex: FakeVtex, field: str) -> None:
        shown = {**self.BODY, field: "something else"}
        assert not shows(vtex, tracking_number_job(**self.BODY), order(package(**shown)))

    def test_not_landed_when_a_given_field_is_missing_at_vtex(self, vtex: FakeVtex) -> None:
        shown = {k: v for k, v in self.BODY.items() if k != "courier"}
        assert not shows(vtex, tracking_number_job(**self.BODY), order(package(**shown)))

    @pytest.mark.parametrize(
        "body",
        [
            {"trackingNumber": "TRK-1"},
            {"trackingNumber": "TRK-1", "trackingUrl": None, "courier": None},
        ],
    )
    def test_fields_the_body_does_not_give_are_ignored(
        self, vtex: FakeVtex, body: dict[str, Any]
    ) -> None:
        shown = package(trackingNumber="TRK-1", trackingUrl="https://elsewhere", courier="Loggi")
        assert shows(vtex, tracking_number_job(**body), order(shown))

    def test_not_landed_without_the_invoice(self, vtex: FakeVtex) -> None:
        other = package("NF-other", **self.BODY)
        assert not shows(vtex, tracking_number_job(**self.BODY), order(other))


class TestTracking:
    def test_landed_when_every_event_is_shown(self, vtex: FakeVtex) -> None:
        extra = {**SP, "description": "Saiu para entrega"}  # VTEX may show more events
        answer = order(package(**courier_status(RIO, SP, extra)))
        assert shows(vtex, tracking_job([RIO, SP]), answer)

    def test_events_are_known_by_city_state_and_description(self, vtex: FakeVtex) -> None:
        shown = {**RIO, "date": "2024-06-30"}  # another date: the same event
        assert shows(vtex, tracking_job([RIO]), order(package(**courier_status(shown))))

    @pytest.mark.parametrize("field", ["city", "state", "description"])
    def test_not_landed_when_an_event_is_missing(self, vtex: FakeVtex, field: str) -> None:
        changed = {**SP, field: "X"}
        answer = order(package(**courier_status(RIO, changed)))
        assert not shows(vtex, tracking_job([RIO, SP]), answer)

    def test_delivered_needs_finished(self, vtex: FakeVtex) -> None:
        answer = order(package(**courier_status(RIO, finished=False)))
        assert not shows(vtex, tracking_job([RIO], delivered=True), answer)

    def test_delivered_and_finished(self, vtex: FakeVtex) -> None:
        answer = order(package(**courier_status(RIO, finished=True)))
        assert shows(vtex, tracking_job([RIO], delivered=True), answer)

    def test_delivered_without_events_and_finished(self, vtex: FakeVtex) -> None:
        answer = order(package(**courier_status(finished=True)))
        assert shows(vtex, tracking_job([], delivered=True), answer)

    def test_no_events_and_not_delivered_is_never_recognised(self, vtex: FakeVtex) -> None:
        # Nothing to recognise it by: a PUT of no events is sent again (it changes nothing).
        answer = order(package(**courier_status(RIO, finished=True)))
        assert not shows(vtex, tracking_job([]), answer)

    @pytest.mark.parametrize("status", [None, {}, {"finished": False, "data": None}])
    def test_no_courier_status(self, vtex: FakeVtex, status: Any) -> None:
        assert not shows(vtex, tracking_job([RIO]), order(package(courierStatus=status)))

    def test_not_landed_without_the_invoice(self, vtex: FakeVtex) -> None:
        answer = order(package("NF-other", **courier_status(RIO, finished=True)))
        assert not shows(vtex, tracking_job([RIO]), answer)


@pytest.mark.parametrize(
    "job",
    [invoice_job(), tracking_number_job(trackingNumber="T"), tracking_job([RIO])],
    ids=["invoice", "tracking-number", "tracking"],
)
class TestGetOrderFails:
    """A GET that does not show the order is a failed try: never read as "not there"."""

    @pytest.mark.parametrize("status", [500, 502, 503, 504, 408, 429])
    def test_retryable_status(self, vtex: FakeVtex, job: Job, status: int) -> None:
        with pytest.raises(RetryableError) as caught:
            shows(vtex, job, httpx.Response(status, text="busy"))
        assert caught.value.status == status

    @pytest.mark.parametrize(
        "response",
        [
            httpx.Response(200, text="<html>"),
            httpx.Response(200, json=[]),
            httpx.Response(200, text=""),
            httpx.Response(204),
        ],
        ids=["html", "json-list", "empty", "no-content"],
    )
    def test_a_2xx_without_a_json_order_is_retryable(
        self, vtex: FakeVtex, job: Job, response: httpx.Response
    ) -> None:
        with pytest.raises(RetryableError, match="without a JSON order"):
            shows(vtex, job, response)

    def test_not_found_is_permanent(self, vtex: FakeVtex, job: Job) -> None:
        with pytest.raises(PermanentError) as caught:
            shows(vtex, job, httpx.Response(404, json={"error": {"message": "Order not found"}}))
        assert caught.value.message == "Order not found"
