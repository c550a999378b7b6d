"""What the intake's tests share: an intake process, an HTTP client with VTEX's headers, and
a look at Redis to check that a refusal enqueued nothing."""

import json
from typing import Any

import httpx
import redis

from tests.conftest import APP_KEY, APP_TOKEN
from tests.processes import ROOT
from vtex_relay.ops import dead_letters
from vtex_relay.store.keys import OrderRef

EXAMPLES = ROOT / "examples"
INVOICE: dict[str, Any] = json.loads((EXAMPLES / "invoice.json").read_text())
TRACKING_NUMBER: dict[str, Any] = json.loads((EXAMPLES / "tracking-number.json").read_text())
TRACKING: dict[str, Any] = json.loads((EXAMPLES / "tracking.json").read_text())
INTAKE_HOST = "relay.test"
CREDENTIALS = {"X-VTEX-API-AppKey": APP_KEY, "X-VTEX-API-AppToken": APP_TOKEN}
JSON = {"Content-Type": "application/json"}
ORDER = "/api/oms/pvt/orders"


def client(url: str, **headers: str) -> httpx.Client:
    """A keep-alive client of the intake sending the test account's credentials."""
    return httpx.Client(base_url=url, headers={**CREDENTIALS, **headers}, timeout=10)


def post_invoice(http: httpx.Client, order_id: str, body: Any, **kwargs: Any) -> httpx.Response:
    return http.post(f"{ORDER}/{order_id}/invoice", json=body, **kwargs)


def jobs_of(client: redis.Redis, account: str, order_id: str) -> list[str]:
    """The ids of the order's jobs, in enqueue order."""
    status = dead_letters.order_status(client, OrderRef(account, order_id))
    return [job.job_id for job in status.jobs]


def snapshot(client: redis.Redis) -> dict[bytes, Any]:
    """Every key and its content: equal before and after means nothing was written."""
    read: dict[Any, Any] = {
        b"string": client.get,
        b"hash": client.hgetall,
        b"list": lambda key: client.lrange(key, 0, -1),
        b"set": client.smembers,
        b"zset": lambda key: client.zrange(key, 0, -1, withscores=True),
    }
    kinds = {key: client.type(key) for key in client.scan_iter(count=1000)}
    return {key: read[kind](key) for key, kind in kinds.items()}


def vtex_error(response: httpx.Response, status: int) -> str:
    """The message of a VTEX-shaped error answer with *status*."""
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == "1"
    assert APP_TOKEN not in response.text
    message: str = error["message"]
    return message
