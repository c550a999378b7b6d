"""The intake's bounds (issue 14, item 5): header size, connection count, a slow body, a client
that sends nothing or half a request. Each is tried on an intake started with small limits,
over raw sockets (an HTTP client would not misbehave on purpose); each time nothing is enqueued
and the process goes on serving. Every wait is on a condition with a deadline."""

import json
import os
import select
import socket
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest
import redis

from tests.conftest import APP_KEY, APP_TOKEN
from tests.harness import Intake
from tests.intake_support import INVOICE, ORDER
from tests.processes import ROOT, RedisServer, wait_for

MAX_CONNECTIONS = 5
MAX_HEADER_BYTES = 2_048
READ_TIMEOUT = 1.0
KEEPALIVE_TIMEOUT = 1.0
LINGERING = 10.0  # aiohttp's lingering_time: how long a body is drained after an early answer
HEALTH = b"GET /relay/health HTTP/1.1\r\nHost: x\r\n\r\n"


def start_intake(**limits: str) -> Intake:
    return Intake(env={**os.environ, **limits}, cwd=ROOT).start()


@pytest.fixture(scope="module")
def impatient(redis_server: RedisServer) -> Iterator[Intake]:
    """An intake with short time-outs and a small header limit."""
    process = start_intake(
        INTAKE_MAX_HEADER_BYTES=str(MAX_HEADER_BYTES),
        INTAKE_READ_TIMEOUT=str(READ_TIMEOUT),
        INTAKE_KEEPALIVE_TIMEOUT=str(KEEPALIVE_TIMEOUT),
    )
    yield process
    process.stop()


@pytest.fixture(scope="module")
def crowded(redis_server: RedisServer) -> Iterator[Intake]:
    """An intake of few connections (and the default 15 s idle time-out, longer than the
    test, so that held connections stay open)."""
    process = start_intake(INTAKE_MAX_CONNECTIONS=str(MAX_CONNECTIONS))
    yield process
    process.stop()


def connect(url: str) -> socket.socket:
    parts = urlsplit(url)
    return socket.create_connection((parts.hostname or "", parts.port or 80), timeout=10)


def read_answer(sock: socket.socket) -> bytes:
    """One HTTP answer (head and a Content-Length body), or what came before the peer closed
    (b"" for a connection closed, or reset, without an answer)."""
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                return data
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = next(
            (
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")[1:]
                if line.lower().startswith(b"content-length:")
            ),
            0,
        )
        while len(body) < length and (chunk := sock.recv(65536)):
            body += chunk
        return head + b"\r\n\r\n" + body
    except ConnectionResetError:
        return data


def status_of(answer: bytes) -> int | None:
    """The status code of *answer*, None for no answer."""
    return int(answer[9:12]) if answer.startswith(b"HTTP/1.") else None


def closed_by_peer(sock: socket.socket, timeout: float) -> float | None:
    """Seconds until the peer closed *sock* (reading and discarding what it sends), or None if
    it was still open after *timeout* seconds."""
    started = time.monotonic()
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return None
    except ConnectionResetError:
        pass
    return time.monotonic() - started


def serves(url: str) -> bool:
    return httpx.get(f"{url}/relay/health", timeout=10).status_code == 200


def header_line(size: int) -> bytes:
    """A header line of *size* bytes (``name: value``), and its CRLF."""
    return b"X-Big: " + b"b" * (size - len(b"X-Big: ")) + b"\r\n"


def invoice_request(body: bytes) -> bytes:
    return (
        f"POST {ORDER}/o-slow/invoice HTTP/1.1\r\nHost: x\r\nX-VTEX-API-AppKey: {APP_KEY}\r\n"
        f"X-VTEX-API-AppToken: {APP_TOKEN}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()


# --- header size -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "request_bytes",
    [
        HEALTH[:-2] + header_line(MAX_HEADER_BYTES + 1) + b"\r\n",
        # A long name and a long value, each within the limit (all aiohttp checks), together
        # over it.
        HEALTH[:-2] + b"X-" + b"n" * 1_500 + b": " + b"v" * 1_500 + b"\r\n\r\n",
        HEALTH[:-2] + b"X-Big: " + b"b" * 20_000 + b"\r\n\r\n",
        b"GET /relay/health?" + b"a" * MAX_HEADER_BYTES + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        HEALTH[:-2] + b"X-H: 1\r\n" * 200 + b"\r\n",
    ],
    ids=["header-line", "long-name-and-value", "huge-header", "request-line", "many-headers"],
)
def test_headers_over_the_limits_are_4xx_and_the_intake_goes_on(
    impatient: Intake, redis_client: redis.Redis, request_bytes: bytes
) -> None:
    with connect(impatient.url) as sock:
        sock.sendall(request_bytes)
        answer = read_answer(sock)
    assert status_of(answer) in (400, 431), answer[:200]
    assert APP_TOKEN.encode() not in answer
    assert serves(impatient.url)
    assert impatient.process is not None
    assert impatient.process.poll() is None  # a malformed request never ends the process
    assert redis_client.dbsize() == 0


