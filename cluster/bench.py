"""``eco2 bench up``: time from nothing to all-healthy (cold and warm), and the stack's memory.

Runs in its own run directory (:data:`BENCH_RUN_DIR`), so it never touches a running stack.
Cold = empty run directory (initdb and all); warm = the data the cold start left behind.
"""

from __future__ import annotations

import os
import platform
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import psutil

from cluster import process
from cluster.stack import Stack
from cluster.state import read_state
from cluster.supervisor import supervisor_alive
from eco2.settings import Settings

BENCH_RUN_DIR = Path(".eco2-bench")
SETTLE_S = 3.0
"""Wait after all-healthy before reading RSS, so start-up transients (prestarted workers) settle."""


def _start_once(settings: Settings) -> tuple[float, dict[str, float], dict[str, float]]:
    stack = Stack(settings)
    started = time.monotonic()
    try:
        state = stack.start()
        elapsed = time.monotonic() - started
        time.sleep(SETTLE_S)
        rss = {
            name: round(process.rss_bytes(c.pid) / 2**20, 1)
            for name, c in state.components.items()
            if c.pid is not None and not c.external
        }
        healthy_after = {n: c.healthy_after_s or 0.0 for n, c in state.components.items()}
    finally:
        stack.stop()
    rss["total"] = round(sum(rss.values()), 1)
    return elapsed, rss, healthy_after


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


def bench_up(settings: Settings, runs: int = 1, run_dir: Path = BENCH_RUN_DIR) -> dict[str, Any]:
    run_dir = run_dir.expanduser().resolve()
    existing = read_state(run_dir)
    if existing is not None and supervisor_alive(existing):
        raise RuntimeError(
            f"a stack is up in {run_dir}; run `eco2 down` with ECO2_RUN_DIR={run_dir}"
        )
    bench_settings = settings.model_copy(update={"run_dir": run_dir})
    cold, warm = [], []
    rss: dict[str, float] = {}
    phases: dict[str, dict[str, float]] = {}
    for _ in range(runs):
        shutil.rmtree(run_dir, ignore_errors=True)
        seconds, _, phases["cold"] = _start_once(bench_settings)
        cold.append(round(seconds, 2))
        seconds, rss, phases["warm"] = _start_once(bench_settings)
        warm.append(round(seconds, 2))
    return {
        "command": f"eco2 bench up --runs {runs}",
        "runs": runs,
        "cold_start_s": statistics.median(cold),
        "warm_start_s": statistics.median(warm),
        "cold_start_runs_s": cold,
        "warm_start_runs_s": warm,
        "healthy_after_s": phases,
        "rss_mb": rss,
        "rss_note": "process trees after a warm start; Serve's proxy + controller count in ray",
        "run_dir": str(run_dir),
        "machine": machine(),
    }
