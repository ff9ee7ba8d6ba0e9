"""The whole machine's CPU from /proc/stat: how busy it was while something was measured.

The box is shared (other jobs may run during the bench), so every section records the share
of all CPUs that was busy during each measurement, whoever used it.
"""

from __future__ import annotations

from pathlib import Path


def cpu_times() -> list[int]:
    """The first line of /proc/stat: jiffies of all CPUs (user nice system idle iowait ...)."""
    first = Path("/proc/stat").read_text().splitlines()[0].split()
    return [int(x) for x in first[1:]]


def busy_and_steal(before: list[int], after: list[int]) -> tuple[float, float]:
    """Share of all CPUs busy (0..1) and share stolen by the hypervisor, between two samples."""
    delta = [b - a for a, b in zip(before, after, strict=False)]
    total = sum(delta[:8]) or 1  # user nice system idle iowait irq softirq steal
    idle = delta[3] + delta[4]
    return (total - idle) / total, delta[7] / total


def loadavg() -> str:
    return " / ".join(Path("/proc/loadavg").read_text().split()[:3])
