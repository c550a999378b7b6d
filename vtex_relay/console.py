"""How every ``vtex-relay`` command ends on an error: one clear message on stderr, an exit code.

Exit codes: 1 Redis unreachable or refusing (nothing enqueued or changed, unless the message
says otherwise); 2 bad input, an unknown or not-dead job or order, bad settings.
"""

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import click

from vtex_relay.errors import ConfigurationError, InvalidJob, InvoiceConflict, QueueUnavailable


@contextmanager
def clean_errors() -> Iterator[None]:
    """Turn vtex-relay's errors into one clear message on stderr and an exit code."""
    try:
        yield
    except InvalidJob as exc:
        fail(2, "invalid job; nothing was enqueued:", *(f"  {e}" for e in exc.errors))
    except ConfigurationError as exc:
        fail(2, str(exc))
    except InvoiceConflict as exc:
        fail(2, f"{exc}; nothing was enqueued")
    except QueueUnavailable as exc:
        fail(1, str(exc))


def fail(code: int, first: str, *more: str) -> NoReturn:
    """Print ``vtex-relay: FIRST`` and the *more* lines on stderr; exit with *code*."""
    click.echo("\n".join([f"vtex-relay: {first}", *more]), err=True)
    sys.exit(code)
