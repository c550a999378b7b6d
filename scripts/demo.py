"""The second half of `make run`: enqueue the seed examples and show what VTEX received.

Run by scripts/run-local.sh once Redis, the sandbox, the worker and Flower are starting.
The settings (REDIS_URL, VTEX_*) come from the environment that script sets.
"""

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from vtex_relay import enqueue_invoice, enqueue_tracking, enqueue_tracking_number
from vtex_relay.sandbox import RecordedRequest, SandboxControl

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
# A new order each run: the local Redis keeps its data (AOF) between runs, and vtex-relay
# would rightly refuse to POST a second invoice for an order it has delivered one for.
ORDER = f"{time.time_ns() // 1_000_000}-01"  # shaped like VTEX's ids: 1172452900788-01


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sandbox", required=True)
    parser.add_argument("--flower-port", type=int, default=5555)
    args = parser.parse_args()
    sandbox = SandboxControl(args.sandbox)
    sandbox.wait_for(lambda s: s.health(), timeout=30)

    jobs = [
        ("invoice", enqueue_invoice(ORDER, _example("invoice"))),
        ("tracking-number", enqueue_tracking_number(ORDER, "9999", _example("tracking-number"))),
        ("tracking", enqueue_tracking(ORDER, "9999", _example("tracking"))),
    ]
    print(f"\nEnqueued for order {ORDER}, all at once (the worker keeps them in order):")
    for kind, job_id in jobs:
        print(f"  {kind:<16} job {job_id}")
    try:
        sandbox.wait_for(lambda s: len(_writes(s)) >= len(jobs), timeout=60)
    except TimeoutError:
        print("  ... the worker did not deliver all three jobs within 60 s", file=sys.stderr)
        return 1

    print("\nWhat the VTEX sandbox received:")
    for request in _writes(sandbox):
        print(f"\n  {request.method} {request.path}  ->  {request.status}")
        print("  " + json.dumps(request.body, indent=2, ensure_ascii=False).replace("\n", "\n  "))
    order = sandbox.order(ORDER, account=_account())["order"]
    [package] = order["packageAttachment"]["packages"]
    print(
        f"\nGET order {ORDER}: status {order['status']}, invoice {package['invoiceNumber']} "
        f"({package['invoiceValue']} cents), tracking {package['trackingNumber']}, "
        f"{len(package['courierStatus']['data'])} tracking events"
    )
    print(f"Flower: http://127.0.0.1:{args.flower_port}")
    return 0


def _writes(sandbox: SandboxControl) -> list[RecordedRequest]:
    return [r for r in sandbox.requests(order_id=ORDER) if r.method != "GET"]


def _example(name: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads((EXAMPLES / f"{name}.json").read_text())
    return body


def _account() -> str:
    from config import get_settings

    return get_settings().vtex_account or ""


if __name__ == "__main__":
    sys.exit(main())
