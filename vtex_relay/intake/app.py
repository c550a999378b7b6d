"""The server: one aiohttp low-level ``web.Server`` and one dispatcher, with its limits.

No ``web.Application`` and no router: every request goes to ``Intake.handle``, which routes
on the raw path (``routes``), finds the account, authenticates, then runs the route. Any error
becomes an answer in VTEX's error shape; nothing a client sends can end the process. Limits:
a request target or header line of at most ``INTAKE_MAX_HEADER_BYTES`` (aiohttp checks the
target, and a header's name and value each; ``check_header_lines`` the whole line), 128
headers, a body of ``input_limit()`` (4 times ``MAX_BODY_BYTES``, as the CLI reads) or
``INTAKE_BATCH_MAX_BYTES`` read within ``INTAKE_READ_TIMEOUT``, all bodies in flight holding
at most ``INTAKE_MAX_INFLIGHT_BYTES`` together, idle connections (and ones that send no whole
request) closed after ``INTAKE_KEEPALIVE_TIMEOUT``, and at most ``INTAKE_MAX_CONNECTIONS``
open connections (more are closed as they open).
"""

import asyncio
import logging
import time
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST
from redis.exceptions import RedisError

from vtex_relay.errors import (
    ConfigurationError,
    InvalidJob,
    InvoiceConflict,
    QueueUnavailable,
    Refusal,
)
from vtex_relay.intake import openapi, relay, routes
from vtex_relay.intake.answers import answer, invalid, json_response
from vtex_relay.intake.auth import authenticate
from vtex_relay.intake.body import Bodies, Held, parse, read_body
from vtex_relay.intake.coalescer import Coalescer
from vtex_relay.intake.hosts import account_of
from vtex_relay.intake.metrics import IntakeMetrics
from vtex_relay.intake.passthrough import Passthrough
from vtex_relay.intake.writes import checker, write
from vtex_relay.operations import OPERATIONS
from vtex_relay.redaction import Redactor
from vtex_relay.settings import Settings
from vtex_relay.store import connections

log = logging.getLogger("vtex_relay.intake")
BATCH_TYPES = ("application/x-ndjson", "application/jsonl", "application/json", "text/plain")


