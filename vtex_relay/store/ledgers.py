"""An order's invoice ledger, read by a try's order-total check: the invoices the relay has
delivered (``delivered_invoices``), which VTEX's GET order may not show yet
(``vtex_relay.deliver.totals``). The enqueue script alone writes the ledger and decides by it
(``lua/enqueue.lua``)."""

import redis

from vtex_relay.store.keys import OrderRef, text


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
        job_id, _digest, flow, value = [*text(entry).split(" "), "", "", ""][:4]
        if job_id != but and flow in ("Output", "Input") and value.isdigit():
            entries.append((text(number), job_id, flow, int(value)))
    if not entries:
        return {}
    pipe = client.pipeline(transaction=False)
    for _number, job_id, _flow, _value in entries:
        pipe.hget(ref.job_key(job_id), "state")
    states = pipe.execute()
    return {
        number: (flow, value)
        for (number, _job, flow, value), state in zip(entries, states, strict=True)
        if text(state or b"done") == "done"
    }
