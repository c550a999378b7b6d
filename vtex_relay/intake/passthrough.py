"""``GET /api/oms/pvt/orders/{orderId}``, passed through to VTEX with the account's credentials.

A client that reads the order back after its writes keeps working when its base URL is the
relay's. The call has the OMS client's protections: the order id is checked before it becomes
part of a URL, redirects are not followed (they would carry the credentials elsewhere), no
cookie is kept (an answer for one account must not add a header to another's call), and an
error says what failed without the request (so without a header).

VTEX's answer is read whole, up to ``MAX_ORDER_BYTES``, before anything is answered: a body
cut short (the connection closed early) is a 502, never a 200 with part of an order. Each
account has at most ``INTAKE_ACCOUNT_CONNECTIONS`` calls open at once, so one account whose
VTEX is slow cannot take the connections every other account's reads need; a call that waits
too long for one of its account's connections is a 504 that says so.
"""

import asyncio
import time

import aiohttp
from aiohttp import web

from vtex_relay.errors import FieldError
from vtex_relay.identifiers import check_order_id
from vtex_relay.intake.answers import Refusal, invalid
from vtex_relay.intake.auth import KEY_HEADER, TOKEN_HEADER
from vtex_relay.settings import Settings

MAX_ORDER_BYTES = 16 * 1_048_576  # a large order's JSON is a few hundred KB
_KEPT_HEADERS = ("Content-Type", "Retry-After")


class Passthrough:
    """The GET order calls of one intake: an HTTP session without a cookie jar and each
    account's connection slots. Made and closed on the event loop."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # No overall limit: the per-account slots bound the calls, and the intake's own
        # connection limit bounds the accounts' calls together (one call per request).
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=0)
        self.session = aiohttp.ClientSession(
            connector=connector, cookie_jar=aiohttp.DummyCookieJar()
        )
        self._slots: dict[str, asyncio.Semaphore] = {}

    async def close(self) -> None:
        await self.session.close()

    async def get_order(self, account: str, raw_order_id: str) -> web.Response:
        """VTEX's answer to GET order (status, body, content type, ``Retry-After``), or
        502/504 saying what failed."""
        try:
            order_id = check_order_id(raw_order_id)
        except ValueError as exc:
            raise invalid([FieldError("orderId", str(exc))]) from None
        settings = self.settings
        started = time.monotonic()
        slots = self._slots.setdefault(
            account, asyncio.Semaphore(settings.intake_account_connections)
        )
        try:
            async with asyncio.timeout(settings.vtex_timeout):
                await slots.acquire()
        except TimeoutError:
            raise Refusal(
                504,
                f"Account {account} already has {settings.intake_account_connections} calls "
                f"waiting on VTEX (INTAKE_ACCOUNT_CONNECTIONS); this one found none free "
                f"within {settings.vtex_timeout:g} s (VTEX_TIMEOUT)",
            ) from None
        try:
            return await self._call(account, order_id, time.monotonic() - started)
        finally:
            slots.release()

    async def _call(self, account: str, order_id: str, waited: float) -> web.Response:
        """The call, within what is left of ``VTEX_TIMEOUT`` after *waited* seconds for one
        of the account's connections."""
        settings = self.settings
        key, token = settings.credentials(account)
        url = f"{settings.base_url(account)}/api/oms/pvt/orders/{order_id}"
        headers = {
            "Accept": "application/json",
            "Content-Type": "application/json",
            KEY_HEADER: key,
            TOKEN_HEADER: token.get_secret_value(),
        }
        timeout = aiohttp.ClientTimeout(total=max(settings.vtex_timeout - waited, 0.001))
        try:
            async with self.session.get(
                url, headers=headers, allow_redirects=False, timeout=timeout
            ) as answer:
                if (answer.content_length or 0) > MAX_ORDER_BYTES:
                    raise _too_large()
                body = await _whole(answer)
                kept = {n: answer.headers[n] for n in _KEPT_HEADERS if n in answer.headers}
                return web.Response(status=answer.status, body=body, headers=kept)
        except TimeoutError:
            queued = f", after {waited:.1f} s waiting for a connection" if waited >= 0.1 else ""
            raise Refusal(
                504,
                f"VTEX did not answer within {settings.vtex_timeout:g} s (VTEX_TIMEOUT{queued})",
            ) from None
        except aiohttp.ClientError as exc:
            # The exception's type only: its text may quote the request.
            raise Refusal(502, f"Could not read VTEX's answer ({type(exc).__name__})") from None


async def _whole(answer: aiohttp.ClientResponse) -> bytes:
    """The whole body; ``ClientPayloadError`` if the connection ends before it does."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in answer.content.iter_any():
        size += len(chunk)
        if size > MAX_ORDER_BYTES:
            raise _too_large()
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large() -> Refusal:
    return Refusal(502, f"VTEX's order is over {MAX_ORDER_BYTES:,} bytes, the most passed through")
