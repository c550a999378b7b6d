"""VTEX's three writes, taken on VTEX's paths with VTEX's bodies, each one enqueue.

The job is built and validated by the producer API (``build_job``: account, path segments,
body, size) and its verdict read by ``accepted``, exactly as for the CLI, so every guarantee of
the Python API holds. VTEX's answer shape is kept: ``{"date", "orderId", "receipt"}``, where
the receipt is the relay's job id (also in ``X-Relay-Job-Id``). An identical request again is
answered the same way with the first job's id: an ERP that retries after its own time-out gets
its job, not a second one.
"""

from datetime import UTC, datetime

from aiohttp import web

from vtex_relay.errors import InvalidJob
from vtex_relay.intake.answers import Refusal, invalid, json_response
from vtex_relay.intake.body import check_json_type, parse, read_body
from vtex_relay.intake.coalescer import Coalescer
from vtex_relay.intake.paths import Route
from vtex_relay.models import Kind
from vtex_relay.producer import accepted, build_job
from vtex_relay.settings import Settings

JOB_ID_HEADER = "X-Relay-Job-Id"
KINDS: dict[str, Kind] = {
    "invoice": "invoice",
    "tracking-number": "tracking-number",
    "tracking": "tracking",
}


async def write(
    request: web.BaseRequest, route: Route, account: str, settings: Settings, queue: Coalescer
) -> web.Response:
    """Enqueue the write *route* names; the caller has authenticated *account*."""
    check_json_type(request)
    raw = await read_body(request, settings.input_limit(), settings.intake_read_timeout)
    body = parse(raw)
    kind = KINDS[route.name]
    try:
        job = build_job(
            kind,
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
        raise invalid(exc.errors) from None
    result = accepted(job, await queue.enqueue(job))
    answer = {
        "date": datetime.now(UTC).isoformat(),
        "orderId": job.order_id,
        "receipt": result.job_id,
    }
    return json_response(answer, headers={JOB_ID_HEADER: result.job_id})
