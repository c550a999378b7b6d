"""The relay's own endpoints, under ``/relay/`` (no VTEX path starts so).

``POST /relay/batch`` takes JSON lines in the format of ``vtex-relay enqueue batch``, with its
all-or-nothing rule: every line is validated, and checked against Redis for conflicting
invoices and unknown updates, before any is enqueued. A line without ``account`` is for the
request's account; a line naming another account is refused (a key pair authorises one
account). ``GET /relay/orders/{orderId}`` is the ``vtex-relay order --json`` view and
``GET /relay/jobs/{jobId}`` a job's (a live job is found through its order: ``?orderId=``).
The Redis calls run in a thread, off the event loop.
"""

import asyncio
import io
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from pydantic_core import to_json

from vtex_relay.errors import FieldError, Refusal, UnknownJob, UnknownOrder
from vtex_relay.identifiers import check_order_id
from vtex_relay.intake.answers import invalid
from vtex_relay.jobs import Job
from vtex_relay.models import parse_json
from vtex_relay.ops import dead_letters
from vtex_relay.ops.views import job_json, order_json
from vtex_relay.produce.api import RERUN_IS_SAFE, refused_by_redis
from vtex_relay.produce.batch import MAX_REPORTED, REFUSED, summary
from vtex_relay.produce.batch import run as run_batch
from vtex_relay.settings import Settings
from vtex_relay.store import connections
from vtex_relay.store.keys import OrderRef

T = TypeVar("T")


class Reads:
    """Runs the relay endpoints' synchronous Redis work in a thread of their own."""

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="relay")

    async def run(self, call: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, call, *args)

    def close(self) -> None:
        self._executor.shutdown(wait=True)


def batch(raw: bytes, account: str, settings: Settings) -> list[dict[str, Any]]:
    """Enqueue every line of *raw*, or none: ``Refusal`` naming each bad line, 400 (403 if
    the only bad lines are for another account, 409 if every line is valid but some are
    refused because of the jobs the relay has: a conflicting invoice, an unknown one, no
    tracking number yet; 409 also for a race with another producer; 503 if Redis went away
    part-way)."""
    elsewhere = 0

    def own(job: Job) -> str | None:
        nonlocal elsewhere
        if job.account == account:
            return None
        elsewhere += 1
        return f"is {job.account}, not the request's account {account}"

    lines = _lines(raw, account, settings.vtex_account)
    done = run_batch(lines, io.StringIO(), keep_jobs=True, allow=own)
    if done.bad:
        # done.lines counts the lines that were valid and for this account (blank ones aside).
        given = sum(1 for line in raw.split(b"\n") if line.strip())
        if done.lines == given:
            raise invalid(done.errors, done.hidden, status=409, reason="Conflict")
        if done.lines + elsewhere == given:
            raise invalid(done.errors, done.hidden, status=403, reason="Forbidden")
        raise invalid(done.errors, done.hidden)
    jobs = done.jobs or []
    summaries = [summary(job, result) for job, result in zip(jobs, done.results, strict=True)]
    failed = done.left_out("failed")
    if failed:
        went = len(done.left_out("enqueued", "duplicate"))
        trouble = refused_by_redis(failed[0][1].state or "")
        raise Refusal(503, f"{trouble}: {went} job(s) went in. {RERUN_IS_SAFE}")
    refused = [s for s in summaries if s["status"] in REFUSED]
    if refused:
        # Only a producer racing this batch can cause this: the checks above saw nothing wrong.
        raise Refusal(
            409,
            f"{len(refused)} job(s) were refused because of another producer's jobs (all "
            "others were enqueued): "
            + "; ".join(f"{s['orderId']} {s['status']}" for s in refused[:MAX_REPORTED]),
        )
    return summaries


def _lines(raw: bytes, account: str, default: str | None) -> Iterator[bytes | str]:
    """The batch's lines; when the request's account is not the default one, each line
    without ``account`` (or with ``null``) gets the request's (a line that does not parse is
    left as it is, for the batch to report)."""
    for line in raw.split(b"\n"):
        if account == default or not line.strip():
            yield line
            continue
        try:
            data = parse_json(line)
        except ValueError:
            yield line
            continue
        if isinstance(data, dict) and data.get("account") is None:
            data["account"] = account
            yield to_json(data)
        else:
            yield line


def order_view(account: str, raw_order_id: str) -> dict[str, Any]:
    """``vtex-relay order --json``; ``Refusal`` 404 for an order the relay never had."""
    ref = OrderRef(account, _order_id(raw_order_id))
    try:
        return order_json(ref, dead_letters.order_status(connections.redis_client(), ref))
    except UnknownOrder as exc:
        raise Refusal(404, str(exc)) from None


def job_view(account: str, job_id: str, raw_order_id: str | None) -> dict[str, Any]:
    """A job of *account*: found through its order, or else among dead and discarded jobs."""
    client = connections.redis_client()
    if raw_order_id is not None:
        ref = OrderRef(account, _order_id(raw_order_id))
        try:
            status = dead_letters.order_status(client, ref)
        except UnknownOrder as exc:
            raise Refusal(404, str(exc)) from None
        for job in status.jobs:
            if job.job_id == job_id:
                return job_json(job, attempts=True)
    else:
        try:
            record = dead_letters.show(client, job_id)
        except UnknownJob:
            pass
        else:
            if record.account == account:  # another account's job is not found here
                return job_json(record, body=True, attempts=True)
    raise Refusal(
        404,
        f"No job {job_id[:64]} of account {account} found; a live job is found through its "
        "order: /relay/jobs/{jobId}?orderId=ORDER_ID or /relay/orders/{orderId}",
    )


def _order_id(raw: str) -> str:
    try:
        return check_order_id(raw)
    except ValueError as exc:
        raise invalid([FieldError("orderId", str(exc))]) from None
