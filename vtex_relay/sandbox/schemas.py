"""Validation of OMS request bodies against VTEX's own spec, independent of vtex-relay's models.

The schemas come from ``oms-request-schemas.json`` (generated from VTEX's OpenAPI file by
``scripts/extract_oms_schemas.py``). VTEX's published integration guide sends three bodies that
the spec's schema refuses; since VTEX documents those bodies as working, the default (lenient)
mode applies exactly these relaxations, and ``strict=True`` applies none:

* POST invoice: ``courier`` may be ``null`` (the guide sends ``"courier": null``).
* PATCH tracking number: ``dispatchedDate`` may be missing (the guide omits it).
* PUT tracking: ``deliveredDate`` may be missing (the guide omits it).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, ValidationError
from jsonschema.exceptions import best_match

NAMES = ("invoice", "tracking_number", "tracking")  # the request schemas' names


class BodyError(ValueError):
    """A request body was refused; the message names the failing field."""


def _load() -> dict[str, Any]:
    text = Path(__file__).with_name("oms-request-schemas.json").read_text("utf-8")
    document: dict[str, Any] = json.loads(text)
    return document


def _relax(schemas: dict[str, Any]) -> None:
    schemas["invoice"]["properties"]["courier"]["type"] = ["string", "null"]
    for name, field in (("tracking_number", "dispatchedDate"), ("tracking", "deliveredDate")):
        schemas[name]["required"] = [f for f in schemas[name]["required"] if f != field]


class BodyValidator:
    """Checks the three write bodies; ``check`` raises ``BodyError`` naming the field."""

    def __init__(self, *, strict: bool = False) -> None:
        schemas = copy.deepcopy(_load())
        if not strict:
            _relax(schemas)
        self._validators = {name: Draft202012Validator(schemas[name]) for name in NAMES}

    def check(self, schema: str, body: Any) -> None:
        """Raise ``BodyError`` unless *body* satisfies the request schema *schema* (its name in
        VTEX's spec: ``Operation.schema``) and VTEX's extra rules."""
        validator = self._validators[schema]
        if not validator.is_valid(body):
            error = best_match(validator.iter_errors(body))
            raise BodyError(f"{_location(error)}: {error.message}")
        rules = _RULES.get(schema)
        if rules is not None:
            rules(body)


def _location(error: ValidationError) -> str:
    """Dotted path of the failing field, including the name of a missing required property."""
    parts = [str(p) for p in error.absolute_path]
    required = error.validator_value if error.validator == "required" else None
    if isinstance(required, list) and isinstance(error.instance, dict):
        missing = [name for name in required if name not in error.instance]
        parts.extend(missing[:1])
    return ".".join(parts) or "body"


def _check_invoice_rules(body: dict[str, Any]) -> None:
    # Rules stated in the spec's descriptions, which a JSON Schema cannot express.
    value = body["invoiceValue"]
    if not (value.isascii() and value.isdigit()) or int(value) <= 0:
        raise BodyError(
            "invoiceValue: must be a string of digits greater than 0 (cents, no separator), "
            f"got {value!r}"
        )
    number = body["invoiceNumber"]
    # The spec marks it nullable, but the sandbox keys packages by it (VTEX's behaviour for
    # a null number is undocumented).
    if not number:
        raise BodyError("invoiceNumber: must be a non-empty string")


# Rules of a request schema that its JSON Schema cannot express, by the schema's name.
_RULES: dict[str, Callable[[dict[str, Any]], None]] = {"invoice": _check_invoice_rules}