class Intake:
    """The dispatcher and what it holds: settings, the enqueue coalescer, the Redis-read
    threads, the processes that check large bodies, the bytes bodies hold, and the GET order
    passthrough. ``start`` and ``close`` on the event loop."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.queue = Coalescer()
        self.reads = relay.Reads()
        self.checker = checker()
        self.bodies = Bodies(settings.intake_max_inflight_bytes, settings.intake_retry_after)
        self.passthrough: Passthrough | None = None
        self.redact = Redactor(settings.tokens())
        self.metrics = IntakeMetrics(settings)

    async def start(self) -> None:
        self.passthrough = Passthrough(self.settings)

    async def close(self) -> None:
        if self.passthrough is not None:
            await self.passthrough.close()
        self.queue.close()
        self.reads.close()
        self.checker.shutdown(wait=True, cancel_futures=True)

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        started = time.perf_counter()
        named: list[str] = []  # the route's name, once it is known
        response = await self._answer(request, named)
        route = named[0] if named else "none"
        self.metrics.observe(route, response.status, time.perf_counter() - started)
        return response

    async def _answer(self, request: web.BaseRequest, named: list[str]) -> web.StreamResponse:
        held = self.bodies.hold()
        try:
            return await self._route(request, held, named)
        except Refusal as refusal:
            return answer(refusal)
        except InvalidJob as exc:
            return answer(invalid(exc.errors, exc.not_listed))
        except InvoiceConflict as exc:
            return answer(Refusal(409, f"{exc}; nothing was enqueued"))
        except (QueueUnavailable, RedisError) as exc:
            log.warning("Redis unavailable: %s", self.redact(str(exc)))
            return answer(self.unavailable())
        except ConfigurationError as exc:
            log.error("bad settings: %s", self.redact(str(exc)))
            return answer(Refusal(503, "The relay is misconfigured (see its log)"))
        except Exception:  # a bug must cost one request, not the process
            log.exception("request %s failed", request.method)
            return answer(Refusal(500, "Internal error of the relay (see its log)"))
        finally:
            held.release()

    def unavailable(self) -> Refusal:
        seconds = self.settings.intake_retry_after
        return Refusal(
            503,
            f"The relay's queue is unavailable; try again in {seconds} s (the same request "
            "again is safe: an identical job is answered with the first one's id)",
            headers={"Retry-After": str(seconds)},
        )

    async def _route(
        self, request: web.BaseRequest, held: Held, named: list[str]
    ) -> web.StreamResponse:
        check_header_lines(request, self.settings.intake_max_header_bytes)
        route = routes.route(request.method, request.raw_path)
        named.append(route.name)
        if route.name == "health":
            return json_response({"status": "ok"})  # liveness: the process answers
        if route.name == "ready":
            return await self._ready()
        if route.name == "metrics":
            text = await self.reads.run(self.metrics.scrape)
            return web.Response(body=text, headers={"Content-Type": CONTENT_TYPE_LATEST})
        if route.name == "openapi":
            return json_response(openapi.document())
        settings = self.settings
        an = request.query.getall("an", [])
        account = account_of(settings, route.path_account, an, request.headers.get("Host"))
        authenticate(settings, account, request.headers)
        if route.name in OPERATIONS:
            return await write(request, route, account, settings, self.queue, held, self.checker)
        if route.name == "get-order":
            assert self.passthrough is not None
            return await self.passthrough.get_order(account, route.params["orderId"])
        if route.name == "batch":
            return await self._batch(request, account, held)
        if route.name == "relay-order":
            view = await self.reads.run(relay.order_view, account, route.params["orderId"])
            return json_response(view)
        order_id = request.query.get("orderId")
        return json_response(
            await self.reads.run(relay.job_view, account, route.params["jobId"], order_id)
        )

    async def _batch(self, request: web.BaseRequest, account: str, held: Held) -> web.Response:
        if request.content_type not in BATCH_TYPES:
            shown = request.content_type[:100]
            raise Refusal(400, f"Content-Type must be application/x-ndjson, not {shown}")
        limit, timeout = self.settings.intake_batch_max_bytes, self.settings.intake_read_timeout
        raw = await read_body(request, limit, timeout, held)
        if request.content_type == "application/json" and raw.lstrip().startswith(b"["):
            # An array is not JSON lines: say so, not "line 1: ..." (parsed in a thread).
            await self.reads.run(parse, raw)
            raise Refusal(400, "A batch is JSON lines, one job object per line, not an array")
        jobs = await self.reads.run(relay.batch, raw, account, self.settings)
        return json_response({"jobs": jobs})

    async def _ready(self) -> web.Response:
        try:
            await self.reads.run(connections.redis_client().ping)
        except RedisError:
            return answer(self.unavailable())
        return json_response({"status": "ok"})


def check_header_lines(request: web.BaseRequest, limit: int) -> None:
    """``Refusal`` 431 for a header line (``name: value``) over *limit* bytes.

    aiohttp's parser bounds a header's name and its value each by ``max_field_size`` (so what
    it buffers is bounded), but not the two together: a line of up to twice the limit gets
    through. This makes the limit the one the setting names, a line.
    """
    for name, value in request.raw_headers:
        if len(name) + len(value) + 2 > limit:
            raise Refusal(
                431,
                f"A header line is over {limit:,} bytes (INTAKE_MAX_HEADER_BYTES); "
                "nothing was enqueued",
            )


class _BoundedServer(web.Server):
    """``web.Server`` that closes a connection opened beyond *max_connections*."""

    def __init__(self, *args: Any, max_connections: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._max_connections = max_connections

    def connection_made(self, handler: Any, transport: asyncio.Transport) -> None:
        super().connection_made(handler, transport)
        if len(self.connections) > self._max_connections:
            transport.close()


async def run(settings: Settings, host: str, port: int, stop: asyncio.Event) -> None:
    """Serve until *stop* is set; print ``intake listening on http://HOST:PORT`` once ready."""
    intake = Intake(settings)
    await intake.start()
    server = _BoundedServer(
        intake.handle,
        max_connections=settings.intake_max_connections,
        access_log=None,  # a line per request would cost more than the request
        keepalive_timeout=settings.intake_keepalive_timeout,
        max_line_size=settings.intake_max_header_bytes,
        max_field_size=settings.intake_max_header_bytes,
    )
    runner = web.ServerRunner(server, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, backlog=1024)
        await site.start()
        print(f"intake listening on http://{host}:{runner.addresses[0][1]}", flush=True)
        await stop.wait()
    finally:
        await runner.cleanup()
        await intake.close()
