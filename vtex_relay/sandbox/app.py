"""The aiohttp application: the four OMS routes, the request log and the control API.

Order of checks for an OMS request: record it in the log, wait ``latency_ms`` (or the
account's ``account_latency_ms``), check the
credentials (401), then the random fault (429 / 503 / time-out 504), then the body
(400), then ``fail_orders``, then apply; apply-then-drop and apply-then-stall act after
applying. Control routes (``/_sandbox/...``) have no auth, no faults and are not logged.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ValidationError

from vtex_relay.credentials import KEY_HEADER
from vtex_relay.operations import OPERATIONS, ORDER_PATH, Operation
from vtex_relay.sandbox.auth import authorised
from vtex_relay.sandbox.faults import Decision, Fault, Faults, decide
from vtex_relay.sandbox.requests import RequestLog
from vtex_relay.sandbox.schemas import BodyError, BodyValidator
from vtex_relay.sandbox.state import OmsRefusal, Order, Orders

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# VTEX's three writes (``operations.OPERATIONS``), then GET order.
ROUTES: tuple[tuple[str, str, Operation | None], ...] = (
    *((op.method, op.path, op) for op in OPERATIONS.values()),
    ("GET", ORDER_PATH, None),
)


@dataclass(frozen=True)
class SandboxConfig:
    """Start-up settings; ``POST /_sandbox/reset`` returns the sandbox to them.

    With ``app_key``/``app_token`` unset any non-empty pair is accepted. ``credentials``
    (account -> (app key, app token)): those accounts accept only their own pair (``auth``).
    ``strict_schema``
    drops the relaxations VTEX's own guide needs (see ``schemas``). ``seed`` seeds the
    fault RNG (``None``: a random seed).
    """

    order_total: int = 10_000
    app_key: str | None = None
    app_token: str | None = field(default=None, repr=False)
    credentials: Mapping[str, tuple[str, str]] = field(default_factory=dict, repr=False)
    faults: Faults = field(default_factory=Faults)
    seed: int | None = None
    log_limit: int = 1_000_000
    strict_schema: bool = False


class _Seed(BaseModel):
    orderId: str  # the JSON field name
    account: str = ""
    value: Any = None
    status: str = "handling"
    items: list[dict[str, Any]] = []


class _Sandbox:
    """Everything one running sandbox holds."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.validator = BodyValidator(strict=config.strict_schema)
        self.orders = Orders(config.order_total)
        self.log = RequestLog(config.log_limit)
        self.faults = config.faults
        self.rng = random.Random(config.seed)

    def reset(self) -> None:
        self.orders.clear()
        self.log.clear()
        self.faults = self.config.faults
        self.rng.seed(self.config.seed)


SANDBOX = web.AppKey("sandbox", _Sandbox)


def _error(status: int, message: str, **headers: str) -> web.Response:
    body = {"error": {"code": "1", "message": message, "exception": None}}
    return web.json_response(body, status=status, headers=headers or None)


def _oms_handler(op: Operation | None) -> Handler:
    """The handler of one OMS route; *op* is the write (``None``: GET order)."""

    async def handle(request: web.Request) -> web.StreamResponse:
        sb = request.app[SANDBOX]
        match = request.match_info
        account, order_id = match.get("account", ""), match["orderId"]
        invoice_number = match.get("invoiceNumber")
        raw = await request.read() if op else b""
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        if op is not None and op.posts_invoice and isinstance(body, dict):
            # A POST names its invoice in the body; log it so the log can be filtered by it.
            number = body.get("invoiceNumber")
            invoice_number = number if isinstance(number, str) else None
        path = request.path[len(account) + 1 :] if account else request.path
        entry = sb.log.record(request.method, path, account, order_id, invoice_number, body)
        entry["appKey"] = request.headers.get(KEY_HEADER)  # the key only: never the token
        entry["cookie"] = request.headers.get("Cookie")  # a client must send none (set_cookies)
        decision = decide(sb.faults, sb.rng, order_id, write=op is not None)
        entry["fault"] = decision.fault.value
        latency = sb.faults.account_latency_ms.get(account, sb.faults.latency_ms)
        if latency:
            await asyncio.sleep(latency / 1000)
        response = _refusal(request, sb, op, body, decision)
        if response is None and decision.fault is Fault.TIMEOUT:
            sb.log.finish(entry, "stalled")
            await asyncio.sleep(sb.faults.stall_seconds)
            return _error(504, "Gateway Timeout")
        if response is None:
            try:
                result = _apply(sb, op, sb.orders.get(account, order_id), match, body)
            except OmsRefusal as exc:
                response = _error(exc.status, exc.message)
        if response is not None:
            sb.log.finish(entry, response.status)
            return response
        if op is not None:
            entry["appliedAt"] = time.time()
        if decision.fault is Fault.APPLY_DROP:
            if order_id in sb.faults.drop_writes:  # once per order
                rest = [o for o in sb.faults.drop_writes if o != order_id]
                sb.faults = sb.faults.model_copy(update={"drop_writes": rest})
            sb.log.finish(entry, "dropped")
            # Close the socket unanswered; aiohttp then skips writing the returned response.
            if request.transport is not None:
                request.transport.close()
            return web.Response()
        if decision.fault is Fault.APPLY_STALL:
            sb.log.finish(entry, "stalled")
            await asyncio.sleep(sb.faults.stall_seconds)
        else:
            sb.log.finish(entry, 200)
        if op is None and sb.faults.order_writes > 1:
            return await _in_pieces(request, sb.faults, result)
        return web.json_response(result)

    return handle