def test_a_header_line_of_exactly_the_limit_is_served(impatient: Intake) -> None:
    # The limit refuses what is over it, not what a client may send.
    with connect(impatient.url) as sock:
        sock.sendall(HEALTH[:-2] + header_line(MAX_HEADER_BYTES) + b"\r\n")
        assert status_of(read_answer(sock)) == 200


# --- connection count ------------------------------------------------------------------------


def served_connection(url: str) -> socket.socket | None:
    """A new keep-alive connection that got an answer (left open), or None if it was refused."""
    sock = connect(url)
    try:
        sock.sendall(HEALTH)
    except (BrokenPipeError, ConnectionResetError):
        sock.close()
        return None
    if status_of(read_answer(sock)) == 200:
        return sock
    sock.close()
    return None


def test_connections_beyond_the_limit_are_closed_and_a_freed_slot_is_used(
    crowded: Intake,
) -> None:
    held = [wait_for(lambda: served_connection(crowded.url)) for _ in range(MAX_CONNECTIONS)]
    try:
        # All slots are taken: the next connection is closed without an answer.
        assert served_connection(crowded.url) is None
        for sock in held:  # while the first ones still work
            sock.sendall(HEALTH)
            assert status_of(read_answer(sock)) == 200
        for sock in held[:2]:
            sock.close()
        held = held[2:]
        # The slots free once the server has seen the closes: polled, not assumed.
        held.append(wait_for(lambda: served_connection(crowded.url), what="a freed slot"))
        held.append(wait_for(lambda: served_connection(crowded.url), what="a freed slot"))
        assert served_connection(crowded.url) is None  # full again
    finally:
        for sock in held:
            sock.close()


# --- slow clients ----------------------------------------------------------------------------


def trickled_until_closed(sock: socket.socket, data: bytes, seconds: float) -> bool:
    """Send *data* a byte every 0.1 s until the intake closes the connection (True), or the
    data or *seconds* run out (False)."""
    started = time.monotonic()
    for byte in data:
        if time.monotonic() - started > seconds:
            return False
        try:
            sock.sendall(bytes([byte]))
        except (BrokenPipeError, ConnectionResetError):
            return True
        if select.select([sock], [], [], 0.1)[0]:
            try:
                if sock.recv(65536) == b"":
                    return True
            except ConnectionResetError:
                return True
    return False


def test_a_body_trickled_past_the_read_timeout_is_408_then_closed(
    impatient: Intake, redis_client: redis.Redis
) -> None:
    body = json.dumps(INVOICE).encode().ljust(4_000)  # JSON may end in spaces
    with connect(impatient.url) as sock:
        sock.sendall(invoice_request(body) + body[:100])
        started = time.monotonic()
        answer = b""
        sent = 100
        # One byte every 0.1 s (a client of 10 bytes/s), until the intake answers.
        while not answer and time.monotonic() - started < 10:
            sock.sendall(body[sent : sent + 1])
            sent += 1
            if select.select([sock], [], [], 0.1)[0]:
                answer = read_answer(sock)
        waited = time.monotonic() - started
        assert status_of(answer) == 408, answer[:200]
        assert READ_TIMEOUT <= waited < READ_TIMEOUT + 5
        assert b"not received within 1 s" in answer
        assert sent < len(body)  # the body never arrived

        # The rest is drained for at most LINGERING s, then the connection is closed, even if
        # the client goes on trickling: a slow client cannot hold a connection.
        limit = READ_TIMEOUT + LINGERING + 5 - (time.monotonic() - started)
        closed = trickled_until_closed(sock, body[sent:], limit)
        assert closed, "a trickling client kept its connection past the lingering time"
    assert redis_client.dbsize() == 0
    assert serves(impatient.url)


@pytest.mark.parametrize(
    "sent",
    [b"", b"POST /api/oms/pvt/orders/o-1/inv", b"GET /relay/health HTTP/1.1\r\nHost: x\r\n"],
    ids=["nothing", "half-request-line", "headers-unfinished"],
)
def test_a_connection_that_sends_no_whole_request_is_closed(
    impatient: Intake, redis_client: redis.Redis, sent: bytes
) -> None:
    with connect(impatient.url) as sock:
        sock.sendall(sent)
        closed_after = closed_by_peer(sock, KEEPALIVE_TIMEOUT + 10)
    assert closed_after is not None, "still open after the idle time-out"
    assert KEEPALIVE_TIMEOUT - 0.2 <= closed_after < KEEPALIVE_TIMEOUT + 5
    assert redis_client.dbsize() == 0
    assert serves(impatient.url)


