"""VTEX's three writes, taken on VTEX's paths with VTEX's bodies, each one enqueue.

The job is built and validated by the producer API (``build_job``: account, path segments,
body, size) and its verdict read by ``accepted``, exactly as for the CLI, so every guarantee of
the Python API holds. VTEX's answer shape is kept: ``{"date", "orderId", "receipt"}``, where
the receipt is the relay's job id (also in ``X-Relay-Job-Id``). An identical request again is
answered the same way with the first job's id: an ERP that retries after its own time-out gets
its job, not a second one. An update of an invoice the order lacks is 404, as VTEX answers it;
a tracking update before the invoice's tracking number, 409 (``UPDATE_REFUSALS``).

A large body is parsed and validated in another process (``checker``): pydantic's validator
holds the interpreter's lock for the whole of a call, so in a thread a body of thousands of
bad items would still stop the event loop, and every other request with it, for a second.
"""

import asyncio
import multiprocessing
import signal
from concurrent.futures import Executor, ProcessPoolExecutor
from datetime import UTC, datetime

from aiohttp import web

from vtex_relay.errors import FieldError, InvalidJob, Refusal
from vtex_relay.intake.answers import invalid, json_response
from vtex_relay.intake.body import Held, check_json_type, parse, read_body
from vtex_relay.intake.coalescer import Coalescer
from vtex_relay.intake.routes import Route
from vtex_relay.jobs import Job
from vtex_relay.produce.api import accepted, build_job, update_refusal
from vtex_relay.settings import Settings

JOB_ID_HEADER = "X-Relay-Job-Id"
UPDATE_REFUSALS = {"unknown-invoice": (404, "Not found"), "untracked": (409, "Conflict")}
ELSEWHERE_BYTES = 65_536  # a body larger than this is checked in the checker process


async def write(
    request: web.BaseRequest,
    route: Route,
    account: str,
    settings: Settings,
    queue: Coalescer,
    held: Held,
    checker: Executor,
) -> web.Response:
    """Enqueue the write *route* names; the caller has authenticated *account*."""
    check_json_type(request)
    raw = await read_body(request, settings.input_limit(), settings.intake_read_timeout, held)
    if len(raw) > ELSEWHERE_BYTES:
        loop = asyncio.get_running_loop()
        job = await loop.run_in_executor(checker, _job, raw, route, account)
    else:
        job = _job(raw, route, account)
    result = await queue.enqueue(job)
    if result.verdict in UPDATE_REFUSALS:
        # VTEX's answer to an update of an invoice the order lacks is 404; one before the
        # invoice's tracking number conflicts with the invoice's state: 409. Either way the
        # request was well formed (a 400 would tell the client to change it).
        status, reason = UPDATE_REFUSALS[result.verdict]
        error = FieldError("invoiceNumber", update_refusal(job, result))
        raise invalid([error], status=status, reason=reason)
    result = accepted(job, result)
    answer = {
        "date": datetime.now(UTC).isoformat(),
        "orderId": job.order_id,
        "receipt": result.job_id,
    }
    return json_response(answer, headers={JOB_ID_HEADER: result.job_id})


def checker() -> Executor:
    """The processes that check large bodies: started on first use, and deaf to Ctrl-C (the
    intake stops them)."""
    return ProcessPoolExecutor(
        max_workers=2, mp_context=multiprocessing.get_context("spawn"), initializer=_deaf
    )


def _deaf() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _job(raw: bytes, route: Route, account: str) -> Job:
    """The job a write's body makes; ``Refusal`` 400 (or 413) saying what is wrong with it."""
    body = parse(raw)
    try:
        job = build_job(
            route.name,
            route.params["orderId"],
            body,
            invoice_number=route.params.get("invoiceNumber"),
            account=account,
        )
    except InvalidJob as exc:
        # The body's own size limit (MAX_BODY_BYTES, on its compact JSON) is a 413 like the
        # size of the request; any other bad field, a 400 naming them all.
        if any(e.location == "body" and "MAX_BODY_BYTES" in e.message for e in exc.errors):
            raise Refusal(413, f"{exc}; nothing was enqueued", fields=exc.errors) from None
        raise invalid(exc.errors, exc.not_listed) from None
    return job
