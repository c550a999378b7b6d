"""The last part of `make run`: one invoice POSTed with curl to the intake, as an ERP would
POST it to VTEX, and what the sandbox then received. The token is read from the environment
by curl's own header file, never printed."""

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import httpx

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")


def wait_for(ready: Callable[[], T | None], *, timeout: float, what: str) -> T:
    """*ready*'s first value that is not None (or falsy), polled until *timeout* seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if value := ready():
                return value
        time.sleep(0.2)  # polling a condition with a deadline
    raise SystemExit(f"timed out after {timeout:g} s waiting for {what}")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--intake", required=True)
    parser.add_argument("--sandbox", required=True)
    args = parser.parse_args()
    wait_for(lambda: _healthy(args.intake), timeout=60, what="the intake")
    order = f"{int(time.time() * 1000)}-02"
    url = f"{args.intake}/api/oms/pvt/orders/{order}/invoice"
    print(f"\n==> through the intake: curl -X POST {url} -H 'X-VTEX-API-AppKey: ...' ...")
    with tempfile.NamedTemporaryFile("w", suffix=".headers") as headers:
        headers.write(f"X-VTEX-API-AppKey: {os.environ['VTEX_APP_KEY']}\n")
        headers.write(f"X-VTEX-API-AppToken: {os.environ['VTEX_APP_TOKEN']}\n")
        headers.write("Content-Type: application/json\n")
        headers.flush()
        answer = subprocess.run(
            [
                "curl",
                "-sS",
                "-X",
                "POST",
                url,
                "-H",
                f"@{headers.name}",
                "--data-binary",
                f"@{ROOT / 'examples' / 'invoice.json'}",
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout
    print(f"    intake answered: {answer}")
    receipt = json.loads(answer)["receipt"]

    def received() -> list[dict[str, object]] | None:
        log = httpx.get(f"{args.sandbox}/_sandbox/requests", params={"orderId": order}).json()
        found: list[dict[str, object]] = log["requests"]
        return found if any(r["method"] == "POST" for r in found) else None

    for request in wait_for(received, timeout=60, what=f"VTEX to receive job {receipt}"):
        print(
            f"    the sandbox received: {request['method']} {request['path']} -> "
            f"{request['status']}"
        )
    return 0


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/relay/health").status_code == 200
    except httpx.TransportError:
        return False


if __name__ == "__main__":
    sys.exit(main())
