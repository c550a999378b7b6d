"""Each thread gets a client of its own, the same one on every call; closed, none is made."""

import threading

import httpx
import pytest

from vtex_relay.deliver.clients import ThreadClients


def test_a_thread_keeps_its_client_and_another_thread_gets_its_own() -> None:
    clients = ThreadClients(timeout=5)
    mine = clients.get()
    theirs: list[httpx.Client] = []
    other = threading.Thread(target=lambda: theirs.append(clients.get()))
    other.start()
    other.join(timeout=10)
    assert clients.get() is mine
    assert theirs
    assert theirs[0] is not mine
    clients.close()
    assert mine.is_closed
    assert theirs[0].is_closed
    with pytest.raises(RuntimeError, match="closed"):
        _fresh_thread_get(clients)


def _fresh_thread_get(clients: ThreadClients) -> httpx.Client:
    """``get`` from a thread that has no client yet: after ``close``, it must refuse."""
    raised: list[BaseException] = []

    def run() -> None:
        try:
            clients.get()
        except BaseException as exc:  # handed back to the test thread
            raised.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=10)
    raise raised[0] if raised else AssertionError("a client was made after close")
