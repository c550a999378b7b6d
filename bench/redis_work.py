"""``python -m bench.redis_work``: the instructions Redis runs per job: ``bench/redis-work.md``.

Redis CPU per job in seconds (``bench/results.md``) moves with whatever else the machine runs.
valgrind's callgrind counts the instructions Redis runs instead: the same commands give the
same count however fast the machine, so a change to the scripts shows in this figure from one
run to the next (three runs on a quiet machine agreed within 0.3%). A drain's commands still
depend a little on timing: how many calls share a round trip, Redis's timers (per second, not
per job), the workers' polls; so other load on the machine raises both systems' figures. It
counts Redis's own code only, not the kernel's: the system calls of a round trip are not in
it, and they are most of what one command sent on its own costs.

Redis runs under callgrind. Each system's real workers (as in ``bench/results.md``: 2 x threads
64, the sandbox at 0 ms) drain a backlog of invoice jobs, one order each; the counters are
dumped (``callgrind_control --dump``) around each step: the producer's enqueue, the drain.
Redis is about 50 times slower under valgrind, so more of a worker's calls overlap and share a
round trip than at full speed; what a script runs is the same. vtex-relay's drain is also split
into its parts: the commands its functions run, the rest of the functions (the Lua that decides,
and Redis's conversion of each command's arguments and reply to and from Lua), calling them, and
the rest (the fetch, reading and writing the connections).

Then the prices that explain the figures, on the same Redis: a function and a script that do
nothing, what defining vtex-relay's shared Lua functions on every call would cost (a script
does; the library defines them once, ``vtex_relay/store/scripts.py``), decoding a call's JSON
arguments, and one command run from a script, against the same command sent on its own.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import redis

from bench.context import Context, Plan, info
from bench.harness import BenchError, RedisServer, stop_workers
from bench.report import publish
from bench.systems import PLAIN_THREADS, RELAY_PROCFILE, System
from tests.harness import start_workers

JOBS = 1_000
CALLS = 500  # per price


class CallgrindRedis(RedisServer):
    """The benchmark's redis-server, run by callgrind; ``dump`` returns the instructions Redis
    ran since the last dump."""

    def spawn(self, command: Sequence[str]) -> None:
        self.out = Path(self.dir) / "callgrind.out"
        self.dumps = 0
        self.last = self.out
        valgrind = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={self.out}"]
        super().spawn([*valgrind, *command])

    def dump(self) -> int:
        subprocess.run(
            ["callgrind_control", "--dump", str(self.pid)], check=True, capture_output=True
        )
        self.dumps += 1
        path = self.last = Path(f"{self.out}.{self.dumps}")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if path.exists() and (total := totals(path)) is not None:
                return total
            time.sleep(0.05)
        raise BenchError(f"callgrind wrote no {path}")


def totals(dump: Path) -> int | None:
    """The instructions counted in callgrind's *dump* (None until it is written whole)."""
    for line in dump.read_text().splitlines():
        if line.startswith("totals:"):
            return int(line.split()[1])
    return None


# Redis's functions whose instructions, callees included, split a drain's (named in the
# Debian build; most of Lua's are not).
PARTS = ("fcallCommand", "lua_pcall", "scriptCall")


def split(dump: Path, jobs: int) -> dict[str, float]:
    """A drain's instructions per job (callgrind's *dump* of it), by part."""
    found = parts(dump)
    total = totals(dump) or 0
    parted = {
        "the commands the scripts run (`scriptCall`)": found["scriptCall"],
        "the rest of the functions: the Lua that decides, and Redis's conversion of each "
        "command's arguments and reply": found["lua_pcall"] - found["scriptCall"],
        "calling the functions (`FCALL`: its arguments into Lua)": (
            found["fcallCommand"] - found["lua_pcall"]
        ),
        "outside the functions: the fetch (`BRPOP`), reading requests, writing replies": (
            total - found["fcallCommand"]
        ),
    }
    return {name: value / jobs for name, value in parted.items()}


