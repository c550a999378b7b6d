"""The Lua scripts, assembled: flags, the key layout (``keys.LUA``), ``build_message``
(``messages.lua()``), the shared functions (``common.lua``), then the script itself."""

from importlib import resources

import redis
from redis.commands.core import Script

from vtex_relay.store import keys, messages

# Redis refuses to start the enqueue script when it is out of memory (a script without the
# allow-oom flag), rather than failing at a write half-way through it. The workers' scripts
# may run then: they record outcomes and drop delivered jobs' bodies, which frees memory.
_FLAGS = {"enqueue": "#!lua\n"}
_WORKER_FLAGS = "#!lua flags=allow-oom\n"


def script(client: "redis.Redis", name: str) -> Script:
    """The script ``lua/NAME.lua``, registered with *client* (loaded on its first call)."""
    folder = resources.files("vtex_relay.store") / "lua"
    source = (folder / "common.lua").read_text() + (folder / f"{name}.lua").read_text()
    return Script(client, _FLAGS.get(name, _WORKER_FLAGS) + keys.LUA + messages.lua() + source)