async def _in_pieces(request: web.Request, faults: Faults, result: Any) -> web.StreamResponse:
    """*result* as JSON in ``order_writes`` writes, ``order_write_gap_ms`` apart: a client
    that reads what has arrived rather than the whole body gets a part of it."""
    body = json.dumps(result).encode()
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    response.content_length = len(body)
    await response.prepare(request)
    size = -(-len(body) // faults.order_writes)
    for start in range(0, len(body), size):
        if start:
            await asyncio.sleep(faults.order_write_gap_ms / 1000)
        await response.write(body[start : start + size])
    await response.write_eof()
    return response


async def _set_cookie(request: web.BaseRequest, response: web.StreamResponse) -> None:
    """``set_cookies``: every OMS answer sets a cookie naming its account, as a load
    balancer's session cookie would; a client that keeps a jar sends it on the next call."""
    sb = request.app[SANDBOX] if isinstance(request, web.Request) else None
    if sb is None or not sb.faults.set_cookies or request.path.startswith("/_sandbox/"):
        return
    account = request.match_info.get("account", "") if isinstance(request, web.Request) else ""
    response.headers.add("Set-Cookie", f"vtex_session={account or 'none'}; Path=/")


def _refusal(
    request: web.Request, sb: _Sandbox, op: Operation | None, body: Any, decision: Decision
) -> web.Response | None:
    """The error answer to an OMS request that must not be applied, if it is one."""
    config = sb.config
    account = request.match_info.get("account", "")
    if not authorised(
        request.headers,
        account,
        app_key=config.app_key,
        app_token=config.app_token,
        credentials=config.credentials,
    ):
        return _error(401, "Unauthorized: X-VTEX-API-AppKey and X-VTEX-API-AppToken required")
    if decision.fault is Fault.THROTTLE:
        return _error(429, "Too Many Requests", **_retry_after(sb))
    if decision.fault is Fault.UNAVAILABLE:
        return _error(503, "Service Unavailable")
    if decision.fault is Fault.TIMEOUT or op is None:
        return None
    if request.content_type != "application/json":
        return _error(400, f"Content-Type must be application/json, not {request.content_type}")
    if not isinstance(body, dict):
        return _error(400, "Invalid request body: body must be a JSON object")
    try:
        sb.validator.check(op.schema, body)
    except BodyError as exc:
        return _error(400, f"Invalid request body: {exc}")
    if decision.fail_status is not None:
        message = f"Order {request.match_info['orderId']} refused by the sandbox (fail_orders)"
        headers = _retry_after(sb) if decision.fail_status == 429 else {}
        return _error(decision.fail_status, message, **headers)
    return None


def _retry_after(sb: _Sandbox) -> dict[str, str]:
    """A 429's Retry-After header, unless the faults say to leave it out (as VTEX may)."""
    seconds = sb.faults.retry_after
    return {} if seconds is None else {"Retry-After": str(seconds)}


def _apply(
    sb: _Sandbox, op: Operation | None, order: Order | None, match: Mapping[str, str], body: Any
) -> dict[str, Any]:
    """Apply a checked OMS request; returns the JSON to answer. Raises ``OmsRefusal``."""
    assert order is not None  # Orders.get creates by default
    if op is None:
        return order.to_vtex(hide_newer_than=sb.faults.invoice_lag_seconds)
    if op.posts_invoice:
        return sb.orders.post_invoice(order, body)
    return sb.orders.update(op.schema, order, match["invoiceNumber"], body)


async def _unknown(request: web.Request) -> web.StreamResponse:
    if request.path.startswith("/_sandbox/"):
        return _error(404, f"no control route {request.method} {request.path}")
    sb = request.app[SANDBOX]
    body = (await request.read()).decode("utf-8", "replace") or None
    entry = sb.log.record(request.method, request.path, "", None, None, body)
    entry["appKey"] = request.headers.get(KEY_HEADER)
    sb.log.finish(entry, 404)
    return _error(404, f"No route for {request.method} {request.path}")


async def _health(request: web.Request) -> web.StreamResponse:
    sb = request.app[SANDBOX]
    return web.json_response({"status": "ok", "orders": len(sb.orders), "lastSeq": sb.log.last_seq})


async def _requests(request: web.Request) -> web.StreamResponse:
    sb = request.app[SANDBOX]
    query = request.query
    if request.method == "DELETE":
        cleared = len(sb.log.select())
        sb.log.clear()
        return web.json_response({"cleared": cleared})
    equal = {k: query[k] for k in ("orderId", "account", "invoiceNumber") if k in query}
    if "method" in query:
        equal["method"] = query["method"].upper()
    try:
        since = int(query.get("since", "0"))
    except ValueError:
        return _error(400, "since: must be an integer")
    entries = sb.log.select(since, **equal)
    return web.json_response({"requests": entries, "lastSeq": sb.log.last_seq})


async def _faults(request: web.Request) -> web.StreamResponse:
    sb = request.app[SANDBOX]
    if request.method == "PUT":
        try:
            changes = await request.json()
            sb.faults = Faults.model_validate({**sb.faults.model_dump(), **changes})
        except (ValueError, TypeError, ValidationError) as exc:
            return _error(400, f"invalid faults: {exc}")
    return web.json_response(sb.faults.model_dump())


async def _seed(request: web.Request) -> web.StreamResponse:
    sb = request.app[SANDBOX]
    try:
        seed = _Seed.model_validate(await request.json())
    except (ValueError, ValidationError) as exc:
        return _error(400, f"invalid order: {exc}")
    # Any JSON value may be given, to stand for a VTEX order whose total cannot be read.
    value = seed.value if "value" in seed.model_fields_set else sb.config.order_total
    order = sb.orders.seed(
        seed.account, seed.orderId, value=value, status=seed.status, items=seed.items
    )
    return web.json_response(order.to_control(), status=201)


async def _order(request: web.Request) -> web.StreamResponse:
    sb = request.app[SANDBOX]
    account = request.query.get("account", "")
    order = sb.orders.get(account, request.match_info["orderId"], create=False)
    if order is None:
        return _error(404, f"no order {request.match_info['orderId']!r} in account {account!r}")
    return web.json_response(order.to_control())


async def _stats(request: web.Request) -> web.StreamResponse:
    return web.json_response(request.app[SANDBOX].log.stats())


async def _reset(request: web.Request) -> web.StreamResponse:
    request.app[SANDBOX].reset()
    return web.json_response({"status": "reset"})


def build_app(config: SandboxConfig) -> web.Application:
    """The sandbox as an aiohttp application (fresh state per call)."""
    app = web.Application(client_max_size=16 * 1024 * 1024)
    app[SANDBOX] = _Sandbox(config)
    app.on_response_prepare.append(_set_cookie)
    add = app.router.add_route
    add("GET", "/_sandbox/health", _health)
    add("GET", "/_sandbox/requests", _requests)
    add("DELETE", "/_sandbox/requests", _requests)
    add("GET", "/_sandbox/faults", _faults)
    add("PUT", "/_sandbox/faults", _faults)
    add("POST", "/_sandbox/orders", _seed)
    add("GET", "/_sandbox/orders/{orderId}", _order)
    add("GET", "/_sandbox/stats", _stats)
    add("POST", "/_sandbox/reset", _reset)
    for prefix in ("", "/{account}"):
        for method, path, op in ROUTES:
            add(method, prefix + path, _oms_handler(op))
    add("*", "/{tail:.*}", _unknown)
    return app
