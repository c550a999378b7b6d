"""Pipelines that overlap: Redis runs one batch of commands while the caller builds the next.

Written by hand because redis-py's ``Pipeline.execute`` sends a batch and then waits for all
of its replies, so a producer sits idle while Redis runs the batch, then Redis sits idle while
the producer builds the next. Sending batch k+1 before reading batch k's replies keeps both
busy on one connection, so Redis still runs every command in the order sent (the batch CLI's
figures: docs/performance.md). A sender thread running ``Pipeline.execute`` is no better: its
socket reads hand the GIL back and forth with the thread that builds the messages.

Redis never blocks on a client that is slow to read (it buffers replies in memory), so sending
before reading cannot deadlock; the batches stay small (1,000 commands, ~1.7 MB).
"""

from collections.abc import Generator, Iterable, Sequence
from typing import Any, TypeVar

import redis

Command = Sequence[Any]
T = TypeVar("T")


def overlapped(
    client: "redis.Redis",
    batches: Iterable[tuple[T, Sequence[Command]]],
    *,
    raise_on_error: bool = True,
) -> Generator[tuple[T, list[Any]], None, None]:
    """Send each (tag, commands) batch on one connection; yield (tag, replies), in order.

    The tag is the caller's: whatever it needs to match replies to what it sent.

    A batch's replies are read once the next batch has been sent (or there is none). An error
    reply is raised as redis-py raises it, or with *raise_on_error* false handed back in its
    place as a ``redis.ResponseError`` (as ``Pipeline.execute(raise_on_error=False)`` does). A
    connection error is raised; the connection is then closed, since its unread replies can no
    longer be matched to their commands. At that point the batch being read and the one after
    it may have run in part.
    """
    iterator = iter(batches)
    connection = client.connection_pool.get_connection()
    try:
        unread: tuple[T, int] | None = None
        while True:
            try:
                batch = next(iterator, None)
            except Exception:
                if unread:  # the batch already sent has run: its replies reach the caller first
                    yield _replies(connection, *unread, raise_on_error)
                raise
            if batch is None:
                break
            tag, commands = batch
            if not commands:
                continue
            # A health check would read a PING reply while other replies are still unread.
            packed = connection.pack_commands(commands)  # type: ignore[no-untyped-call]
            connection.send_packed_command(packed, check_health=False)  # type: ignore[no-untyped-call]
            if unread:
                yield _replies(connection, *unread, raise_on_error)
            unread = (tag, len(commands))
        if unread:
            yield _replies(connection, *unread, raise_on_error)
    except BaseException:
        connection.disconnect()  # type: ignore[no-untyped-call]
        raise
    finally:
        client.connection_pool.release(connection)


def _replies(connection: Any, tag: T, count: int, raise_on_error: bool) -> tuple[T, list[Any]]:
    replies: list[Any] = []
    for _ in range(count):
        try:
            replies.append(connection.read_response())
        except redis.ResponseError as exc:
            # An error reply was read whole: the next reply is still the next command's.
            if raise_on_error:
                raise
            replies.append(exc)
    return tag, replies
