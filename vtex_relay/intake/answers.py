"""What the intake answers: VTEX's shapes, so that a VTEX client reads them as VTEX's own.

A refusal is raised as ``errors.Refusal`` anywhere in a handler and turned into VTEX's error body
(``answer``),
``{"error": {"code": "1", "message": ..., "exception": null}}``, by the dispatcher. Messages are
built from validated values and the relay's own texts only: no header value (so no token) can
reach one.
"""

from collections.abc import Mapping, Sequence
from typing import Annotated, Any

from aiohttp import web
from pydantic import BaseModel, Field
from pydantic.config import JsonDict
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import to_json

from vtex_relay.errors import MAX_FIELD_ERRORS, FieldError, Refusal


def _no_default(schema: JsonDict) -> None:
    del schema["default"]


def _optional(description: str) -> Any:
    """A field left out unless set (its schema: neither null nor a default)."""
    return Field(None, description=description, json_schema_extra=_no_default)


class BadField(BaseModel):
    field: str = Field(description="where: a body field (body.items.0.price), a parameter")
    message: str


class ErrorDetail(BaseModel):
    code: str = Field(description='"1" from the relay; VTEX\'s own code in a passed-through answer')
    message: str = Field(description="what is wrong; nothing was enqueued")
    exception: None
    fields: list[BadField] | SkipJsonSchema[None] = _optional(
        f"each bad field of a 400, the first {MAX_FIELD_ERRORS}"
    )
    fieldsNotListed: Annotated[int, Field(ge=1)] | SkipJsonSchema[None] = _optional(
        "how many more bad fields there were, not listed"
    )


class VtexError(BaseModel):
    """VTEX's error shape: every refusal of the relay's, and VTEX's own errors."""

    error: ErrorDetail


def answer(refusal: Refusal) -> web.Response:
    """*refusal* as VTEX's error body, with its status and headers."""
    error: dict[str, Any] = {"code": "1", "message": refusal.message, "exception": None}
    if refusal.fields:
        error["fields"] = [{"field": f.location, "message": f.message} for f in refusal.fields]
    if refusal.not_listed:
        error["fieldsNotListed"] = refusal.not_listed
    # Through the model: what the OpenAPI document says of an error is what is sent.
    body = VtexError.model_validate({"error": error}).model_dump(exclude_unset=True)
    return json_response(body, refusal.status, refusal.headers)


def json_response(
    data: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    """*data* as JSON; pydantic-core's encoder, a good deal faster than ``json.dumps``."""
    return web.Response(
        body=to_json(data), status=status, headers=headers, content_type="application/json"
    )


def invalid(
    errors: Sequence[FieldError],
    not_listed: int = 0,
    *,
    status: int = 400,
    reason: str = "Invalid request",
) -> Refusal:
    """400 (or *status*) naming the bad fields, in one message too (for clients that show only
    that): the first ``MAX_FIELD_ERRORS`` of them, and how many more there were (*not_listed*
    and those cut here), so that the answer to a body of thousands of bad items stays small."""
    shown = errors[:MAX_FIELD_ERRORS]
    listed = "; ".join(str(error) for error in shown)
    more = not_listed + len(errors) - len(shown)
    if more:
        listed += f"; and {more:,} more bad field(s), not listed"
    message = f"{reason}: {listed}; nothing was enqueued"
    return Refusal(status, message, fields=shown, not_listed=more)
