"""``GET /api/oms/pvt/orders/{orderId}``, passed through to VTEX with the account's credentials.

A client that reads the order back after its writes keeps working when its base URL is the
relay's. The call is made by the worker's own VTEX client (``OmsClient.fetch_order``), with its
protections: the order id is checked before it becomes part of a URL, redirects are not
followed (they would carry the credentials elsewhere), no cookie is kept (an answer for one
account must not add a header to another's call), and an error says what failed without the
request (so without a header).

VTEX's answer is read whole, up to ``MAX_ORDER_BYTES``, before anything is answered: a body
cut short (the connection closed early) is a 502, never a 200 with part of an order. Each
account has at most ``INTAKE_ACCOUNT_CONNECTIONS`` calls open at once, so one account whose
VTEX is slow cannot take the connections every other account's reads need; a call that waits
too long for one of its account's connections is a 504 that says so.
"""

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial

from aiohttp import web

from vtex_relay.deliver.oms import OmsClient
from vtex_relay.errors import FieldError, OmsError, Refusal
from vtex_relay.identifiers import check_order_id
from vtex_relay.intake.answers import invalid
from vtex_relay.settings import Settings

MAX_ORDER_BYTES = 16 * 1_048_576  # a large order's JSON is a few hundred KB
_KEPT_HEADERS = ("Content-Type", "Retry-After")


class Passthrough:
    """The GET order calls of one intake: the worker's VTEX client (``OmsClient``, which keeps
    no cookie), called from threads of its own, and each account's connection slots."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.client = OmsClient(settings)
        # At most 100 calls at once, each thread's over a connection of its own (OmsClient):
        # the per-account slots bound the calls of each account, and the intake's own
        # connection limit all of them.
        self._threads = ThreadPoolExecutor(max_workers=100, thread_name_prefix="get-order")
        self._slots: dict[str, asyncio.Semaphore] = {}

    async def close(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)
        self.client.close()

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
        timeout = self.settings.vtex_timeout
        fetch = partial(
            self.client.fetch_order,
            account,
            order_id,
            within=max(timeout - waited, 0.001),
            limit=MAX_ORDER_BYTES,
        )
        try:
            answer = await asyncio.get_running_loop().run_in_executor(self._threads, fetch)
        except TimeoutError:
            queued = f", after {waited:.1f} s waiting for a connection" if waited >= 0.1 else ""
            raise Refusal(
                504, f"VTEX did not answer within {timeout:g} s (VTEX_TIMEOUT{queued})"
            ) from None
        except OmsError as exc:
            raise Refusal(502, f"Could not read VTEX's answer: {exc}") from None
        kept = {n: answer.headers[n] for n in _KEPT_HEADERS if n in answer.headers}
        return web.Response(status=answer.status, body=answer.body, headers=kept)
