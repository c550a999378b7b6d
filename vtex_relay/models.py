"""The three request bodies vtex-relay sends to VTEX OMS, and the receipt VTEX answers with.

Field names, types, required fields and nullability follow VTEX's Orders API spec (its
OpenAPI document for the Orders API, the three operations below):

* ``Invoice``        - POST ``/api/oms/pvt/orders/{orderId}/invoice``
* ``TrackingNumber`` - PATCH ``/api/oms/pvt/orders/{orderId}/invoice/{invoiceNumber}``
* ``TrackingUpdate`` - PUT ``/api/oms/pvt/orders/{orderId}/invoice/{invoiceNumber}/tracking``

Guarantees: validation is strict (no type coercion except an integer ``invoiceValue``, which
becomes its digit string as the spec wants), unknown fields are refused by name, and
``to_vtex()`` never reformats a value: dates and amounts go out exactly as they came in.
``parse_json`` turns any input bytes into JSON or a one-line ``ValueError``, never a traceback.
"""

import json
import re
import sys
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic_core import PydanticCustomError

from vtex_relay.errors import MAX_FIELD_ERRORS, FieldError, InvalidJob
from vtex_relay.identifiers import check_invoice_number

Kind = Literal["invoice", "tracking-number", "tracking"]
KINDS: tuple[Kind, ...] = ("invoice", "tracking-number", "tracking")
InvoicePolicy = Literal["single", "partial"]

# [0-9], not \d: \d also matches non-ASCII digits such as "٣".
_DATE = r"(?P<y>[0-9]{4})-(?P<mo>[0-9]{2})-(?P<d>[0-9]{2})"
_TIME = r"(?P<h>[0-9]{2}):(?P<mi>[0-9]{2})"
_ISO = re.compile(
    _DATE + r"(?:T" + _TIME + r"(?::(?P<s>[0-9]{2})(?:\.[0-9]{1,7})?)?"
    r"(?:Z|[+-](?P<oh>[0-9]{2}):?(?P<om>[0-9]{2}))?)?"
)
_SPACED = re.compile(_DATE + " " + _TIME)  # the spec's deliveredDate format, yyyy-mm-dd hh:mm
_CENTS = re.compile(r"[1-9][0-9]{0,17}")  # > 0, no sign, separator or leading zero; fits int64
_MAX_CENTS = 10**18  # the first value _CENTS refuses
_CENTS_RULE = (
    "must be a whole number of cents greater than 0, digits only "
    '(no sign, separator or leading zero; at most 18 digits), e.g. "2499" for 24.99'
)

_ISO_HINT = "an ISO 8601 date or date-time such as 2024-01-31 or 2024-01-31T18:25:43-05:00"


def _error(message: str) -> PydanticCustomError:
    return PydanticCustomError("vtex_value", message)


def _real_moment(match: re.Match[str]) -> bool:
    """True if the matched digits name a real calendar date, time and UTC offset."""
    parts = {k: int(v) for k, v in match.groupdict().items() if v is not None}
    try:
        datetime(parts["y"], parts["mo"], parts["d"], parts.get("h", 0), parts.get("mi", 0))
        timezone(timedelta(hours=parts.get("oh", 0), minutes=parts.get("om", 0)))
    except ValueError:
        return False
    return parts.get("s", 0) <= 59 and parts.get("om", 0) <= 59


def _date_check(*patterns: re.Pattern[str], hint: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        for pattern in patterns:
            match = pattern.fullmatch(value)
            if match and _real_moment(match):
                return value  # kept exactly as given: VTEX reads the offset, we must not move it
        raise _error(f"must be {hint}")

    return check


def _non_blank(value: str) -> str:
    if not value.strip():
        raise _error("must not be empty")
    return value


def _invoice_number(value: str) -> str:
    try:
        return check_invoice_number(value)
    except ValueError as exc:
        raise _error(str(exc)) from None


def _cents_string(value: object) -> object:
    """The spec types invoiceValue as a string of cents; an int is accepted and turned into one."""
    if isinstance(value, int) and not isinstance(value, bool):
        # The range first: str() of an int past Python's digit limit raises.
        if not 0 < value < _MAX_CENTS:
            raise _error(_CENTS_RULE)
        value = str(value)
    elif not isinstance(value, str):
        raise _error('must be a whole number of cents (a string of digits such as "2499")')
    if not _CENTS.fullmatch(value):
        raise _error(_CENTS_RULE)
    return value


IsoDate = Annotated[str, AfterValidator(_date_check(_ISO, hint=_ISO_HINT))]
DeliveredDate = Annotated[
    str, AfterValidator(_date_check(_SPACED, _ISO, hint="yyyy-mm-dd hh:mm or " + _ISO_HINT))
]
Text = Annotated[str, AfterValidator(_non_blank)]
Cents = Annotated[int, Field(ge=0, le=2**63 - 1)]
Quantity = Annotated[int, Field(ge=1, le=2**31 - 1)]


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
    invoiceNumber: Annotated[str, AfterValidator(_invoice_number)]
    invoiceValue: Annotated[str, BeforeValidator(_cents_string)]
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


def parse_json(data: bytes | str) -> object:
    """Parse a body or batch line given as UTF-8 bytes or text.

    Anything unusable raises ``ValueError`` with a one-line reason that reads after "is" or
    after a field name ("not UTF-8: ...", "not JSON: ...", "not parsable: ..."). It never
    quotes the input and never lets through a ``RecursionError`` (arrays nested ~1,000 deep)
    or the int digit limit's own error, which would otherwise end a program with a traceback.
    """
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
    except UnicodeDecodeError as exc:
        byte = exc.object[exc.start]
        where = f"byte 0x{byte:02x} at position {exc.start}"
        raise ValueError(f"not UTF-8: cannot decode {where} ({exc.reason})") from None
    try:
        return json.loads(text)
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


def _field_error(error: Any) -> FieldError:
    location = ".".join(["body", *(str(part) for part in error["loc"])])
    message = _MESSAGES.get(error["type"])
    if message is None:
        message = str(error["msg"]).replace("Input should be", "must be")
        if error["type"] == "too_short":
            message = "must not be empty"
    return FieldError(location, message)
