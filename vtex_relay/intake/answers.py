"""What the intake answers: VTEX's shapes, so that a VTEX client reads them as VTEX's own.

A refusal is raised as ``Refusal`` anywhere in a handler and turned into VTEX's error body,
``{"error": {"code": "1", "message": ..., "exception": null}}``, by the dispatcher. Messages are
built from validated values and the relay's own texts only: no header value (so no token) can
reach one.
"""

from collections.abc import Mapping, Sequence
from typing import Any

from aiohttp import web
from pydantic_core import to_json

from vtex_relay.errors import FieldError

JSON = "application/json; charset=utf-8"


class Refusal(Exception):
    """A request refused with *status* and a message in VTEX's error shape (nothing enqueued).

    ``fields`` lists each bad field (``{"field", "message"}``) for a 400, so a client can
    show every one of them, not only the first.
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        fields: Sequence[FieldError] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.fields = list(fields)
        self.headers = dict(headers or {})

    def response(self) -> web.Response:
        error: dict[str, Any] = {"code": "1", "message": self.message, "exception": None}
        if self.fields:
            error["fields"] = [{"field": f.location, "message": f.message} for f in self.fields]
        return json_response({"error": error}, self.status, self.headers)


def json_response(
    data: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    """*data* as JSON; pydantic-core's encoder, a good deal faster than ``json.dumps``."""
    return web.Response(
        body=to_json(data), status=status, headers=headers, content_type="application/json"
    )


def invalid(errors: Sequence[FieldError]) -> Refusal:
    """400 naming every bad field, in one message too (for clients that show only that)."""
    listed = "; ".join(str(error) for error in errors)
    return Refusal(400, f"Invalid request: {listed}; nothing was enqueued", fields=errors)
