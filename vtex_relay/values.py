"""The values VTEX's bodies hold, each with its check and the JSON schema that states it:
dates, amounts in cents, text that is not blank, invoice numbers. The models (``models``) are
built from them, and the intake's OpenAPI document publishes their schemas: what it promises
is what is checked.
"""

import re
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Field, WithJsonSchema
from pydantic_core import PydanticCustomError

from vtex_relay.identifiers import SEGMENT_SCHEMA, check_invoice_number

# The dates VTEX reads: real calendar days (years 0001 to 9999, February 29 of leap years
# only), hours 00-23, minutes and seconds 00-59, UTC offsets under 24 h. Plain regular
# expressions, so that the OpenAPI document states exactly this rule (vtex_relay.intake.openapi).
# [0-9], not \d: \d also matches non-ASCII digits such as "٣".
_YEAR = r"(?:[1-9][0-9]{3}|0(?:[1-9][0-9]{2}|0[1-9][0-9]|00[1-9]))"
_MONTH_DAY = (
    r"(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)"
    r"|02-(?:0[1-9]|1[0-9]|2[0-8]))"
)
_LEAP_YEAR = r"(?:[0-9]{2}(?:0[48]|[2468][048]|[13579][26])|(?:0[48]|[2468][048]|[13579][26])00)"
_DATE = f"(?:{_YEAR}-{_MONTH_DAY}|{_LEAP_YEAR}-02-29)"
_HOUR, _MINUTE = r"(?:[01][0-9]|2[0-3])", r"[0-5][0-9]"
ISO_PATTERN = (
    f"{_DATE}(?:T{_HOUR}:{_MINUTE}(?::{_MINUTE}(?:\\.[0-9]{{1,7}})?)?"
    f"(?:Z|[+-]{_HOUR}:?{_MINUTE})?)?"
)
SPACED_PATTERN = f"{_DATE} {_HOUR}:{_MINUTE}"  # the spec's deliveredDate format, yyyy-mm-dd hh:mm
CENTS_PATTERN = r"[1-9][0-9]{0,17}"  # > 0, no sign, separator or leading zero; fits int64
# What str.isspace() is true for, so what _non_blank's strip() removes: a value must have
# another character (tests/intake/test_contract.py checks the list).
NOT_BLANK_PATTERN = r"[^\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
_CENTS = re.compile(CENTS_PATTERN)
_MAX_CENTS = 10**18  # the first value _CENTS refuses
_CENTS_RULE = (
    "must be a whole number of cents greater than 0, digits only "
    '(no sign, separator or leading zero; at most 18 digits), e.g. "2499" for 24.99'
)

_ISO_HINT = "an ISO 8601 date or date-time such as 2024-01-31 or 2024-01-31T18:25:43-05:00"
_NUMBER = "the invoice number: " + str(SEGMENT_SCHEMA["description"])


def _error(message: str) -> PydanticCustomError:
    return PydanticCustomError("vtex_value", message)


def _date(*patterns: str, hint: str) -> tuple[AfterValidator, WithJsonSchema]:
    """The check of a date matching one of *patterns*, which keeps it exactly as given (VTEX
    reads the offset: we must not move it), and its JSON schema, which says the same."""
    pattern = "|".join(patterns)
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not compiled.fullmatch(value):
            raise _error(f"must be {hint}")
        return value

    schema = {"type": "string", "pattern": f"^(?:{pattern})$", "description": hint}
    return AfterValidator(check), WithJsonSchema(schema)


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


_ISO_CHECK, _ISO_SCHEMA = _date(ISO_PATTERN, hint=_ISO_HINT)
_DELIVERED_CHECK, _DELIVERED_SCHEMA = _date(
    SPACED_PATTERN, ISO_PATTERN, hint="yyyy-mm-dd hh:mm or " + _ISO_HINT
)
IsoDate = Annotated[str, _ISO_CHECK, _ISO_SCHEMA]
DeliveredDate = Annotated[str, _DELIVERED_CHECK, _DELIVERED_SCHEMA]
Text = Annotated[
    str,
    AfterValidator(_non_blank),
    WithJsonSchema({"type": "string", "pattern": NOT_BLANK_PATTERN, "description": "not blank"}),
]
CentsString = Annotated[
    str,
    BeforeValidator(_cents_string),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": f"^{CENTS_PATTERN}$"},
                {"type": "integer", "minimum": 1, "maximum": _MAX_CENTS - 1},
            ],
            "description": _CENTS_RULE + " (an integer is taken as its digits)",
        }
    ),
]
InvoiceNumber = Annotated[
    str, AfterValidator(_invoice_number), WithJsonSchema(SEGMENT_SCHEMA | {"description": _NUMBER})
]
Cents = Annotated[int, Field(ge=0, le=2**63 - 1)]
Quantity = Annotated[int, Field(ge=1, le=2**31 - 1)]
