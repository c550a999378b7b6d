"""``vtex-relay serve``: the HTTP intake (attached to the CLI lazily; needs the intake extra)."""

import asyncio
import logging
import signal

import click
from redis.exceptions import RedisError

from vtex_relay import redaction
from vtex_relay.cli.console import clean_errors, listening
from vtex_relay.intake.app import run
from vtex_relay.settings import Settings, get_settings
from vtex_relay.store import connections


@click.command("serve")
@listening(8080)
def serve(host: str, port: int) -> None:
    """Accept VTEX's invoice and tracking calls over HTTP and enqueue them (see README)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    with clean_errors():  # a bad setting, or a token file that cannot be read: one line, exit 2
        settings = get_settings()
        # The second line of defence: no code logs a token, and this cuts out any that slips in.
        redaction.install(redaction.Redactor(settings.tokens()), [logging.getLogger()])
        _preflight()
    _install_uvloop()
    asyncio.run(_main(settings, host, port))


async def _main(settings: Settings, host: str, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await run(settings, host, port, stop)


def _preflight() -> None:
    """Refuse a Redis vtex-relay must not run on (``ConfigurationError``); one not reachable
    yet is waited out: the intake answers 503 until it is."""
    try:
        connections.ordering()
    except RedisError as exc:
        logging.getLogger("vtex_relay.intake").warning("Redis not reachable at start (%s)", exc)


def _install_uvloop() -> None:
    # uvloop roughly doubles what one process serves; the intake works without it (Windows).
    try:
        import uvloop
    except ModuleNotFoundError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
