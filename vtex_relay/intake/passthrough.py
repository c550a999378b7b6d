"""``GET /api/oms/pvt/orders/{orderId}``, passed through to VTEX with the account's credentials.

A client that reads the order back after its writes keeps working when its base URL is the
relay's. The call has the OMS client's protections: the order id is checked before it becomes
part of a URL, redirects are not followed (they would carry the credentials elsewhere), the
answer is bounded, and an error says what failed without the request (so without a header).
"""

import aiohttp
from aiohttp import web

from vtex_relay.errors import FieldError
from vtex_relay.identifiers import check_order_id
from vtex_relay.intake.answers import Refusal, invalid
from vtex_relay.intake.auth import KEY_HEADER, TOKEN_HEADER
from vtex_relay.settings import Settings

MAX_ORDER_BYTES = 16 * 1_048_576  # a large order's JSON is a few hundred KB
_KEPT_HEADERS = ("Content-Type", "Retry-After")


async def get_order(
    session: aiohttp.ClientSession, settings: Settings, account: str, raw_order_id: str
) -> web.Response:
    """VTEX's answer to GET order (status, body, content type, ``Retry-After``), or 502/504."""
    try:
        order_id = check_order_id(raw_order_id)
    except ValueError as exc:
        raise invalid([FieldError("orderId", str(exc))]) from None
    key, token = settings.credentials(account)
    url = f"{settings.base_url(account)}/api/oms/pvt/orders/{order_id}"
    headers = {
        "Accept": "application/json",
        "Content-Type": "application/json",
        KEY_HEADER: key,
        TOKEN_HEADER: token.get_secret_value(),
    }
    timeout = aiohttp.ClientTimeout(total=settings.vtex_timeout)
    try:
        async with session.get(
            url, headers=headers, allow_redirects=False, timeout=timeout
        ) as answer:
            body = await answer.content.read(MAX_ORDER_BYTES + 1)
            if len(body) > MAX_ORDER_BYTES:
                raise Refusal(502, f"VTEX's order is over {MAX_ORDER_BYTES:,} bytes")
            kept = {name: answer.headers[name] for name in _KEPT_HEADERS if name in answer.headers}
            return web.Response(status=answer.status, body=body, headers=kept)
    except TimeoutError:
        raise Refusal(504, f"VTEX did not answer within {settings.vtex_timeout:g} s") from None
    except aiohttp.ClientError as exc:
        # The exception's type only: its text may quote the request.
        raise Refusal(502, f"Could not reach VTEX ({type(exc).__name__})") from None
