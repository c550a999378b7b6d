"""Key names come only from ``vtex_relay.store.keys``: in the scripts, the names of an order's
and an account's keys are among the ones it lists, and no other module spells a key."""

import re
from pathlib import Path

import redis

from tests.processes import ROOT
from vtex_relay.store import keys
from vtex_relay.store.scripts import script

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


def test_every_script_compiles_with_the_layout(redis_client: redis.Redis) -> None:
    # SCRIPT LOAD compiles without running: a name the layout's Lua lacks would still pass, but
    # a syntax slip in the generated functions would not.
    for path in LUA:
        if path.stem != "common":
            redis_client.script_load(script(redis_client, path.stem).script)
