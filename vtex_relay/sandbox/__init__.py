"""A fake VTEX OMS: a real HTTP server for local runs, integration tests and benchmarks.

It serves the four OMS operations vtex-relay uses (POST invoice, PATCH tracking number,
PUT tracking events, GET order), validates bodies against VTEX's published schemas, keeps
orders in memory, logs every OMS request, injects faults on demand, and exposes a control
API under ``/_sandbox/`` (see ``app``), with ``SandboxControl`` as its client.
"""

from __future__ import annotations

import asyncio
import signal

from aiohttp import web

from vtex_relay.sandbox.app import SandboxConfig, build_app
from vtex_relay.sandbox.control import RecordedRequest, SandboxControl
from vtex_relay.sandbox.faults import Faults

__all__ = ["Faults", "RecordedRequest", "SandboxConfig", "SandboxControl", "build_app", "serve"]


def serve(config: SandboxConfig, host: str = "127.0.0.1", port: int = 8765) -> None:
    """Run the sandbox until SIGINT/SIGTERM (blocking).

    Once listening it prints ``sandbox listening on http://HOST:PORT`` to stdout (with the
    real port when ``port`` is 0) and flushes, so a parent process can wait for that line.
    """
    asyncio.run(_serve(config, host, port))


async def _serve(config: SandboxConfig, host: str, port: int) -> None:
    # No access log: it costs more than the request handling itself.
    runner = web.AppRunner(build_app(config), access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, backlog=4096)
        await site.start()
        bound = runner.addresses[0][1]
        print(f"sandbox listening on http://{host}:{bound}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()
