"""The Lua scripts, as one Redis function library: the key layout (``keys.LUA``),
``build_message`` (``messages.lua()``) and the shared functions (``common.lua``), then each script
(``lua/NAME.lua``) as a function of its own.

A library rather than ``EVALSHA`` scripts because a script runs the whole of its source on every
call: each call would define again every function the scripts share, which costs Redis three times
what an empty script call does (``bench/redis-work.md``). A library's source runs once, when it
is loaded; a call runs its function only. Redis also keeps its libraries with its data (RDB,
AOF) and copies them to replicas, so a restart or a failover keeps them.

The library's name, and so each function's, carries a digest of its source: two versions of
vtex-relay on one Redis (a rolling upgrade) each call their own functions.
"""

import hashlib
from collections.abc import Mapping, Sequence
from functools import lru_cache
from importlib import resources
from typing import Any

import redis

from vtex_relay.store import keys, messages

NAMES = ("enqueue", "claim", "finish", "sweep", "resolve")

# Redis refuses to start the enqueue function when it is out of memory (a function that may
# write, without the allow-oom flag), rather than failing at a write half-way through it. The
# workers' functions may run then: they record outcomes and drop delivered jobs' bodies, which
# frees memory.
_FLAGS = {"enqueue": ""}
_WORKER_FLAGS = "'allow-oom'"


def library(
    prelude: str, bodies: Mapping[str, str], flags: Mapping[str, str], start: str = ""
) -> tuple[str, str]:
    """The source of a library of *bodies* (each a script's source: it reads ``KEYS`` and
    ``ARGV``) after *prelude*, and the prefix of its functions' names (``NAME`` is called as
    PREFIX + NAME). Each call runs *start* first: the prelude's state lasts from call to call."""
    parts = [prelude]
    for name, body in bodies.items():
        parts.append(
            f"redis.register_function{{function_name = '@@{name}', flags = {{{flags[name]}}},\n"
            f"callback = function(KEYS, ARGV)\n{start}\n{body}\nend}}"
        )
    source = "\n".join(parts)
    digest = hashlib.sha256(source.encode()).hexdigest()[:16]
    prefix = f"vr_{digest}_"
    named = source.replace("function_name = '@@", f"function_name = '{prefix}")
    return f"#!lua name=vtexrelay_{digest}\n" + named, prefix


@lru_cache(maxsize=1)
def _ours() -> tuple[str, str]:
    folder = resources.files("vtex_relay.store") / "lua"
    prelude = keys.LUA + messages.lua() + (folder / "common.lua").read_text()
    bodies = {name: (folder / f"{name}.lua").read_text() for name in NAMES}
    flags = {name: _FLAGS.get(name, _WORKER_FLAGS) for name in NAMES}
    # NOW: the clock common.lua reads once a call (its one moment).
    return library(prelude, bodies, flags, start="NOW = nil")


class Function:
    """One function of a library, called like redis-py's scripts: ``fn(keys=..., args=...)``;
    the library is loaded when Redis does not have it (a new Redis, ``FUNCTION FLUSH``)."""

    def __init__(self, client: "redis.Redis", name: str, source: str, prefix: str) -> None:
        self.client = client
        self.name = prefix + name
        self.source = source
        self.loaded = False  # by this object: a pipeline needs the library loaded first

    def __call__(self, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        try:
            return self.client.fcall(self.name, len(keys), *keys, *args)
        except redis.ResponseError as exc:
            if not missing(exc):
                raise
        self.load()
        return self.client.fcall(self.name, len(keys), *keys, *args)

    def command(self, keys: Sequence[Any], args: Sequence[Any]) -> list[Any]:
        """The call as a command, for a pipeline (which does not load the library)."""
        return ["FCALL", self.name, len(keys), *keys, *args]

    def load(self) -> None:
        """Load the library, unless Redis has it already."""
        try:
            self.client.function_load(self.source)
        except redis.ResponseError as exc:
            if "already exists" not in str(exc):
                raise
        self.loaded = True

    def ensure(self) -> None:
        """Load the library if this object has not yet: once, not before every pipeline (a
        round trip, and an error Redis counts when it has the library already). A pipeline
        that finds it missing since (``missing``) loads it again and resends."""
        if not self.loaded:
            self.load()


def missing(reply: object) -> bool:
    """Whether *reply* says Redis does not have the function called."""
    return isinstance(reply, redis.ResponseError) and "Function not found" in str(reply)


def function(client: "redis.Redis", name: str) -> Function:
    """The function of ``lua/NAME.lua``, bound to *client*."""
    source, prefix = _ours()
    return Function(client, name, source, prefix)
