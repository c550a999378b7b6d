"""Script calls from many threads, sent together: one round trip carries every call waiting.

A worker's threads each claim and finish their jobs in Redis, and most of the time another
thread's call is already on its way: under load, 85-89% of them start while another is in
flight, with two or three others on average. Each round trip costs Redis a read, a parse, a
reply and their system calls, which is most of its CPU per job. So the calls that come in
while one is on its way wait for it to come back and then go together, in one pipeline. No
call waits for a batch to fill: a call made while none is on its way is sent at once, alone.

Flat combining: the thread whose call finds nothing on its way sends every call waiting (its
own included), hands each its reply, then gives the turn to the first call that came in
meanwhile, so no thread sends for others more than once. Written by hand because redis-py's
pipelines batch one thread's commands, not many threads' calls.

Each call is still one script run, atomic on its own; a batch is not a transaction. A reply
that is an error (the script raised, Redis refused it) goes to its call alone; a connection
that fails fails every call of its batch, as it would have failed each alone (whether a call
that was sent ran is then unknown, as for any call cut off).
"""

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import redis

from vtex_relay.store.scripts import Function, missing


@dataclass(eq=False)
class _Call:
    script: Function
    keys: Sequence[Any]
    args: Sequence[Any]
    turn: threading.Event = field(default_factory=threading.Event)  # done, or send now
    done: bool = False
    answered: bool = False
    reply: Any = None
    error: BaseException | None = None

    def answer(self, reply: Any) -> None:
        if isinstance(reply, BaseException):
            self.error = reply
        else:
            self.reply = reply
        self.answered = True


class Combiner:
    """Runs script calls for many threads over *client*, batching those that wait."""

    def __init__(self, client: "redis.Redis") -> None:
        self.client = client
        self._lock = threading.Lock()
        self._waiting: list[_Call] = []
        self._sending = False
        self.round_trips = 0  # batches sent: fewer than calls when threads overlap

    def call(self, script: Function, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        """Run *script* with *keys* and *args*, as ``script(keys=keys, args=args)`` would."""
        mine = _Call(script, keys, args)
        with self._lock:
            self._waiting.append(mine)
            first = not self._sending
            self._sending = True
        if not first:
            mine.turn.wait()
        if not mine.done:  # this thread's turn: it sends every call waiting, its own included
            with self._lock:
                batch, self._waiting = self._waiting, []
            try:
                self._send(batch)
            finally:
                with self._lock:
                    if self._waiting:
                        self._waiting[0].turn.set()
                    else:
                        self._sending = False
        if mine.error is not None:
            raise mine.error
        return mine.reply

    def _send(self, batch: list[_Call]) -> None:
        try:
            self.round_trips += 1
            if len(batch) == 1:
                call = batch[0]
                call.answer(call.script(keys=call.keys, args=call.args))
                return
            with self.client.pipeline(transaction=False) as pipe:
                for call in batch:
                    pipe.fcall(call.script.name, len(call.keys), *call.keys, *call.args)
                replies = pipe.execute(raise_on_error=False)
            for call, reply in zip(batch, replies, strict=True):
                if missing(reply):
                    # Not run (a new Redis, FUNCTION FLUSH): the call loads the library, runs.
                    try:
                        reply = call.script(keys=call.keys, args=call.args)
                    except redis.RedisError as exc:
                        reply = exc
                call.answer(reply)
        except BaseException as exc:
            for call in batch:
                if not call.answered:
                    call.answer(exc)
            raise
        finally:
            for call in batch:
                call.done = True
                call.turn.set()
