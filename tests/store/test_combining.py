"""Script calls from many threads share round trips, and each still gets its own reply."""

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from tests.harness import RedisServer, wait_for
from vtex_relay.store.combining import Combiner
from vtex_relay.store.scripts import Function, library

# Busy for a few milliseconds, so that calls made meanwhile wait and go together.
SLOW = """
local x = 0
for i = 1, tonumber(ARGV[2]) do x = x + i end
if ARGV[1] == "bad" then return redis.error_reply("a bad one") end
return ARGV[1]
"""
SPIN = "100000"


def slow(client: redis.Redis, variant: str = "") -> Function:
    """SLOW as a function of a library of its own (*variant* makes another library)."""
    source, prefix = library(f"-- {variant}", {"slow": SLOW}, {"slow": ""})
    return Function(client, "slow", source, prefix)


def in_threads(count: int, work: Callable[[int], Any]) -> dict[int, Any]:
    """Run work(0..count-1) in as many threads at once; each one's result or exception."""
    results: dict[int, Any] = {}
    start = threading.Barrier(count)

    def run(n: int) -> None:
        start.wait()
        try:
            results[n] = work(n)
        except Exception as exc:  # handed back to the test, which checks it
            results[n] = exc

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def test_each_call_gets_its_own_reply_and_calls_share_round_trips(
    redis_client: redis.Redis,
) -> None:
    combiner = Combiner(redis_client)
    script = slow(redis_client)
    calls = 16 * 10

    def work(n: int) -> list[bytes]:
        return [combiner.call(script, [], [f"{n}-{i}", SPIN]) for i in range(10)]

    results = in_threads(16, work)
    assert results == {n: [f"{n}-{i}".encode() for i in range(10)] for n in range(16)}
    assert combiner.round_trips < calls / 2, f"{combiner.round_trips} round trips, {calls} calls"


def test_an_error_reply_goes_to_its_call_alone(redis_client: redis.Redis) -> None:
    combiner = Combiner(redis_client)
    script = slow(redis_client)
    results = in_threads(12, lambda n: combiner.call(script, [], ["bad" if n % 3 else n, SPIN]))
    for n, result in results.items():
        if n % 3:
            assert isinstance(result, redis.ResponseError)
            assert "a bad one" in str(result)
        else:
            assert result == str(n).encode()
    assert combiner.round_trips < 12


def test_a_batch_of_functions_redis_forgot_loads_them_again(redis_client: redis.Redis) -> None:
    combiner = Combiner(redis_client)
    first = slow(redis_client)
    later = slow(redis_client, "another library")
    first.load()
    later.load()
    redis_client.function_flush()
    # One call on its way (it loads its library itself), the others wait for it: they go
    # together, find their function missing, and are run again once it is loaded.
    ahead = threading.Thread(target=combiner.call, args=(first, [], ["first", "3000000"]))
    ahead.start()
    wait_for(lambda: combiner.round_trips == 1, timeout=10, what="the first call on its way")
    results = in_threads(6, lambda n: combiner.call(later, [], [n, SPIN]))
    ahead.join(timeout=30)
    assert results == {n: str(n).encode() for n in range(6)}
    assert combiner.round_trips <= 3  # the first, then the six together (or in two)


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.stop()


def test_a_lost_connection_fails_its_calls_and_the_next_ones_go_through(
    own_redis: RedisServer,
) -> None:
    client = own_redis.client()
    combiner = Combiner(client)
    script = slow(client)
    assert combiner.call(script, [], ["up", "1"]) == b"up"
    own_redis.kill()
    results = in_threads(8, lambda n: combiner.call(script, [], [n, SPIN]))
    assert all(isinstance(r, redis.ConnectionError) for r in results.values()), results
    own_redis.start()
    results = in_threads(8, lambda n: combiner.call(script, [], [n, SPIN]))
    assert results == {n: str(n).encode() for n in range(8)}
