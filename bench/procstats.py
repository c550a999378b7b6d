"""/proc probes for the benchmark: process trees, their CPU time and memory, the machine's load.

Linux only, as the benchmark is; a process that is gone counts as nothing, never as an error.
"""

from __future__ import annotations

import os
from pathlib import Path

from tests.harness import descendants

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def rss_kb(pid: int) -> int:
    """Resident set size of *pid* and all its descendants, in KiB (0 for a gone process)."""
    total = 0
    for member in [pid, *descendants(pid)]:
        try:
            statm = Path(f"/proc/{member}/statm").read_text().split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        total += int(statm[1]) * _PAGE_KB
    return total


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of *pid*, its live descendants and its reaped children."""
    total = 0.0
    for member in [pid, *descendants(pid)]:
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        # fields[11..14] = utime, stime, cutime, cstime (stat fields 14-17)
        total += sum(int(value) for value in fields[11:15]) / _CLOCK_TICKS
    return total


def machine_busy_seconds() -> float:
    """CPU seconds spent busy (not idle / iowait) by the whole machine since boot, all cores."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / _CLOCK_TICKS
