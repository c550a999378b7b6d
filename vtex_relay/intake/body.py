"""Reading a request body: bounded in size and in time, JSON only, parsed without surprises.

A body is read up to a limit and no further (``Content-Length`` over it is refused before a
byte is read), within ``INTAKE_READ_TIMEOUT`` (a client that trickles its body is cut off),
and only while the bodies of all requests in flight hold at most ``INTAKE_MAX_INFLIGHT_BYTES``
together (past it, 503 with ``Retry-After``: many large bodies at once must not exhaust the
process's memory).
What the CLI refuses in a file, the intake refuses in a body, with the same reasons:
not UTF-8, not JSON, nested or numbered beyond what can be parsed.
"""

import asyncio

from aiohttp import web

from vtex_relay.errors import FieldError, Refusal
from vtex_relay.intake.answers import invalid
from vtex_relay.models import parse_json


class Bodies:
    """The bytes that the bodies of the requests in flight hold, bounded by *limit*. A request
    ``take``s as it reads (its ``Content-Length`` at once, when it gives one) and its ``Held``
    gives everything back when its answer is made."""

    def __init__(self, limit: int, retry_after: int) -> None:
        self.limit = limit
        self.retry_after = retry_after
        self.held = 0

    def hold(self) -> "Held":
        return Held(self)


class Held:
    """What one request's body holds of ``Bodies``."""

    def __init__(self, bodies: Bodies) -> None:
        self.bodies = bodies
        self.size = 0

    def take(self, size: int) -> None:
        """Count *size* more bytes; ``Refusal`` 503 if all bodies would hold over the limit."""
        bodies = self.bodies
        if bodies.held + size > bodies.limit:
            raise Refusal(
                503,
                f"The relay holds {bodies.limit:,} bytes of request bodies already "
                f"(INTAKE_MAX_INFLIGHT_BYTES); try again in {bodies.retry_after} s; nothing "
                "was enqueued",
                headers={"Retry-After": str(bodies.retry_after), "Connection": "close"},
            )
        bodies.held += size
        self.size += size

    def release(self) -> None:
        self.bodies.held -= self.size
        self.size = 0


async def read_body(request: web.BaseRequest, limit: int, timeout: float, held: Held) -> bytes:
    """The raw body, at most *limit* bytes: ``Refusal`` 413 beyond, 408 if it is too slow,
    503 if the bodies in flight would hold too much (counted in *held*)."""
    declared = request.content_length
    if declared is not None and declared > limit:
        raise too_large(limit)
    held.take(declared or 0)
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout):
            while chunk := await request.content.read(min(limit + 1 - size, 1 << 20) or 1):
                size += len(chunk)
                if size > limit:
                    raise too_large(limit)
                if size > (declared or 0):
                    held.take(min(len(chunk), size - (declared or 0)))
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
