"""GET order through the intake, against a VTEX that sends a large order in several writes,
sets cookies, closes a body half-way, or answers one account slowly: the client gets VTEX's
whole answer or an error that says what failed, never a part of an order, never another
account's cookie, and one slow account does not starve another's reads."""

import asyncio
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import SANDBOX_URL
from tests.harness import Intake
from tests.intake_support import CREDENTIALS, ORDER, client, vtex_error
from tests.processes import ROOT
from vtex_relay.errors import Refusal
from vtex_relay.intake.passthrough import Passthrough
from vtex_relay.sandbox import SandboxControl
from vtex_relay.settings import Settings

# About 400 KB of JSON: an order of 1,000 items, more than any one read of a socket returns.
ITEMS = [
    {"id": str(n), "name": f"Item {n} " + "x" * 300, "quantity": 1, "price": 1000}
    for n in range(1_000)
]


def test_an_order_sent_in_several_writes_arrives_whole(
    intake: str, sandbox: SandboxControl
) -> None:
    sandbox.seed_order("o-big", value=10000, account="teststore", items=ITEMS)
    sandbox.set_faults(order_writes=4, order_write_gap_ms=50)
    expected = sandbox.order("o-big", "teststore")["order"]
    with client(intake) as http:
        answer = http.get(f"{ORDER}/o-big")
    assert answer.status_code == 200, answer.text[:200]
    assert len(answer.content) > 128 * 1024
    assert answer.json() == expected
    [seen] = sandbox.requests(method="GET")
    assert seen.status == 200


class _Cut(threading.Thread):
    """A VTEX that promises a body of 100,000 bytes, sends 5,000 and closes the connection."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]

    def run(self) -> None:
        while True:
            try:
                connection, _ = self.server.accept()
            except OSError:
                return
            with connection:
                connection.recv(65536)
                head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                connection.sendall(head + b"Content-Length: 100000\r\n\r\n" + b"{" + b" " * 4999)


def test_a_body_cut_short_is_502_never_a_partial_200() -> None:
    vtex = _Cut()
    vtex.start()
    settings = Settings(
        vtex_base_url=f"http://127.0.0.1:{vtex.port}",
        vtex_account="teststore",
        vtex_app_key="k",
        vtex_app_token="t",
        vtex_timeout=2,
    )

    async def get() -> Refusal:
        passthrough = Passthrough(settings)
        try:
            with pytest.raises(Refusal) as refused:
                await passthrough.get_order("teststore", "o-cut")
        finally:
            await passthrough.close()
        return refused.value

    refusal = asyncio.run(get())
    vtex.server.close()
    assert refusal.status == 502
    assert "Could not read VTEX's answer" in refusal.message


def test_no_cookie_goes_from_one_account_s_call_to_another_s(
    few_connections: str, sandbox: SandboxControl
) -> None:
    sandbox.set_faults(set_cookies=True)
    with client(few_connections) as http:
        for account in ("storea", "storeb", "storea"):
            answer = http.get(f"{ORDER}/o-c", params={"an": account})
            assert answer.status_code == 200, answer.text
    got = sandbox.requests(method="GET")
    assert [(r.account, r.cookie) for r in got] == [
        ("storea", None),
        ("storeb", None),
        ("storea", None),
    ]


@pytest.fixture(scope="module")
def few_connections(redis_server: object) -> Iterator[str]:
    """An intake whose accounts have 4 VTEX connections each, calling VTEX by a host name (a
    cookie jar ignores cookies set by an IP address)."""
    env = {
        **os.environ,
        "INTAKE_ACCOUNT_CONNECTIONS": "4",
        "VTEX_BASE_URL": SANDBOX_URL.replace("127.0.0.1", "localhost") + "/{account}",
    }
    process = Intake(env=env, cwd=ROOT).start()
    yield process.url
    process.stop()


def test_a_slow_account_does_not_starve_another_s_reads(
    few_connections: str, sandbox: SandboxControl
) -> None:
    # VTEX answers slowstore in 1.5 s (VTEX_TIMEOUT is 2 s) and faststore at once.
    sandbox.set_faults(account_latency_ms={"slowstore": 1500})

    async def run() -> tuple[list[httpx.Response], float, httpx.Response]:
        limits = httpx.Limits(max_connections=200)
        async with httpx.AsyncClient(
            base_url=few_connections, headers=CREDENTIALS, limits=limits, timeout=10
        ) as http:
            slow = [
                asyncio.create_task(http.get(f"{ORDER}/o-s{n}", params={"an": "slowstore"}))
                for n in range(12)
            ]
            await _until(lambda: len(sandbox.requests(account="slowstore")) >= 4)
            started = time.monotonic()
            fast = await http.get(f"{ORDER}/o-f", params={"an": "faststore"})
            took = time.monotonic() - started
            return list(await asyncio.gather(*slow)), took, fast

    slow, took, fast = asyncio.run(run())
    assert fast.status_code == 200, fast.text
    assert took < 1.0  # not behind slowstore's calls
    statuses = sorted(answer.status_code for answer in slow)
    # Four calls at a time: the first four are answered; a 504 says which side was slow:
    # slowstore's own connections all busy, or VTEX, after a wait for one of them.
    assert statuses.count(200) >= 4
    assert set(statuses) <= {200, 504}
    messages = [vtex_error(a, 504) for a in slow if a.status_code == 504]
    assert messages, statuses
    busy = "slowstore already has 4 calls waiting on VTEX (INTAKE_ACCOUNT_CONNECTIONS)"
    late = "VTEX did not answer within 2 s (VTEX_TIMEOUT"
    assert all(busy in m or late in m for m in messages), messages
    # Twelve sent at once, four reached VTEX before the first answer (1.5 s later).
    received = sorted(r.received_at for r in sandbox.requests(account="slowstore"))
    assert sum(1 for t in received if t < received[0] + 1.4) == 4


def test_vtex_too_slow_is_504_naming_vtex(intake: str, sandbox: SandboxControl) -> None:
    sandbox.set_faults(account_latency_ms={"teststore": 3000})  # past VTEX_TIMEOUT (2 s)
    with client(intake) as http:
        answer = http.get(f"{ORDER}/o-slow")
    assert "VTEX did not answer within 2 s" in vtex_error(answer, 504)


async def _until(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(condition):
        assert time.monotonic() < deadline, "condition not met"
        await asyncio.sleep(0.02)
