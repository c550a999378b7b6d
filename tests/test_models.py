"""The request-body models: what they accept, what they refuse, what they send."""

import copy
import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from pydantic import BaseModel

from tests.seed import SEED_INVOICE, SEED_TRACKING, SEED_TRACKING_NUMBER
from vtex_relay.errors import InvalidJob
from vtex_relay.models import (
    KINDS,
    Invoice,
    InvoiceItem,
    Kind,
    Receipt,
    TrackingEvent,
    TrackingNumber,
    TrackingUpdate,
)
from vtex_relay.operations import validate_body

SPEC = json.loads((Path(__file__).parent / "data" / "vtex_spec_requests.json").read_text("utf-8"))
SCHEMAS_FILE = Path(__file__).parents[1] / "vtex_relay" / "sandbox" / "oms-request-schemas.json"
SCHEMA_KEYS: dict[Kind, str] = {
    "invoice": "invoice",
    "tracking-number": "tracking_number",
    "tracking": "tracking",
}


def errors_of(kind: Kind, data: object) -> dict[str, str]:
    """Validate *data*, expecting a refusal; return {location: message}."""
    with pytest.raises(InvalidJob) as caught:
        validate_body(kind, data)
    return {e.location: e.message for e in caught.value.errors}


def invoice(**changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(SEED_INVOICE)
    body.update(changes)
    return body


def strict_spec_validator(kind: Kind) -> Draft202012Validator:
    schemas = json.loads(SCHEMAS_FILE.read_text("utf-8"))
    return Draft202012Validator(schemas[SCHEMA_KEYS[kind]])


needs_schemas = pytest.mark.skipif(
    not SCHEMAS_FILE.exists(), reason="vtex_relay/sandbox/oms-request-schemas.json not generated"
)


class TestSeedExamples:
    """The guide's bodies are accepted as printed and go out spec-valid, every value unchanged."""

    def test_invoice_drops_only_the_null_courier(self) -> None:
        assert validate_body("invoice", SEED_INVOICE) == {
            "type": "Output",
            "issuanceDate": "2024-01-31",
            "invoiceNumber": "9999",
            "invoiceValue": "10000",
            "invoiceKey": None,
            "invoiceUrl": None,
            "trackingNumber": None,
            "trackingUrl": None,
            "items": [{"id": "123", "price": 10000, "quantity": 1}],
        }

    def test_tracking_number_gains_a_null_dispatched_date(self) -> None:
        assert validate_body("tracking-number", SEED_TRACKING_NUMBER) == {
            "trackingNumber": "87658",
            "trackingUrl": None,
            "courier": None,
            "dispatchedDate": None,
        }

    def test_tracking_gains_a_null_delivered_date(self) -> None:
        assert validate_body("tracking", SEED_TRACKING) == {**SEED_TRACKING, "deliveredDate": None}

    @needs_schemas
    @pytest.mark.parametrize(
        ("kind", "body"),
        [
            ("invoice", SEED_INVOICE),
            ("tracking-number", SEED_TRACKING_NUMBER),
            ("tracking", SEED_TRACKING),
        ],
    )
    def test_output_satisfies_the_unrelaxed_spec_schema(self, kind: Kind, body: Any) -> None:
        validator = strict_spec_validator(kind)
        assert not validator.is_valid(body)  # the guide's body itself breaks the spec...
        validator.validate(validate_body(kind, body))  # ...what we send does not

    def test_input_is_not_modified(self) -> None:
        before = copy.deepcopy(SEED_INVOICE)
        validate_body("invoice", SEED_INVOICE)
        assert before == SEED_INVOICE


class TestSpecExamples:
    """The spec's own request examples are accepted and sent back unchanged."""

    @pytest.mark.parametrize("kind", KINDS)
    def test_example_round_trips(self, kind: Kind) -> None:
        example = SPEC["examples"][kind]
        assert validate_body(kind, example) == example

    @needs_schemas
    @pytest.mark.parametrize("kind", KINDS)
    def test_example_output_satisfies_the_spec_schema(self, kind: Kind) -> None:
        strict_spec_validator(kind).validate(validate_body(kind, SPEC["examples"][kind]))


class TestFieldsMatchTheSpec:
    """Model field names, and which are required, are the spec schema's, letter for letter."""

    MODELS = (
        ("Invoice", Invoice),
        ("InvoiceItem", InvoiceItem),
        ("TrackingNumber", TrackingNumber),
        ("TrackingUpdate", TrackingUpdate),
        ("TrackingEvent", TrackingEvent),
    )

    @pytest.mark.parametrize(("name", "model"), MODELS)
    def test_field_names_against_committed_copy(self, name: str, model: type[BaseModel]) -> None:
        assert list(model.model_fields) == SPEC["schemas"][name]["properties"]

    @needs_schemas
    def test_field_names_against_generated_schemas(self) -> None:
        schemas = json.loads(SCHEMAS_FILE.read_text("utf-8"))
        invoice_schema = schemas["invoice"]
        event_schema = schemas["tracking"]["properties"]["events"]["items"]
        pairs: list[tuple[type[BaseModel], dict[str, Any]]] = [
            (Invoice, invoice_schema),
            (InvoiceItem, invoice_schema["properties"]["items"]["items"]),
            (TrackingNumber, schemas["tracking_number"]),
            (TrackingUpdate, schemas["tracking"]),
            (TrackingEvent, event_schema),
        ]
        for model, schema in pairs:
            assert set(model.model_fields) == set(schema["properties"]), model.__name__

    @pytest.mark.parametrize(("name", "model"), MODELS)
    def test_required_fields(self, name: str, model: type[BaseModel]) -> None:
        required = {f for f, info in model.model_fields.items() if info.is_required()}
        # Required-but-nullable fields are optional on input (sent as null), see TestNulls;
        # invoiceNumber is the exception: nullable in the spec, but it becomes a path segment.
        nullable = set(SPEC["schemas"][name]["nullable"])
        assert required == set(SPEC["schemas"][name]["required"]) - (nullable - {"invoiceNumber"})


class TestMoney:
    """Item price/quantity are strict integers; invoiceValue is a string of cents > 0."""

    @pytest.mark.parametrize("price", [10.5, 10.0, True, "10", "10.5", None, -1])
    def test_bad_price_refused(self, price: object) -> None:
        body = invoice(items=[{"id": "1", "price": price, "quantity": 1}])
        assert set(errors_of("invoice", body)) == {"body.items.0.price"}

    @pytest.mark.parametrize("price", [0, 1, 2499, 10**15])
    def test_good_price_kept(self, price: int) -> None:
        body = invoice(items=[{"id": "1", "price": price, "quantity": 1}])
        assert validate_body("invoice", body)["items"][0]["price"] == price

    @pytest.mark.parametrize("quantity", [0, -1, 1.0, 1.5, "1", True])
    def test_bad_quantity_refused(self, quantity: object) -> None:
        body = invoice(items=[{"id": "1", "price": 1, "quantity": quantity}])
        assert set(errors_of("invoice", body)) == {"body.items.0.quantity"}

    @pytest.mark.parametrize(
        "value",
        [
            "10,00",
            "10.00",
            "10.5",
            10.5,
            100.0,
            "0",
            0,
            "00",
            "-5",
            -5,
            "+5",
            " 5",
            "5 ",
            "",
            "0100",
            "1e3",
            "٣",
            True,
            None,
            "1" * 19,
        ],
    )
    def test_bad_invoice_value_refused(self, value: object) -> None:
        errors = errors_of("invoice", invoice(invoiceValue=value))
        assert list(errors) == ["body.invoiceValue"]
        assert "cents" in errors["body.invoiceValue"]

    @pytest.mark.parametrize(("value", "sent"), [("2499", "2499"), (2499, "2499"), ("1", "1")])
    def test_good_invoice_value_is_a_digit_string(self, value: object, sent: str) -> None:
        assert validate_body("invoice", invoice(invoiceValue=value))["invoiceValue"] == sent


GOOD_ISO = [
    "2024-01-31",
    "2024-01-31T18:25:43-05:00",
    "2017-10-05T11:32:11-0300",
    "2017-10-05T11:32:11",
    "2019-02-08T13:16:13.4617653+00:00",
    "2024-01-31T18:25:43.1Z",
    "2024-01-31T18:25Z",
    "2024-02-29T23:59:59+14:00",
]
BAD_ISO = [
    "",
    " ",
    "2024-01-31 18:25:43",
    "2024-01-31T18:25:43 -05:00",
    "31/01/2024",
    "2024-1-31",
    "2024-02-30",
    "2023-02-29",
    "2024-13-01",
    "2024-01-31T24:00:00Z",
    "2024-01-31T18:60:00Z",
    "2024-01-31T18:25:60Z",
    "2024-01-31T18:25:43.12345678Z",
    "2024-01-31T18:25:43+24:00",
    "2024-01-31T18:25:43+05:60",
    "2024-01-31T18:25:43z",
    "2024-01-31Z",
    "2024-01-31T18",
    "٢٠٢٤-01-31",
    "2024-01-31\n",
]


class TestDates:
    """Dates are checked for shape and calendar sense, and sent exactly as given."""

    @pytest.mark.parametrize("date", GOOD_ISO)
    def test_iso_dates_kept_verbatim(self, date: str) -> None:
        sent = validate_body("invoice", invoice(issuanceDate=date, dispatchedDate=date))
        assert (sent["issuanceDate"], sent["dispatchedDate"]) == (date, date)
        event = {**SEED_TRACKING["events"][0], "date": date}
        tracking = {"isDelivered": True, "deliveredDate": date, "events": [event]}
        assert validate_body("tracking", tracking) == tracking
        patch = validate_body("tracking-number", {"trackingNumber": "1", "dispatchedDate": date})
        assert patch["dispatchedDate"] == date

    @pytest.mark.parametrize("date", BAD_ISO)
    def test_bad_dates_refused_everywhere(self, date: str) -> None:
        errors = errors_of("invoice", invoice(issuanceDate=date, dispatchedDate=date))
        assert set(errors) == {"body.issuanceDate", "body.dispatchedDate"}
        assert "ISO 8601" in errors["body.issuanceDate"]
        event = {**SEED_TRACKING["events"][0], "date": date}
        assert set(errors_of("tracking", {**SEED_TRACKING, "events": [event]})) == {
            "body.events.0.date"
        }
        patch = {"trackingNumber": "1", "dispatchedDate": date}
        assert set(errors_of("tracking-number", patch)) == {"body.dispatchedDate"}

    def test_delivered_date_also_takes_the_spec_format(self) -> None:
        body = {**SEED_TRACKING, "isDelivered": True, "deliveredDate": "2022-10-01 21:15"}
        assert validate_body("tracking", body)["deliveredDate"] == "2022-10-01 21:15"

    @pytest.mark.parametrize(
        "date", ["", "2022-10-01 21:15:00", "2022-10-01  21:15", "2022-10-01 25:15", "01/10/2022"]
    )
    def test_bad_delivered_date_refused(self, date: str) -> None:
        body = {**SEED_TRACKING, "deliveredDate": date}
        assert set(errors_of("tracking", body)) == {"body.deliveredDate"}

    def test_event_date_does_not_take_the_spaced_format(self) -> None:
        event = {**SEED_TRACKING["events"][0], "date": "2022-10-01 21:15"}
        assert set(errors_of("tracking", {**SEED_TRACKING, "events": [event]})) == {
            "body.events.0.date"
        }


class TestNulls:
    """Omitted fields stay omitted except the spec's required-but-nullable ones; null stays null."""

    def test_minimal_invoice_sends_only_what_was_given(self) -> None:
        body = {
            "type": "Input",
            "issuanceDate": "2024-01-31T18:25:43-05:00",
            "invoiceNumber": "R-1",
            "invoiceValue": "100",
            "items": [{"id": "1", "price": 100, "quantity": 1}],
        }
        assert validate_body("invoice", body) == body

    def test_invoice_courier_sent_when_a_string(self) -> None:
        assert validate_body("invoice", invoice(courier="carrierOne"))["courier"] == "carrierOne"

    def test_invoice_empty_tracking_strings_kept(self) -> None:
        # The spec asks for "" in trackingNumber/trackingUrl when only invoicing.
        sent = validate_body("invoice", invoice(trackingNumber="", trackingUrl=""))
        assert (sent["trackingNumber"], sent["trackingUrl"]) == ("", "")

    def test_explicit_nulls_kept(self) -> None:
        body = {"trackingNumber": "1", "trackingUrl": None, "courier": None, "dispatchedDate": None}
        assert validate_body("tracking-number", body) == body
        body = {"trackingNumber": "1", "trackingUrl": "u", "courier": "c", "dispatchedDate": None}
        assert validate_body("tracking-number", body) == body

    def test_patch_with_only_a_tracking_number(self) -> None:
        assert validate_body("tracking-number", {"trackingNumber": "X1"}) == {
            "trackingNumber": "X1",
            "trackingUrl": None,
            "dispatchedDate": None,
            "courier": None,
        }

    def test_item_description_omitted_unless_given(self) -> None:
        item = {"id": "1", "price": 1, "quantity": 1, "description": "335"}
        assert validate_body("invoice", invoice(items=[item]))["items"] == [item]

    def test_null_item_description_omitted(self) -> None:
        # Like the POST courier, the spec types it as a plain (not nullable) string.
        item = {"id": "1", "price": 1, "quantity": 1}
        sent = validate_body("invoice", invoice(items=[{**item, "description": None}]))
        assert sent["items"] == [item]

    def test_models_can_be_built_in_python(self) -> None:
        model = TrackingNumber(trackingNumber="87658", courier="carrierOne")
        assert model.to_vtex() == {
            "trackingNumber": "87658",
            "trackingUrl": None,
            "dispatchedDate": None,
            "courier": "carrierOne",
        }


class TestRefusals:
    """Every bad field is named with its location and a short message."""

    def test_all_bad_fields_named_at_once(self) -> None:
        body = {
            "type": "Sale",
            "issuanceDate": "31/01/2024",
            "invoiceNumber": "6584634/09",
            "invoiceValue": 10.5,
            "courrier": "typo",
            "items": [
                {"id": "1", "price": 10.5, "quantity": 1},
                {"id": "", "price": 1, "quantity": 0, "sku": "x"},
            ],
        }
        errors = errors_of("invoice", body)
        assert set(errors) == {
            "body.type",
            "body.issuanceDate",
            "body.invoiceNumber",
            "body.invoiceValue",
            "body.courrier",
            "body.items.0.price",
            "body.items.1.id",
            "body.items.1.quantity",
            "body.items.1.sku",
        }
        assert all(message and len(message) < 300 for message in errors.values())
        assert errors["body.type"] == "must be 'Output' or 'Input'"
        assert "spelling" in errors["body.courrier"]

    def test_slash_in_invoice_number_explains_why(self) -> None:
        errors = errors_of("invoice", invoice(invoiceNumber="6584634/09"))
        assert "slash" in errors["body.invoiceNumber"]

    @pytest.mark.parametrize("number", ["", " 1", "#123", "a b", "..", "1?x", "1%2F", None, 9999])
    def test_unsafe_invoice_numbers_refused(self, number: object) -> None:
        assert set(errors_of("invoice", invoice(invoiceNumber=number))) == {"body.invoiceNumber"}

    @pytest.mark.parametrize(
        ("kind", "body", "location"),
        [
            ("invoice", {k: v for k, v in SEED_INVOICE.items() if k != "items"}, "body.items"),
            ("invoice", {k: v for k, v in SEED_INVOICE.items() if k != "type"}, "body.type"),
            ("tracking-number", {"trackingUrl": "u"}, "body.trackingNumber"),
            ("tracking", {"events": []}, "body.isDelivered"),
            ("tracking", {"isDelivered": True}, "body.events"),
        ],
    )
    def test_missing_required_field(self, kind: Kind, body: Any, location: str) -> None:
        assert errors_of(kind, body) == {location: "is required"}

    @pytest.mark.parametrize(
        ("kind", "body", "location"),
        [
            ("invoice", invoice(items=[]), "body.items"),
            ("invoice", invoice(issuanceDate=""), "body.issuanceDate"),
            ("invoice", invoice(items=[{"id": " ", "price": 1, "quantity": 1}]), "body.items.0.id"),
            ("tracking-number", {"trackingNumber": ""}, "body.trackingNumber"),
            ("tracking-number", {"trackingNumber": None}, "body.trackingNumber"),
            (
                "tracking",
                {"isDelivered": False, "events": [{**SEED_TRACKING["events"][0], "city": ""}]},
                "body.events.0.city",
            ),
        ],
    )
    def test_empty_required_value_refused(self, kind: Kind, body: Any, location: str) -> None:
        assert set(errors_of(kind, body)) == {location}

    @pytest.mark.parametrize(
        ("kind", "body", "location"),
        [
            ("tracking", {**SEED_TRACKING, "isDelivered": "false"}, "body.isDelivered"),
            ("tracking", {**SEED_TRACKING, "isDelivered": 0}, "body.isDelivered"),
            ("tracking", {**SEED_TRACKING, "events": {}}, "body.events"),
            ("tracking", {**SEED_TRACKING, "events": ["x"]}, "body.events.0"),
            ("invoice", invoice(items=[{"id": 123, "price": 1, "quantity": 1}]), "body.items.0.id"),
            ("invoice", invoice(type="output"), "body.type"),
            ("invoice", invoice(invoiceKey=5), "body.invoiceKey"),
            ("tracking-number", {"trackingNumber": 87658}, "body.trackingNumber"),
        ],
    )
    def test_wrong_type_refused(self, kind: Kind, body: Any, location: str) -> None:
        assert set(errors_of(kind, body)) == {location}

    @pytest.mark.parametrize("kind", KINDS)
    @pytest.mark.parametrize("data", [None, [], "{}", 3, [SEED_INVOICE]])
    def test_non_object_body(self, kind: Kind, data: object) -> None:
        assert errors_of(kind, data) == {"body": "must be a JSON object"}

    @pytest.mark.parametrize(
        ("kind", "body"),
        [
            ("invoice", invoice(isDelivered=True)),
            ("tracking-number", {**SEED_TRACKING_NUMBER, "isDelivered": True}),
            ("tracking", {**SEED_TRACKING, "trackingNumber": "1"}),
        ],
    )
    def test_field_of_another_request_refused(self, kind: Kind, body: Any) -> None:
        errors = errors_of(kind, body)
        assert len(errors) == 1
        assert next(iter(errors)).startswith("body.")

    def test_error_text_lists_every_field(self) -> None:
        with pytest.raises(InvalidJob) as caught:
            validate_body("invoice", invoice(invoiceValue="0", type="x"))
        assert "body.invoiceValue" in str(caught.value)
        assert "body.type" in str(caught.value)


class TestReceipt:
    def test_spec_example(self) -> None:
        data = {
            "date": "2024-02-07T15:22:56.7612218-02:00",
            "orderId": "123543123",
            "receipt": "38e0e47da2934847b489216d208cfd91",
        }
        assert Receipt.model_validate(data).model_dump() == data

    def test_all_optional_extra_ignored(self) -> None:
        assert Receipt.model_validate({"other": 1}) == Receipt()


# Any valid invoice goes out exactly as it came in (apart from a null courier).
_digits = st.integers(min_value=1, max_value=10**17)
_iso = st.dates().map(date.isoformat) | st.builds(
    lambda day, time, offset: day.isoformat() + time + offset,
    st.dates(),
    st.sampled_from(["T00:00", "T23:59:59", "T12:30:05.1", "T12:30:05.4617653"]),
    st.sampled_from(["", "Z", "+00:00", "-0300", "+14:00"]),
)
_text = st.text(min_size=1).filter(str.strip)
_item = st.fixed_dictionaries(
    {
        "id": _text,
        "price": st.integers(min_value=0, max_value=2**63 - 1),
        "quantity": st.integers(min_value=1, max_value=2**31 - 1),
    },
    optional={"description": st.none() | st.text()},
)
_invoices = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["Output", "Input"]),
        "issuanceDate": _iso,
        "invoiceNumber": st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,20}", fullmatch=True),
        "invoiceValue": _digits.map(str),
        "items": st.lists(_item, min_size=1, max_size=4),
    },
    optional={
        "invoiceKey": st.none() | st.text(),
        "invoiceUrl": st.none() | st.text(),
        "embeddedInvoice": st.none() | st.text(),
        "courier": st.text(),
        "trackingNumber": st.none() | st.text(),
        "trackingUrl": st.none() | st.text(),
        "dispatchedDate": st.none() | _iso,
    },
)


@given(_invoices)
def test_any_valid_invoice_round_trips_unchanged(body: dict[str, Any]) -> None:
    expected = copy.deepcopy(body)
    for item in expected["items"]:
        if item.get("description", "") is None:
            del item["description"]
    assert validate_body("invoice", body) == expected


@needs_schemas
@given(_invoices, st.none() | st.text())
def test_any_valid_invoice_goes_out_spec_valid(body: dict[str, Any], courier: str | None) -> None:
    body = {**body, "courier": courier}
    strict_spec_validator("invoice").validate(validate_body("invoice", body))


@given(_digits)
def test_integer_invoice_value_becomes_its_digit_string(value: int) -> None:
    assert validate_body("invoice", invoice(invoiceValue=value))["invoiceValue"] == str(value)
