"""The result table (markdown) and the machine line."""

from __future__ import annotations

import platform
import statistics
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path


@dataclass(frozen=True)
class Row:
    """One line of the table."""

    section: str
    system: str
    result: str
    runs: str = ""
    notes: str = ""


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def fmt_rate(value: float) -> str:
    return f"{value:,.0f} jobs/s"


def fmt_runs(values: list[float], digits: int = 0) -> str:
    return ", ".join(f"{v:,.{digits}f}" for v in values)


def fmt_mib(kib: float) -> str:
    return f"{kib / 1024:,.0f} MiB"


def table(rows: list[Row]) -> str:
    head = ["measurement", "system / configuration", "result (median)", "runs", "notes"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [row.section, row.system, row.result, row.runs, row.notes]
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return "\n".join(lines)


def machine_line(redis_version: str) -> str:
    import celery

    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    nproc = subprocess.run(["nproc"], capture_output=True, text=True, check=False).stdout.strip()
    revision = subprocess.run(
        ["git", "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).resolve().parent.parent,
    ).stdout.strip()
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"Run: {when} on {platform.node()}. Code: vtex-relay {revision or '?'}. "
        f"Machine: nproc {nproc}, CPU {cpu}, Python {platform.python_version()}, "
        f"Celery {celery.__version__}, Redis {redis_version}, {platform.system()} "
        f"{platform.release()}"
    )


def publish(out: Path, lines: list[str], about: str, redis_version: str, command: str) -> None:
    """Print a benchmark's table (*lines*), what it measured (*about*), the machine and the
    command, and write the same text to *out*."""
    text = "\n".join([*lines, "", about, "", machine_line(redis_version), f"Command: `{command}`"])
    print(text)
    out.write_text(text + "\n", encoding="utf-8")
