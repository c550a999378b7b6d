"""The HTTP client for the four VTEX OMS operations vtex-relay uses.

One ``OmsClient`` per process, shared by its threads: each thread calls through an
``httpx.Client`` of its own, which keeps its connection between calls (``clients.py``). Every call
either returns VTEX's answer or raises an ``OmsError`` saying whether trying again can help:

* 2xx -> success;
* 429, 408, 5xx, connection failures and time-outs -> ``RetryableError`` (``retry_after`` from
  ``Retry-After``; ``maybe_applied`` when the request may have reached VTEX);
* any other status -> ``PermanentError`` carrying VTEX's message (at most 500 characters).

Each call is made with its account's credentials (``Settings.credentials``), given as the
request's own headers: a thread's client serves every account, keeps no cookie, and a call is
never made with another account's key. No exception or log line this module produces contains
a header value, and raised errors carry no chained exception (the httpx exception holds the
request, and so the token). An account that is not configured raises ``UnknownAccount``
before anything is sent.
"""

import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from datetime import UTC
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, NamedTuple, Self

import httpx
from pydantic import ValidationError

from vtex_relay.credentials import KEY_HEADER, TOKEN_HEADER
from vtex_relay.deliver.clients import ThreadClients
from vtex_relay.errors import LeaseExpired, OmsError, PermanentError, RetryableError
from vtex_relay.identifiers import check_account, check_invoice_number, check_order_id
from vtex_relay.models import Receipt
from vtex_relay.operations import ORDER_PATH, Operation
from vtex_relay.settings import Settings

log = logging.getLogger(__name__)

MAX_MESSAGE = 500
# The request cannot have reached VTEX: no connection was made.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# Our own request could not be built or sent as such; repeating it will not help.
_BROKEN_REQUEST = (httpx.LocalProtocolError, httpx.UnsupportedProtocol)


class Fetched(NamedTuple):
    """VTEX's answer, as it came: its status, its whole body and its headers."""

    status: int
    body: bytes
    headers: httpx.Headers


