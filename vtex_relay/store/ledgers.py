"""The orders' invoice ledgers, read: ahead of a batch's checks, and by a try's order-total
check. Read-only, pipelined.

The enqueue script decides (``lua/enqueue.lua``); a batch reads the same keys first so that it
can refuse a bad line before anything is enqueued (``vtex_relay.produce.batch``). A job that an
operator discarded counts as none, as in the script. A try checking an invoice against the
order's total counts the invoices the relay has delivered (``delivered_invoices``), which
VTEX's GET order may not show yet (``vtex_relay.deliver.totals``).
"""

from collections.abc import Sequence

import redis

from vtex_relay.store.keys import OrderRef, text

# (job_id, digest, state) of the invoice job holding an order's Output invoice or a number.
Holder = tuple[str, str, str]


def output_invoices(
    client: "redis.Redis", refs: Sequence[OrderRef]
) -> list[tuple[str, str, str, str] | None]:
    """For each order, the job holding its (single-policy) Output invoice as (job_id, digest,
    invoice number, state), or None."""
    pipe = client.pipeline(transaction=False)
    for ref in refs:
        pipe.hmget(ref.key("order"), ["invoice_job", "invoice_digest", "invoice_number"])
    rows = [[text(v) if v is not None else "" for v in row] for row in pipe.execute()]
    holders = _alive(client, refs, [(j, d) if j else None for j, d, _number in rows])
    found: list[tuple[str, str, str, str] | None] = []
    for holder, (_job, _digest, number) in zip(holders, rows, strict=True):
        found.append(None if holder is None else (holder[0], holder[1], number, holder[2]))
    return found


def number_holders(
    client: "redis.Redis", pairs: Sequence[tuple[OrderRef, str]]
) -> list[Holder | None]:
    """For each (order, invoice number), the job holding the number, or None."""
    pipe = client.pipeline(transaction=False)
    for ref, number in pairs:
        pipe.hget(ref.key("invoices"), number)
    rows: list[tuple[str, str] | None] = []
    for entry in pipe.execute():  # "job_id digest type value"
        parts = text(entry).split(" ") if entry is not None else None
        rows.append((parts[0], parts[1] if len(parts) > 1 else "") if parts else None)
    return _alive(client, [ref for ref, _ in pairs], rows)


def known_invoices(
    client: "redis.Redis", refs: Sequence[OrderRef]
) -> list[tuple[set[str], set[str]]]:
    """For each order, the invoice numbers enqueued and those given a tracking number."""
    pipe = client.pipeline(transaction=False)
    for ref in refs:
        pipe.hkeys(ref.key("invoices"))
        pipe.smembers(ref.key("tracked"))
    replies = pipe.execute()
    return [
        ({text(n) for n in replies[2 * i]}, {text(n) for n in replies[2 * i + 1]})
        for i in range(len(refs))
    ]


def _alive(
    client: "redis.Redis", refs: Sequence[OrderRef], rows: Sequence[tuple[str, str] | None]
) -> list[Holder | None]:
    """Each (job_id, digest) with its job's state (``done`` once its record expired); None
    for no job or a discarded one. One round trip, for the rows that name a job."""
    pipe = client.pipeline(transaction=False)
    for ref, row in zip(refs, rows, strict=True):
        if row is not None:
            pipe.hget(ref.job_key(row[0]), "state")
    states = iter(pipe.execute())
    found: list[Holder | None] = []
    for row in rows:
        state = text(next(states) or b"done") if row is not None else "discarded"
        found.append(None if row is None or state == "discarded" else (*row, state))
    return found


def delivered_invoices(
    client: "redis.Redis", ref: OrderRef, but: str
) -> dict[str, tuple[str, int]]:
    """The order's invoices that the relay has delivered, but job *but*'s: invoice number ->
    (type, value in cents). A job done or gone (its record expired after delivery) counts; one
    waiting, dead or discarded does not. One round trip, two when the order has other
    invoices; made only for an invoice whose total is checked."""
    ledger = client.hgetall(ref.key("invoices"))
    entries = []
    for number, entry in ledger.items():
        job_id, _digest, kind, value = [*text(entry).split(" "), "", "", ""][:4]
        if job_id != but and kind in ("Output", "Input") and value.isdigit():
            entries.append((text(number), job_id, kind, int(value)))
    if not entries:
        return {}
    pipe = client.pipeline(transaction=False)
    for _number, job_id, _kind, _value in entries:
        pipe.hget(ref.job_key(job_id), "state")
    states = pipe.execute()
    return {
        number: (kind, value)
        for (number, _job, kind, value), state in zip(entries, states, strict=True)
        if text(state or b"done") == "done"
    }
