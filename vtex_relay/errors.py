"""The exceptions vtex-relay raises, grouped by what the caller should do about them.

Every one is a ``RelayError``; no exception text ever contains a credential::

    RelayError
    ├── ConfigurationError      a setting is missing or invalid (names the variable)
    ├── UnknownAccount          the account is not one of the configured accounts
    ├── InvalidJob              refused at enqueue, every bad field named; nothing enqueued
    ├── InvoiceConflict         the order has a different invoice; nothing enqueued
    ├── QueueUnavailable        Redis unreachable or refusing (out of memory); nothing enqueued
    ├── OmsError                a call to VTEX that did not succeed
    │   ├── RetryableError      may succeed later: 429, 408, 5xx, time-out, connection error
    │   └── PermanentError      will not: another 4xx; needs a person
    ├── LeaseExpired            a worker's lease ran out before its request left: not sent
    ├── JobDead                 a try ended its job dead (the Celery task's FAILURE)
    ├── UnknownJob              operators: no dead or discarded job has this id
    ├── JobNotDead              operators: the job is not dead, so it cannot be replayed
    ├── UnknownOrder            operators: no job was ever enqueued for this order
    └── Refusal                 the intake refused a request: an HTTP status and VTEX's error
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FieldError:
    """One bad field: where it is (e.g. ``body.items.0.price``) and what is wrong with it."""

    location: str
    message: str

    def __str__(self) -> str:
        return f"{self.location}: {self.message}"


class RelayError(Exception):
    """Base class of every error vtex-relay raises on purpose."""


class ConfigurationError(RelayError):
    """A setting is missing or invalid; the message names the environment variable."""


class UnknownAccount(RelayError):
    """*account* is not one of the configured accounts: when any account has its own
    credentials, the configured ones are the only ones (``Settings.knows``)."""

    def __init__(self, account: str) -> None:
        self.account = account
        super().__init__(f"account {account!r} is not configured")


# The most bad fields one error names; past it, how many more there were. A body of thousands
# of bad items must not make an error (and an answer, a log line) thousands of lines long.
MAX_FIELD_ERRORS = 100


class InvalidJob(RelayError):
    """A job was refused at enqueue time; ``errors`` names the bad fields (the first
    ``MAX_FIELD_ERRORS``), ``not_listed`` counts the others. Nothing was enqueued."""

    def __init__(self, errors: list[FieldError], not_listed: int = 0) -> None:
        self.errors = errors[:MAX_FIELD_ERRORS]
        self.not_listed = not_listed + len(errors) - len(self.errors)
        more = f"; and {self.not_listed:,} more bad field(s)" if self.not_listed else ""
        super().__init__("; ".join(str(e) for e in self.errors) + more)


class OmsError(RelayError):
    """A call to VTEX OMS that did not succeed.

    ``status`` is the HTTP status (``None`` when no response came back) and ``message`` is
    VTEX's own error text, bounded in length, or a description of the transport failure.
    """

    def __init__(self, message: str, *, status: int | None = None) -> None:
        self.status = status
        self.message = message
        super().__init__(f"HTTP {status}: {message}" if status is not None else message)


class RetryableError(OmsError):
    """The call may succeed if tried again later: 429, 408, 5xx, time-out, connection error.

    ``retry_after`` is the wait VTEX asked for (seconds, from ``Retry-After``), if any.
    ``maybe_applied`` is true when VTEX may have applied the call although no answer came back
    (a time-out or dropped connection after the request was sent).
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        maybe_applied: bool = False,
    ) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after
        self.maybe_applied = maybe_applied


class PermanentError(OmsError):
    """The call was refused and sending it again will not help (4xx other than 408 and 429)."""


class QueueUnavailable(RelayError):
    """Redis could not be reached, so the job was not enqueued. Retry when Redis is back."""


class InvoiceConflict(RelayError):
    """The order already has a different invoice job (queued, running, delivered or dead):
    under the same invoice number, or, under the ``single`` policy, any Output invoice.

    VTEX changes nothing of a posted invoice (a second POST of its number only renews the
    receipt), and under ``single`` the order is invoiced once. Nothing was enqueued.
    """

    def __init__(
        self,
        account: str,
        order_id: str,
        job_id: str,
        number: str,
        state: str,
        *,
        wanted: str | None = None,
    ) -> None:
        self.job_id = job_id
        self.invoice_number = number
        self.state = state
        order = f"order {account}/{order_id}"
        if wanted == number:
            text = (
                f"{order} already has a different invoice under number {number} (job {job_id}, "
                f"{state}); VTEX changes nothing of a posted invoice: give this one its own "
                "number"
            )
        else:
            text = (
                f"{order} already has invoice {number} (job {job_id}, {state}); VTEX keeps one "
                "invoice notification per order and a second POST would overwrite it. Send "
                "tracking data for it as a tracking-number job (PATCH), or set the account's "
                "invoicePolicy to partial for split shipments"
            )
        discard = (
            "; or discard the dead job first (vtex-relay dlq discard)" if state == "dead" else ""
        )
        super().__init__(text + discard)


class LeaseExpired(RelayError):
    """The job's lease ran out, or would before the call could end, and nothing was sent.

    Raised by the OMS client right before a request's bytes would leave: another worker may
    have taken the job over, and a send now could duplicate its call or overtake the order's
    next job. The try is given up; the job is recovered when its lease ends.
    """


class JobDead(RelayError):
    """A try ended its job dead (dead-lettered): raised by the task so that Celery, and so
    Flower, records the try as ``FAILURE`` with VTEX's message. Celery re-runs nothing."""


class UnknownJob(RelayError):
    """No dead or discarded job has this id (it may be live, done, or mistyped)."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        super().__init__(
            f"job {job_id} is not a dead or discarded job; a live or done job is listed by "
            "`vtex-relay order ORDER_ID`"
        )


class JobNotDead(RelayError):
    """An operator action needs a dead job and this one is in another ``state``."""

    def __init__(self, job_id: str, state: str, action: str) -> None:
        self.job_id = job_id
        self.state = state
        super().__init__(f"job {job_id} is {state}, not dead: only a dead job can be {action}ed")


class UnknownOrder(RelayError):
    """vtex-relay has never had a job for this order (wrong id or account?)."""

    def __init__(self, account: str, order_id: str) -> None:
        self.account = account
        self.order_id = order_id
        super().__init__(f"no job was ever enqueued for order {order_id} of account {account}")


class Refusal(RelayError):
    """The intake refused a request: its HTTP *status* and message, sent in VTEX's error shape
    (``intake.answers.answer``); nothing was enqueued.

    ``fields`` lists each bad field (``{"field", "message"}``) for a 400, so a client can
    show them all, not only the first; ``not_listed`` counts those beyond ``MAX_FIELD_ERRORS``.
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        fields: Sequence[FieldError] = (),
        headers: Mapping[str, str] | None = None,
        not_listed: int = 0,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.fields = list(fields)
        self.headers = dict(headers or {})
        self.not_listed = not_listed

    def __reduce__(self) -> tuple[type["Refusal"], tuple[int, str], dict[str, Any]]:
        # Raised in the process that checks large bodies (intake.writes), and pickled back.
        return (Refusal, (self.status, self.message), self.__dict__)
