"""``python -m bench.send_window``: how long a frozen worker could still send late.

A worker checks its lease's send-by time as the last step before each write of a request to
the socket (``vtex_relay.deliver.oms._SendBy``). What is left is the time from the last check
that passes to the moment the request's last byte is handed to the kernel: a freeze (SIGSTOP,
a VM pause) inside that window, longer than the margin, lets the request leave late. This
measures that window on the real client, for the guide's invoice POST, against a local HTTP
server, and writes a table to ``bench/send-window.md``.
"""

from __future__ import annotations

import json
import multiprocessing
import statistics
import time
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from config import Settings
from tests.harness import JsonHandler
from vtex_relay.deliver import oms as oms_client
from vtex_relay.operations import OPERATIONS

REQUESTS = 5_000
INVOICE = json.loads((Path(__file__).parent.parent / "examples" / "invoice.json").read_text())
windows: list[int] = []  # ns from the last passed check to the body handed to the kernel


class _Handler(JsonHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.read_body()
        self.answer(200, b'{"receipt": "r"}')


class _Measured(oms_client._SendBy):
    """The real check, timed: the last check that passed, and the body's write returning."""

    __slots__ = ("passed",)

    def __call__(self, event: str, info: Any) -> None:
        super().__call__(event, info)
        if event.endswith(oms_client._WRITES):
            self.passed = time.monotonic_ns()
        elif event.endswith("send_request_body.complete"):
            windows.append(time.monotonic_ns() - self.passed)


def _serve(server: ThreadingHTTPServer) -> None:
    server.serve_forever()


def main() -> None:
    # The server runs in a process of its own: in this one, its thread would compete with the
    # client's for the GIL, inside the window being measured.
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    process = multiprocessing.get_context("fork").Process(target=_serve, args=(server,))
    process.start()
    server.socket.close()
    settings = Settings(
        vtex_app_key="key",
        vtex_app_token=SecretStr("token"),
        vtex_base_url=f"http://127.0.0.1:{server.server_address[1]}/{{account}}",
    )
    oms_client._SendBy = _Measured  # type: ignore[misc]
    with oms_client.OmsClient(settings) as client:
        for _ in range(REQUESTS):
            client.write(
                OPERATIONS["invoice"],
                "benchstore",
                "o-1",
                None,
                INVOICE,
                send_by=time.monotonic() + 60,
            )
    process.terminate()
    process.join()
    micro = sorted(w / 1000 for w in windows)
    p99 = micro[int(len(micro) * 0.99) - 1]
    text = "\n".join(
        [
            "| measurement | requests | p50 | p99 | max |",
            "|---|---|---|---|---|",
            f"| last lease check → request body handed to the kernel (invoice POST, loopback) "
            f"| {len(micro):,} | {statistics.median(micro):.1f} µs | {p99:.1f} µs "
            f"| {micro[-1]:.1f} µs |",
            "",
            "Command: `.venv/bin/python -m bench.send_window`",
        ]
    )
    print(text)
    Path(__file__).with_name("send-window.md").write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
