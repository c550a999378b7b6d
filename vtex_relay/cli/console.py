"""How ``vtex-relay`` commands speak: one clear message on stderr and an exit code on an error,
aligned tables and UTC times in their output.

Exit codes: 1 Redis unreachable or refusing (nothing enqueued or changed, unless the message
says otherwise); 2 bad input, an unknown or not-dead job or order, bad settings.
"""

import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import NoReturn

import click

from vtex_relay.errors import ConfigurationError, InvalidJob, InvoiceConflict, QueueUnavailable


@contextmanager
def clean_errors() -> Iterator[None]:
    """Turn vtex-relay's errors into one clear message on stderr and an exit code."""
    try:
        yield
    except InvalidJob as exc:
        more = [f"  and {exc.not_listed:,} more bad field(s)"] if exc.not_listed else []
        fail(2, "invalid job; nothing was enqueued:", *(f"  {e}" for e in exc.errors), *more)
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


def listening(port: int) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """The ``--host`` (127.0.0.1) and ``--port`` (*port*; 0: any free one) of a command that
    listens: ``serve``, ``metrics``."""

    def decorate(command: Callable[..., None]) -> Callable[..., None]:
        command = click.option(
            "--port",
            default=port,
            show_default=True,
            type=click.IntRange(0, 65535),
            help="Port (0: any free port).",
        )(command)
        return click.option(
            "--host", default="127.0.0.1", show_default=True, help="Interface to listen on."
        )(command)

    return decorate


# A table cell longer than this is cut: the whole text is in `dlq show` and `--json`.
CELL_WIDTH = 80


def cents(value: object) -> str:
    return f"{value:,}" if isinstance(value, int) else "?"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell, two spaces apart; no trailing spaces."""
    widths = [max(len(row[i]) for row in [headers, *rows]) for i in range(len(headers))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [headers, *rows]
    ]
    return "\n".join(lines)


def indent(text: str) -> list[str]:
    return ["  " + line for line in text.splitlines()]


def cut(text: str) -> str:
    return text if len(text) <= CELL_WIDTH else text[: CELL_WIDTH - 1] + "…"


def utc(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ") if moment else ""
