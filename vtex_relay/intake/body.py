"""Reading a request body: bounded in size and in time, JSON only, parsed without surprises.

A body is read up to a limit and no further (``Content-Length`` over it is refused before a
byte is read), within ``INTAKE_READ_TIMEOUT`` (a client that trickles its body is cut off).
What the CLI refuses in a file, the intake refuses in a body, with the same reasons:
not UTF-8, not JSON, nested or numbered beyond what can be parsed.
"""

import asyncio

from aiohttp import web

from vtex_relay.errors import FieldError
from vtex_relay.intake.answers import Refusal, invalid
from vtex_relay.models import parse_json


async def read_body(request: web.BaseRequest, limit: int, timeout: float) -> bytes:
    """The raw body, at most *limit* bytes: ``Refusal`` 413 beyond, 408 if it is too slow."""
    declared = request.content_length
    if declared is not None and declared > limit:
        raise too_large(limit)
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout):
            while chunk := await request.content.read(min(limit + 1 - size, 1 << 20) or 1):
                size += len(chunk)
                if size > limit:
                    raise too_large(limit)
                chunks.append(chunk)
    except TimeoutError:
        raise Refusal(408, f"Request body not received within {timeout:g} s") from None
    return b"".join(chunks)


def too_large(limit: int) -> Refusal:
    # Close the connection: the rest of the body is not read, so it cannot carry a next request.
    return Refusal(
        413,
        f"Request body over {limit:,} bytes, the most accepted; nothing was enqueued",
        headers={"Connection": "close"},
    )


def check_json_type(request: web.BaseRequest) -> None:
    """``Refusal`` 400 unless the body is declared JSON, as VTEX requires."""
    if request.content_type != "application/json":
        shown = request.content_type[:100]
        raise Refusal(
            400, f"Content-Type must be application/json, not {shown}; nothing was enqueued"
        )


def parse(raw: bytes) -> object:
    """The parsed body; ``Refusal`` 400 saying why it cannot be (never quoting it)."""
    try:
        return parse_json(raw)
    except ValueError as exc:
        raise invalid([FieldError("body", f"is {exc}")]) from None
