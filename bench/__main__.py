"""``python -m bench [--quick] [--repeats N] [--out PATH]``: run the benchmark, print the table.

Then ``bench.noisy_neighbour`` and ``bench.backlog_memory`` (same ``--quick``), whose tables
are appended.

Progress goes to stderr; stdout is the markdown table, the machine line and the command. The
same text is written to ``bench/results.md`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench.context import Context, Plan, info
from bench.report import Row, machine_line, table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a ~2-minute smoke run")
    parser.add_argument("--repeats", type=int, default=None, help="runs per figure (median)")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="results file (default: bench/results.md for a "
        "full run, bench/results-quick.md for --quick, so a smoke run never replaces the figures)",
    )
    args = parser.parse_args(argv)
    if args.out is None:
        name = "results-quick.md" if args.quick else "results.md"
        args.out = Path(__file__).with_name(name)
    # SIGTERM, and SIGINT even when started in the background, run the clean-up below.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    plan = Plan.make(args.quick, args.repeats)
    command = " ".join(
        ["python -m bench", shlex.join(sys.argv[1:] if argv is None else argv)]
    ).strip()
    started = time.monotonic()
    ctx = Context(plan)
    rows: list[Row] = []
    try:
        ctx.setup()
        # Imported only now: vtex-relay reads its settings from the environment set above.
        from bench import comparison, scenarios

        info("1/4 enqueue rates")
        rows += scenarios.enqueue_rates(ctx)
        info("2/4 end-to-end delivery")
        delivery_rows, best = comparison.delivery(ctx)
        rows += delivery_rows
        info("3/4 latency under open-loop load")
        rows += scenarios.latency(ctx, best)
        info("4/4 cost growth and worker memory")
        rows += scenarios.growth_and_memory(ctx)
        redis_version = ctx.redis_server.version()
    finally:
        ctx.teardown()
    rows.sort(key=lambda row: row.section.split(".")[0])
    extra = _extra(plan.quick)
    minutes = (time.monotonic() - started) / 60
    text = "\n".join(
        [
            table(rows),
            "",
            machine_line(redis_version),
            f"Command: `{command}` ({'quick' if plan.quick else 'full'} run, {minutes:.1f} min, "
            f"{plan.repeats} run(s) per figure unless the row says otherwise)",
            "End-to-end: the backlog is enqueued first and hidden (RENAME) while the workers "
            "start; the time runs from its release (RENAME back, once all workers are ready) to "
            "the last POST applied in the sandbox's request log.",
            *extra,
        ]
    )
    print(text)
    args.out.write_text(text + "\n", encoding="utf-8")
    return 0


EXTRA = (
    ("noisy_neighbour", "noisy-neighbour", "Noisy neighbour (issue 13)"),
    ("backlog_memory", "backlog-memory", "Redis bytes per job (issue 13)"),
)


def _extra(quick: bool) -> list[str]:
    """The noisy-neighbour and Redis-memory benchmarks, each in a process of its own: it needs
    its own settings (vtex-relay reads them once per process) and its own Redis. Their tables,
    as sections of the result file."""
    sections: list[str] = []
    for module, name, title in EXTRA:
        info(f"bench.{module}")
        flag = ["--quick"] if quick else []
        subprocess.run(
            [sys.executable, "-m", f"bench.{module}", *flag], check=True, stdout=subprocess.DEVNULL
        )
        path = Path(__file__).with_name(f"{name}{'-quick' if quick else ''}.md")
        sections += [
            "",
            f"## {title}",
            "",
            f"From `bench/{path.name}`:",
            "",
            path.read_text().rstrip(),
        ]
    return sections


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


if __name__ == "__main__":
    raise SystemExit(main())
