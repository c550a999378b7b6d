"""Process probes for the benchmark (psutil): process trees, their CPU time and memory, the
machine's load. A process that is gone counts as nothing, never as an error."""

from __future__ import annotations

import psutil


def _tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def rss_kb(pid: int) -> int:
    """Resident set size of *pid* and all its descendants, in KiB (0 for a gone process)."""
    total = 0
    for member in _tree(pid):
        try:
            total += member.memory_info().rss // 1024
        except psutil.Error:
            continue
    return total


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of *pid*, its live descendants and its reaped children."""
    total = 0.0
    for member in _tree(pid):
        try:
            times = member.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system + times.children_user + times.children_system
    return total


def machine_busy_seconds() -> float:
    """CPU seconds spent busy (not idle / iowait) by the whole machine since boot, all cores."""
    times = psutil.cpu_times()
    # user .. steal: guest time is counted in user already.
    return float(sum(times[:8])) - times.idle - getattr(times, "iowait", 0.0)