def test_headers_trickled_byte_by_byte_are_cut_off(
    impatient: Intake, redis_client: redis.Redis
) -> None:
    # A slowloris: each byte resets no timer, so the whole request must arrive within the
    # idle time-out.
    endless = b"GET /relay/health HTTP/1.1\r\nX-Slow: " + b"s" * 1_000
    with connect(impatient.url) as sock:
        started = time.monotonic()
        closed = trickled_until_closed(sock, endless, KEEPALIVE_TIMEOUT + 10)
        waited = time.monotonic() - started
    assert closed, "a client sending a header byte every 0.1 s was never cut off"
    assert waited < KEEPALIVE_TIMEOUT + 5
    assert redis_client.dbsize() == 0
    assert serves(impatient.url)


# --- large bodies ----------------------------------------------------------------------------

BAD_EVENTS = 60_000  # a tracking body of 60,000 empty events: 240,000 bad fields


def test_a_400_names_at_most_100_fields_and_counts_the_rest(
    intake: str, redis_client: redis.Redis
) -> None:
    body = {"isDelivered": False, "events": [{}] * BAD_EVENTS}
    answer = httpx.put(
        f"{intake}{ORDER}/o-bad/invoice/NF-1/tracking",
        json=body,
        headers={"X-VTEX-API-AppKey": APP_KEY, "X-VTEX-API-AppToken": APP_TOKEN},
        timeout=30,
    )
    assert answer.status_code == 400, answer.text[:200]
    assert len(answer.content) < 30_000  # the request is 240 KB; the answer was 13-18 times it
    error = answer.json()["error"]
    assert len(error["fields"]) == 100
    assert error["fieldsNotListed"] == 4 * BAD_EVENTS - 100
    assert error["message"].endswith(
        "and 239,900 more bad field(s), not listed; nothing was enqueued"
    )
    assert redis_client.dbsize() == 0


def test_large_bad_bodies_do_not_stall_the_other_requests(
    intake: str, redis_client: redis.Redis
) -> None:
    body = json.dumps({"isDelivered": False, "events": [{}] * BAD_EVENTS}).encode()
    request = invoice_request(body).replace(b"/o-slow/invoice", b"/o-bad/invoice/NF-1/tracking")
    request = request.replace(b"POST ", b"PUT ", 1)
    socks = [connect(intake) for _ in range(4)]
    try:
        for sock in socks:
            sock.sendall(request + body)
        # While the four are checked, health answers: the worst wait of 20 probes.
        worst = 0.0
        for _ in range(20):
            started = time.monotonic()
            assert serves(intake)
            worst = max(worst, time.monotonic() - started)
        for sock in socks:
            assert status_of(read_answer(sock)) == 400
    finally:
        for sock in socks:
            sock.close()
    assert worst < 2.0, f"a health probe waited {worst:.2f} s"
    assert redis_client.dbsize() == 0


@pytest.fixture(scope="module")
def frugal(redis_server: RedisServer) -> Iterator[Intake]:
    """An intake whose request bodies may hold 1 MB together."""
    process = start_intake(INTAKE_MAX_INFLIGHT_BYTES="1000000")
    yield process
    process.stop()


def batch_head(url: str, length: int) -> bytes:
    return (
        f"POST /relay/batch HTTP/1.1\r\nHost: x\r\nX-VTEX-API-AppKey: {APP_KEY}\r\n"
        f"X-VTEX-API-AppToken: {APP_TOKEN}\r\nContent-Type: application/x-ndjson\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


def test_the_bytes_all_bodies_hold_are_bounded(frugal: Intake, redis_client: redis.Redis) -> None:
    line = json.dumps({"kind": "invoice", "orderId": "o-b", "body": INVOICE}).encode() + b"\n"
    with connect(frugal.url) as first:
        # The first holds 700 KB (its Content-Length) while its body is on the way...
        first.sendall(batch_head(frugal.url, 700_000) + b" " * 1_000)
        # ...so a second of 700 KB is refused at once: 503, try again.
        second = wait_for(
            lambda: _answer(frugal.url, batch_head(frugal.url, 700_000)), what="an answer"
        )
        assert status_of(second) == 503, second[:300]
        assert b"Retry-After: 5" in second
        assert b"INTAKE_MAX_INFLIGHT_BYTES" in second
        # A small request still fits beside the first.
        small = _answer(frugal.url, batch_head(frugal.url, len(line)) + line)
        assert status_of(small) == 200, small[:300]
    # The first gone, its bytes are free again.
    blank = batch_head(frugal.url, 700_000) + b"\n" * 700_000  # no jobs, nothing wrong

    def admitted() -> bytes | None:
        answer = _answer(frugal.url, blank)
        return answer if status_of(answer) != 503 else None

    again = wait_for(admitted, what="the first body's bytes freed")
    assert status_of(again) == 200, again[:300]
    assert serves(frugal.url)


def _answer(url: str, data: bytes) -> bytes:
    with connect(url) as sock:
        sock.sendall(data)
        return read_answer(sock)