class OmsClient:
    """Pooled client for VTEX OMS; safe to share between threads. Close it (or use ``with``)."""

    def __init__(self, settings: Settings, *, transport: httpx.BaseTransport | None = None) -> None:
        settings.require_credentials()  # every account's, read now: no surprise on a job
        self._settings = settings
        self._clients = ThreadClients(settings.vtex_timeout, transport)
        # This thread's client now: the first one made in a process pays httpx's imports (tens
        # of ms). Made at a job's first call, after its claim, it would make the first requests
        # late, and those of a rate-limited account would then arrive with the next ones.
        self._clients.get()

    # Every call takes *send_by*: a time.monotonic() after which its request must not leave
    # (None: no limit). It is checked as the last step before the request's headers, and again
    # before its body, are written to the socket; past it the call raises ``LeaseExpired`` and
    # nothing reaches VTEX.

    def write(
        self,
        op: Operation,
        account: str,
        order_id: str,
        invoice_number: str | None,
        body: Mapping[str, Any],
        *,
        send_by: float | None = None,
    ) -> Receipt:
        """Make the call *op* (``operations.OPERATIONS``) with *body*, for *order_id* (and the
        invoice *invoice_number* when the call updates one)."""
        if op.needs_invoice_number:
            invoice_number = self._check(check_invoice_number, "invoice number", invoice_number)
        url = self._url(account, op.url_path(self._order(order_id), invoice_number))
        response = self._send(op.method, account, url, body, send_by)
        try:
            return Receipt.model_validate(response.json())
        except (ValueError, ValidationError):
            return Receipt()  # applied all the same; the receipt is only informative

    def get_order(
        self, account: str, order_id: str, *, send_by: float | None = None
    ) -> dict[str, Any]:
        """GET the order as VTEX returns it. A 2xx that is not a JSON object is retryable."""
        url = self._url(account, ORDER_PATH.format(orderId=self._order(order_id)))
        response = self._send("GET", account, url, None, send_by)
        try:
            order = response.json()
        except ValueError:
            order = None
        if not isinstance(order, dict):
            # Never hand back {} for "unreadable": it would read as "no invoice yet".
            raise RetryableError("VTEX answered without a JSON order", status=response.status_code)
        return order

    def fetch_order(self, account: str, order_id: str, *, within: float, limit: int) -> Fetched:
        """GET order as VTEX answers it, whatever the status, for the intake to pass on. The
        body is read whole, up to *limit* bytes, within *within* seconds: ``TimeoutError``
        past them, ``PermanentError`` over *limit*, ``RetryableError`` if the connection
        fails or ends before the body does (a body cut short is never returned)."""
        url = self._url(account, ORDER_PATH.format(orderId=self._order(order_id)))
        key, secret = self._settings.credentials(account)
        token = secret.get_secret_value()
        deadline = time.monotonic() + within
        try:
            with self._clients.get().stream(
                "GET", url, headers={KEY_HEADER: key, TOKEN_HEADER: token}, timeout=within
            ) as response:
                if int(response.headers.get("Content-Length") or 0) > limit:
                    raise _too_large(limit)
                chunks, size = [], 0
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > limit:
                        raise _too_large(limit)
                    if time.monotonic() > deadline:
                        raise TimeoutError
                    chunks.append(chunk)
                return Fetched(response.status_code, b"".join(chunks), response.headers)
        except httpx.TimeoutException:
            error: Exception = TimeoutError()
        except httpx.HTTPError as exc:
            error = self._transport_error(exc, token)
        raise error from None  # outside the handler: no httpx exception (it holds the headers)

    def close(self) -> None:
        """Close every thread's connections."""
        self._clients.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _order(self, order_id: str) -> str:
        # Defence in depth: the producer checked it already, but it shapes the URL.
        return self._check(check_order_id, "order id", order_id)

    def _url(self, account: str, path: str) -> str:
        account = self._check(check_account, "account", account)
        return self._settings.base_url(account) + path

    @staticmethod
    def _check(check: Callable[[Any], str], what: str, value: str | None) -> str:
        try:
            return check(value)
        except (ValueError, TypeError) as exc:
            error = PermanentError(f"invalid {what}: {exc}")
        raise error from None

    def _send(
        self,
        method: str,
        account: str,
        url: str,
        body: Mapping[str, Any] | None,
        send_by: float | None,
    ) -> httpx.Response:
        """Make the request with *account*'s credentials and classify the outcome; return only
        a 2xx response. ``UnknownAccount`` (nothing sent) if *account* is not configured."""
        key, secret = self._settings.credentials(account)
        token = secret.get_secret_value()
        headers = {KEY_HEADER: key, TOKEN_HEADER: token}
        started = time.monotonic()
        error: OmsError
        extensions = {} if send_by is None else {"trace": _SendBy(send_by)}
        try:
            response = self._clients.get().request(
                method, url, json=body, headers=headers, extensions=extensions
            )
        except httpx.HTTPError as exc:
            error = self._transport_error(exc, token)
            log.debug("%s %s failed: %s", method, url, error)
        else:
            elapsed = time.monotonic() - started
            log.debug("%s %s -> %s in %.3fs", method, url, response.status_code, elapsed)
            if response.is_success:
                return response
            error = self._status_error(response, token)
        # Raised outside the except block so no httpx exception (holding the request and its
        # headers) is chained as __context__.
        raise error from None

    def _transport_error(self, exc: httpx.HTTPError, token: str) -> OmsError:
        what = f"{type(exc).__name__}: {_scrub(str(exc), token)}"[:MAX_MESSAGE]
        if isinstance(exc, _NOT_SENT):
            return RetryableError(f"could not reach VTEX ({what})", maybe_applied=False)
        if isinstance(exc, _BROKEN_REQUEST):
            return PermanentError(f"request could not be sent ({what})")
        return RetryableError(f"no answer from VTEX ({what})", maybe_applied=True)

    def _status_error(self, response: httpx.Response, token: str) -> OmsError:
        status = response.status_code
        # Scrubbed before it is cut, so no partial token survives at the cut.
        message = _vtex_message(_scrub(response.text, token), response.reason_phrase)
        if status == 429:
            retry_after = _retry_after(response.headers.get("Retry-After"))
            return RetryableError(message, status=status, retry_after=retry_after)
        if status == 408 or status >= 500:
            return RetryableError(message, status=status)
        return PermanentError(message, status=status)


def _too_large(limit: int) -> PermanentError:
    return PermanentError(f"VTEX's order is over {limit:,} bytes, the most passed through")


def _scrub(text: str, token: str) -> str:
    # Belt and braces: an echoed token must not reach an exception or a log.
    return text.replace(token, "[redacted]") if token else text


class _SendBy:
    """An httpcore trace hook that refuses to let a request's bytes leave after *deadline*.

    httpcore calls it as each step of a request starts; the steps that write to the socket are
    the last moment to check, so a worker frozen before them (a VM pause, swapping) sends
    nothing when it wakes too late. Raising here aborts the request, and httpcore closes the
    connection, since its state is unknown. Checked before the headers and again before the
    body: a request cut between them is incomplete and never applied.
    """

    __slots__ = ("deadline",)

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline

    def __call__(self, event: str, info: Mapping[str, Any]) -> None:
        if event.endswith(_WRITES) and time.monotonic() > self.deadline:
            raise LeaseExpired(
                f"the job's lease could run out before this call ends ({event.split('.')[0]}, "
                f"{time.monotonic() - self.deadline:.1f}s late): not sent"
            )


_WRITES = ("send_request_headers.started", "send_request_body.started")


def _vtex_message(text: str, reason: str) -> str:
    """VTEX's error text: a known JSON message field if any, else the raw body, bounded."""
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        error = data.get("error")
        candidates = [
            error.get("message") if isinstance(error, dict) else None,
            data.get("message"),
            data.get("Message"),
            error,
        ]
        text = next((c for c in candidates if isinstance(c, str) and c.strip()), text)
    return (text.strip() or reason or "no message")[:MAX_MESSAGE]


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` of delay-seconds or HTTP-date; None if unusable."""
    if value is None:
        return None
    value = value.strip()
    if re.fullmatch(r"[0-9]+(?:\.[0-9]+)?", value):
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # an HTTP-date is always GMT; "-0000" or no zone parses as naive
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - time.time())
