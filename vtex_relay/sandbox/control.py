"""``SandboxControl``: a small client of a running sandbox's control API, for tests and scripts."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One OMS request as the sandbox logged it.

    ``status`` is the status answered, or "dropped"/"stalled". ``body`` is the parsed JSON
    body, or the raw text when it was not JSON. Times are Unix seconds; ``applied_at`` is
    ``None`` when the request changed nothing. ``fault`` names the injected fault, if any.
    ``app_key`` is the ``X-VTEX-API-AppKey`` it carried (its token is never logged);
    ``cookie``, its ``Cookie`` header (none, from a client that keeps no cookie jar).
    """

    seq: int
    method: str
    path: str
    account: str
    order_id: str | None
    invoice_number: str | None
    body: Any
    status: int | str | None
    fault: str | None
    received_at: float
    applied_at: float | None
    app_key: str | None = None
    cookie: str | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RecordedRequest:
        """Build from an entry of ``GET /_sandbox/requests``."""
        return cls(
            seq=data["seq"],
            method=data["method"],
            path=data["path"],
            account=data["account"],
            order_id=data["orderId"],
            invoice_number=data["invoiceNumber"],
            body=data["body"],
            status=data["status"],
            fault=data["fault"],
            received_at=data["receivedAt"],
            applied_at=data["appliedAt"],
            app_key=data.get("appKey"),
            cookie=data.get("cookie"),
        )


class SandboxControl:
    """Client of ``{base_url}/_sandbox/...``; every method raises ``httpx.HTTPError`` on failure."""

    def __init__(self, base_url: str, *, timeout: float = 5.0) -> None:
        self._http = httpx.Client(base_url=base_url.rstrip("/") + "/_sandbox", timeout=timeout)

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._http.close()

    def __enter__(self) -> SandboxControl:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._http.request(method, path, **kwargs)
        response.raise_for_status()
        return response.json()

    def health(self) -> dict[str, Any]:
        """``{"status": "ok", "orders": n, "lastSeq": n}``."""
        result: dict[str, Any] = self._call("GET", "/health")
        return result

    def requests(
        self,
        *,
        order_id: str | None = None,
        method: str | None = None,
        account: str | None = None,
        invoice_number: str | None = None,
        since: int = 0,
    ) -> list[RecordedRequest]:
        """Logged OMS requests with ``seq > since`` matching every given filter, oldest first."""
        params = {
            "orderId": order_id,
            "method": method,
            "account": account,
            "invoiceNumber": invoice_number,
        }
        query = {k: v for k, v in params.items() if v is not None} | {"since": str(since)}
        data = self._call("GET", "/requests", params=query)
        return [RecordedRequest.from_json(entry) for entry in data["requests"]]

    def clear_requests(self) -> None:
        """Empty the request log and its counters (orders and faults are kept)."""
        self._call("DELETE", "/requests")

    def reset(self) -> None:
        """Back to start-up state: no orders, empty log, start-up faults, RNG re-seeded."""
        self._call("POST", "/reset")

    def faults(self) -> dict[str, Any]:
        """The current fault settings."""
        result: dict[str, Any] = self._call("GET", "/faults")
        return result

    def set_faults(self, **fields: Any) -> dict[str, Any]:
        """Change the given fault settings (e.g. ``rate_429=1.0``); returns all settings."""
        result: dict[str, Any] = self._call("PUT", "/faults", json=fields)
        return result

    def seed_order(
        self,
        order_id: str,
        *,
        value: Any,
        account: str | None = None,
        status: str = "handling",
        items: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """Create or replace an order; returns it as ``order()`` does. *value* is VTEX's
        integer of cents, or any JSON value to stand for a total that cannot be read."""
        body = {
            "orderId": order_id,
            "account": account or "",
            "value": value,
            "status": status,
            "items": items or [],
        }
        result: dict[str, Any] = self._call("POST", "/orders", json=body)
        return result

    def order(self, order_id: str, account: str | None = None) -> dict[str, Any]:
        """``{"account", "order": <GET order JSON>, "writes": {...}, "invoicePosts": {...}}``.

        Raises ``httpx.HTTPStatusError`` (404) for an order never used or seeded.
        """
        params = {"account": account or ""}
        result: dict[str, Any] = self._call("GET", f"/orders/{order_id}", params=params)
        return result

    def stats(self) -> dict[str, Any]:
        """Counters per method and status, and OMS requests per wall-clock second."""
        result: dict[str, Any] = self._call("GET", "/stats")
        return result

    def wait_for(
        self,
        predicate: Callable[[SandboxControl], T | None],
        timeout: float = 5.0,
        interval: float = 0.02,
    ) -> T:
        """Call ``predicate(self)`` until it returns something truthy; return that.

        Raises ``TimeoutError`` after ``timeout`` seconds. Connection errors count as "not
        yet", so this also waits for a sandbox that is still starting.
        """
        deadline = time.monotonic() + timeout
        while True:
            try:
                result = predicate(self)
            except httpx.TransportError:
                result = None
            if result:
                return result
            if time.monotonic() >= deadline:
                raise TimeoutError(f"condition not met within {timeout} s")
            time.sleep(interval)
