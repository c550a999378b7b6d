"""The three request bodies vtex-relay sends to VTEX OMS, and the receipt VTEX answers with.

Field names, types, required fields and nullability follow VTEX's Orders API spec (its
OpenAPI document for the Orders API, the three operations below):

* ``Invoice``        - POST ``/api/oms/pvt/orders/{orderId}/invoice``
* ``TrackingNumber`` - PATCH ``/api/oms/pvt/orders/{orderId}/invoice/{invoiceNumber}``
* ``TrackingUpdate`` - PUT ``/api/oms/pvt/orders/{orderId}/invoice/{invoiceNumber}/tracking``

Guarantees: validation is strict (no type coercion except an integer ``invoiceValue``, which
becomes its digit string as the spec wants), unknown fields are refused by name, and
``to_vtex()`` never reformats a value: dates and amounts go out exactly as they came in.
``parse_json`` turns any input bytes into JSON or a one-line ``ValueError``, never a traceback;
a whole number is an int however it is written (``2927.0`` is ``2927``, as JSON Schema says).
Every rule a JSON schema can state is in the models' schemas too (patterns, lengths), which
the intake's OpenAPI document publishes (``vtex_relay.intake.openapi``).
"""

import json
import re
import sys
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
)

from vtex_relay.errors import MAX_FIELD_ERRORS, FieldError, InvalidJob
from vtex_relay.values import (
    Cents,
    CentsString,
    DeliveredDate,
    InvoiceNumber,
    IsoDate,
    Quantity,
    Text,
)

Kind = Literal["invoice", "tracking-number", "tracking"]
KINDS: tuple[Kind, ...] = ("invoice", "tracking-number", "tracking")
InvoicePolicy = Literal["single", "partial"]

_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


class Body(BaseModel):
    """Common behaviour of the request bodies and their parts: strict, closed, immutable."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    # Fields the spec marks required but nullable: sent as null when the input left them out.
    _always_sent: ClassVar[tuple[str, ...]] = ()
    # Fields the spec marks not nullable but that callers commonly send as null: left out.
    _dropped_if_null: ClassVar[tuple[str, ...]] = ()

    def to_vtex(self) -> dict[str, Any]:
        """The JSON object VTEX expects: given fields as given, in the spec's order."""
        body: dict[str, Any] = {}
        for name in type(self).model_fields:
            if name in self.model_fields_set:
                value = getattr(self, name)
                if value is None and name in self._dropped_if_null:
                    continue
                body[name] = [v.to_vtex() for v in value] if isinstance(value, list) else value
            elif name in self._always_sent:
                body[name] = None
        return body


class InvoiceItem(Body):
    """One SKU line of an invoice; ``price`` is the UNIT price in cents (VTEX multiplies)."""

    _dropped_if_null: ClassVar[tuple[str, ...]] = ("description",)  # spec: a plain string

    id: Text
    price: Cents
    description: str | None = None
    quantity: Quantity


class Invoice(Body):
    """Body of the invoice notification (POST)."""

    _dropped_if_null: ClassVar[tuple[str, ...]] = ("courier",)  # spec: nullable: false

    type: Literal["Output", "Input"]
    issuanceDate: IsoDate
    # The spec says nullable, but the number becomes the PATCH/PUT path segment: required here.
    invoiceNumber: InvoiceNumber
    invoiceValue: CentsString
    invoiceKey: str | None = None
    invoiceUrl: str | None = None
    embeddedInvoice: str | None = None
    courier: str | None = None
    trackingNumber: str | None = None
    trackingUrl: str | None = None
    dispatchedDate: IsoDate | None = None
    items: Annotated[list[InvoiceItem], Field(min_length=1)]


class TrackingNumber(Body):
    """Body of the tracking-number update (PATCH); unknown values go out as null."""

    _always_sent: ClassVar[tuple[str, ...]] = ("trackingUrl", "courier", "dispatchedDate")

    trackingNumber: Text
    trackingUrl: str | None = None
    dispatchedDate: IsoDate | None = None
    courier: str | None = None


class TrackingEvent(Body):
    """One tracking event (the spec's ``Event``)."""

    city: Text
    state: Text
    description: Text
    date: IsoDate


