"""Validation of the values that end up in a VTEX URL: account (host) and path segments.

Every value that becomes part of a URL is checked here, at enqueue time and again in the
OMS client, so that no input can change the request's host or path. The rules are allow-lists:
VTEX order ids look like ``1172452900788-01`` or ``v501245lspt-01``; VTEX recommends plain
alphanumeric invoice numbers, since OMS cannot route updates for some others. Each check
returns the value to use from then on: an account comes back in lower case.
"""

import re
from typing import Any

ACCOUNT_PATTERN = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
# Unreserved URL characters only: nothing that is a separator (/ ? # %) or needs encoding; a
# letter or digit first, and never "..": each '.' is followed by another character or ends it.
SEGMENT_PATTERN = r"[A-Za-z0-9](?:\.?[A-Za-z0-9_-])*\.?"
MAX_SEGMENT = 128
_ACCOUNT = re.compile(ACCOUNT_PATTERN)
_SEGMENT = re.compile(SEGMENT_PATTERN)


def json_schema(pattern: str, max_length: int, description: str) -> dict[str, Any]:
    """The JSON schema of a value *pattern* matches whole (the OpenAPI document's)."""
    return {
        "type": "string",
        "pattern": f"^(?:{pattern})$",
        "minLength": 1,
        "maxLength": max_length,
        "description": description,
    }


ACCOUNT_SCHEMA = json_schema(
    ACCOUNT_PATTERN, 63, "a VTEX account name: letters, digits and '-' (a host label)"
)
SEGMENT_SCHEMA = json_schema(
    SEGMENT_PATTERN,
    MAX_SEGMENT,
    "letters, digits, '-', '_' and '.', a letter or digit first, no '..'",
)


def check_account(value: str) -> str:
    """Return *value* in lower case if it is a plain host label: the ``{account}`` of the host.

    Host names are case-insensitive, so ``MyStore`` and ``mystore`` are one VTEX account: the
    lower-case form is the account's only name, and every boundary (settings, CLI, Python API,
    batch lines) keeps the returned value, so that an account is one order namespace in Redis,
    one rate bucket and one settings entry.
    """
    if not _ACCOUNT.fullmatch(value):
        raise ValueError(
            "must be a VTEX account name: letters, digits and '-', at most 63 characters "
            "(a plain host label, no dots or slashes)"
        )
    return value.lower()


def check_order_id(value: str) -> str:
    """Return *value* if it is safe as the ``{orderId}`` path segment."""
    return _check_segment(value, "an order id")


def check_invoice_number(value: str) -> str:
    """Return *value* if it is safe as the ``{invoiceNumber}`` path segment.

    A ``/`` is refused with VTEX's own reason: OMS cannot route tracking updates for such an
    invoice (the raw slash splits the path and ``%2F`` is decoded), so posting it would create
    an invoice whose tracking can never be sent.
    """
    if "/" in value:
        raise ValueError(
            "must not contain '/': VTEX cannot route tracking-number and tracking updates for an "
            "invoice number with a slash (known issue in OMS); use letters, digits, '-', '_' or '.'"
        )
    return _check_segment(value, "an invoice number")


def _check_segment(value: str, what: str) -> str:
    if len(value) > MAX_SEGMENT or not _SEGMENT.fullmatch(value):
        raise ValueError(
            f"must be {what} made of letters, digits, '-', '_' or '.', starting with a letter "
            "or digit, at most 128 characters (no '/', '?', '#', '%', '..', spaces or "
            "control characters)"
        )
    return value
