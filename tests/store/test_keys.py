"""Key names come only from ``vtex_relay.store.keys``: in the scripts, the names of an order's
and an account's keys are among the ones it lists, and no other module spells a key."""

import re
from pathlib import Path
from typing import Any

import redis

from tests.processes import ROOT
from vtex_relay.store import keys
from vtex_relay.store.scripts import NAMES, function

LUA = sorted((ROOT / "vtex_relay" / "store" / "lua").glob("*.lua"))
PYTHON = sorted(p for d in ("vtex_relay", "worker", "tasks") for p in (ROOT / d).rglob("*.py"))


def _code(path: Path) -> str:
    """*path* without its comments and docstrings' prose (which may name keys)."""
    if path.suffix == ".lua":
        return "\n".join(line.split("--")[0] for line in path.read_text().splitlines())
    text = re.sub(r'"""[\s\S]*?"""', "", path.read_text())
    return "\n".join(line.split("#")[0] for line in text.splitlines())


def test_the_scripts_name_only_the_listed_keys() -> None:
    used = {
        (kind, name)
        for path in LUA
        for kind, name in re.findall(r'(order|account)_key\([^,()]+, "([^"]*)"\)', _code(path))
    }
    assert used, "the pattern must find the scripts' keys"
    listed = {("order", n) for n in keys.ORDER_PARTS} | {("account", n) for n in keys.ACCOUNT_PARTS}
    assert used <= listed, used - listed


def test_no_module_but_keys_spells_a_key() -> None:
    spelled = re.compile(rf'"{keys.PREFIX}:|":(body|attempts)"|"job:')
    found = [
        f"{path.relative_to(ROOT)}: {match.group(0)}"
        for path in [*LUA, *PYTHON]
        if path.name != "keys.py"
        for match in spelled.finditer(_code(path))
    ]
    assert not found, found


def _pairs(flat: list[Any]) -> dict[bytes, Any]:
    """A RESP2 reply of alternating names and values, as a dict."""
    return dict(zip(flat[0::2], flat[1::2], strict=True))


def test_every_script_compiles_with_the_layout(redis_client: redis.Redis) -> None:
    # FUNCTION LOAD compiles the library and runs its registrations, not the functions: a name
    # the layout's Lua lacks would still pass, but a syntax slip in the generated Lua would not.
    redis_client.function_flush()
    function(redis_client, "claim").load()
    [library] = [_pairs(entry) for entry in redis_client.function_list()]
    names = sorted(_pairs(f)[b"name"].decode().rpartition("_")[2] for f in library[b"functions"])
    assert names == sorted(NAMES)
    assert {p.stem for p in LUA} == {*NAMES, "common"}