class TrackingUpdate(Body):
    """Body of the tracking-status update (PUT); ``deliveredDate`` goes out as null if unknown."""

    _always_sent: ClassVar[tuple[str, ...]] = ("deliveredDate",)

    isDelivered: bool
    deliveredDate: DeliveredDate | None = None
    events: list[TrackingEvent]


class Receipt(BaseModel):
    """VTEX's 200 answer to the three writes: ``{date, orderId, receipt}``, all optional."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    date: str | None = None
    orderId: str | None = None
    receipt: str | None = None


# Short messages for pydantic's own error types; anything else uses pydantic's text.
_MESSAGES = {
    "missing": "is required",
    "extra_forbidden": "is not a field of this VTEX request (check the spelling)",
    "model_type": "must be a JSON object",
    "dict_type": "must be a JSON object",
    "string_type": "must be a string",
    "int_type": "must be a whole number (no decimals, no quotes)",
    "bool_type": "must be true or false",
    "list_type": "must be a JSON array",
}


def validate(model: type[Body], data: object) -> dict[str, Any]:
    """Validate *data* as a *model* body (``operations.validate_body``: a job kind's) and
    return the JSON to send VTEX.

    Raises ``InvalidJob`` naming the bad fields (``body.items.0.price: ...``).
    """
    if not isinstance(data, dict):
        raise InvalidJob([FieldError("body", "must be a JSON object")])
    try:
        body = model.model_validate(data)
    except ValidationError as exc:
        # Only the errors shown are translated: a body may have hundreds of thousands.
        shown = exc.errors(include_url=False, include_input=False)[:MAX_FIELD_ERRORS]
        raise InvalidJob([_field_error(e) for e in shown], exc.error_count() - len(shown)) from None
    return body.to_vtex()


def _number(text: str) -> int | float:
    """A JSON number written with a fraction or an exponent: an int if it is a whole one
    (``2927.0``, ``1e3``: JSON, and so the OpenAPI document's ``integer``, tells them from
    ``2927`` and ``1000`` by their spelling only), exactly, whatever its size up to 20 digits
    (every integer field's maximum is below); else a float, as ``json`` reads it."""
    value = Decimal(text)
    if value.adjusted() < 20 and value == value.to_integral_value():
        return int(value)
    return float(text)


def _unpaired_surrogate(value: object) -> bool:
    """True if a string in *value* (keys too) holds half of a UTF-16 surrogate pair: JSON's
    ``"\\ud800"`` escape parses to one, which is no character and cannot be sent as UTF-8."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def parse_json(data: bytes | str) -> object:
    """Parse a body or batch line given as UTF-8 bytes or text; a whole number is an int
    however it is written (``_number``).

    Anything unusable raises ``ValueError`` with a one-line reason that reads after "is" or
    after a field name ("not UTF-8: ...", "not JSON: ...", "not parsable: ...", "not text:
    ..." for an unpaired surrogate escape, which no answer could quote). It never quotes the
    input and never lets through a ``RecursionError`` (arrays nested ~1,000 deep) or the int
    digit limit's own error, which would otherwise end a program with a traceback.
    """
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
    except UnicodeDecodeError as exc:
        byte = exc.object[exc.start]
        where = f"byte 0x{byte:02x} at position {exc.start}"
        raise ValueError(f"not UTF-8: cannot decode {where} ({exc.reason})") from None
    try:
        parsed = json.loads(text, parse_float=_number)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    except RecursionError:
        raise ValueError(
            "not parsable: arrays or objects nested more deeply than the JSON parser allows "
            f"(about {sys.getrecursionlimit():,} levels)"
        ) from None
    except ValueError:  # the only other one json raises: an int beyond the digit limit
        raise ValueError(
            f"not parsable: a number has more than {sys.get_int_max_str_digits():,} digits"
        ) from None
    # Only an escape makes one (the text itself is valid UTF-8): look only then.
    if _SURROGATE_ESCAPE.search(text) and _unpaired_surrogate(parsed):
        raise ValueError("not text: a string has an unpaired UTF-16 surrogate (a \\ud800 escape)")
    return parsed


def _field_error(error: Any) -> FieldError:
    location = ".".join(["body", *(str(part) for part in error["loc"])])
    message = _MESSAGES.get(error["type"])
    if message is None:
        message = str(error["msg"]).replace("Input should be", "must be")
        if error["type"] == "too_short":
            message = "must not be empty"
    return FieldError(location, message)
