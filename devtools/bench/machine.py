"""The machine a benchmark ran on, and how fast it runs plain Python right now."""

from __future__ import annotations

import os
import platform
import sys
import time
from typing import Any

import psutil


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "reference_loop_ms": reference_loop_ms(),
    }


def reference_loop_ms(iterations: int = 2_000_000, tries: int = 3) -> float:
    """How fast this machine runs plain Python now: the best of ``tries`` timings of one loop.

    Machines of the same kind differed by ~2x from one day to the next with the same code
    (docs/benchmarks.md, 2026-12-04), so a figure is comparable across days only next to this
    one; within one run, compare ratios.
    """
    best = float("inf")
    for _ in range(tries):
        started = time.perf_counter()
        total = 0
        for i in range(iterations):
            total += i
        best = min(best, time.perf_counter() - started)
    return round(best * 1000, 1)