def parts(dump: Path) -> dict[str, int]:
    """The instructions of each of PARTS, its callees included, in callgrind's *dump*."""
    annotated = subprocess.run(
        ["callgrind_annotate", "--inclusive=yes", "--threshold=100", str(dump)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    found = dict.fromkeys(PARTS, 0)
    for line in annotated.splitlines():
        count, _, rest = line.strip().partition(" ")
        name = rest.rpartition(":")[2].split(" [")[0]
        if name in found and count.replace(",", "").isdigit():
            found[name] = int(count.replace(",", ""))
    return found


def steps(ctx: Context, server: CallgrindRedis, system: System) -> dict[str, float]:
    """Instructions per job of *system*'s enqueue and drain of JOBS jobs; the drain's dump is
    ``server.last``."""
    ctx.fresh(0)
    server.dump()
    system.enqueue(ctx.prefix(), JOBS)
    enqueue = server.dump()
    client, queue = ctx.redis(), system.queue
    client.rename(queue, f"{queue}:held")
    workers = system.workers(ctx.env, "work")
    try:
        start_workers(workers, timeout=120)
        server.dump()
        client.rename(f"{queue}:held", queue)
        ctx.wait_applied(JOBS, 600)
        drain = server.dump()
    finally:
        stop_workers(workers)
    return {"enqueue": enqueue / JOBS, "delivery": drain / JOBS}


def prices(server: CallgrindRedis) -> dict[str, float]:
    """Instructions per call of a script's parts, each over a PING's."""
    from importlib import resources

    from vtex_relay.store import keys, messages
    from vtex_relay.store.scripts import Function, library

    client: redis.Redis = server.client()
    common = (resources.files("vtex_relay.store") / "lua" / "common.lua").read_text()
    shared = keys.LUA + messages.lua() + common
    arg = (
        '{"member":"a:o-1 0123456789abcdef","token":"0123456789abcdef0123456789abcdef",'
        '"lease":30,"rate":0,"burst":0,"window":32,"calls":1,"ledger":false}'
    )

    def per_call(call: Callable[[], object]) -> float:
        call()  # loaded
        server.dump()
        for _ in range(CALLS):
            call()
        return server.dump() / CALLS

    def script(source: str) -> Callable[[], object]:
        registered = client.register_script("#!lua flags=allow-oom\n" + source)
        return lambda: registered(keys=["h"], args=[arg])

    source, prefix = library("", {"noop": "return 1"}, {"noop": "'allow-oom'"})
    noop = Function(client, "noop", source, prefix)
    ping = per_call(client.ping)
    empty = per_call(script("return 1"))
    ten = per_call(script("for i = 1, 10 do redis.call('HINCRBY', KEYS[1], 'f', 1) end return 1"))
    return {
        "a PING (its round trip, in Redis)": ping,
        "a function that does nothing (FCALL), over a PING": per_call(
            lambda: noop(keys=["h"], args=[arg])
        )
        - ping,
        "a script that does nothing (EVALSHA), over a PING": empty - ping,
        "a script that defines vtex-relay's shared Lua functions first, over that": (
            per_call(script(shared + "\nreturn 1")) - empty
        ),
        "decoding a call's JSON arguments (a claim's, as they were before they were positional)": (
            per_call(script("local a = cjson.decode(ARGV[1]) return 1")) - empty
        ),
        "one command run from a script (HINCRBY)": (ten - empty) / 10,
        "the same command sent on its own, over a PING": (
            per_call(lambda: client.hincrby("h", "f", 1)) - ping
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.redis_work", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("redis-work.md"))
    args = parser.parse_args()
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        raise SystemExit("bench.redis_work needs valgrind (Debian's package valgrind)")
    server = CallgrindRedis()
    ctx = Context(Plan.make(True, 1), redis_server=server)
    systems = [RELAY_PROCFILE, PLAIN_THREADS[-1]]
    try:
        ctx.setup()
        counted = {}
        for system in systems:
            info(f"redis work: {system.label}")
            counted[system] = steps(ctx, server, system)
            if system is systems[0]:
                drain_parts = split(server.last, JOBS)
        priced = prices(server)
        version = server.version()
    finally:
        ctx.teardown()
    relay, plain = (counted[s] for s in systems)
    lines = [
        f"| step, per job | {systems[0].label} | {systems[1].label} | ratio |",
        "|---|---|---|---|",
    ]
    for step, name in (
        ("enqueue", "the producer's enqueue (`enqueue_many` / `apply_async`)"),
        ("delivery", "delivery (fetch, claim and finish / fetch and kombu's acknowledgement)"),
    ):
        ratio = relay[step] / plain[step]
        lines.append(f"| {name} | {relay[step]:,.0f} | {plain[step]:,.0f} | {ratio:.1f}x |")
    lines += [
        "",
        f"| delivery by part, per job ({systems[0].label}) | instructions |",
        "|---|---|",
    ]
    lines += [f"| {name} | {value:,.0f} |" for name, value in drain_parts.items()]
    lines += ["", "| what Redis runs, instructions per call | |", "|---|---|"]
    lines += [f"| {name} | {value:,.0f} |" for name, value in priced.items()]
    about = (
        f"Instructions Redis ran (valgrind's callgrind, its own code, not the kernel's), per "
        f"job: {JOBS:,} invoice jobs, one order each, enqueued then drained by the workers "
        f"from the sandbox at 0 ms; the prices over {CALLS} calls each. Redis is about 50 "
        "times slower under valgrind, so more of the workers' calls share a round trip "
        "than at full speed."
    )
    publish(args.out, lines, about, version, "python -m bench.redis_work")


if __name__ == "__main__":
    main()
