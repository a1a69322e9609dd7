"""``eco2 bench up``: time from nothing to all-healthy (cold and warm), and the stack's memory.

Runs in its own run directory (:data:`BENCH_RUN_DIR`), so it never touches a running stack.
Cold = empty run directory (initdb and all); warm = the data the cold start left behind.
"""

from __future__ import annotations

import shutil
import statistics
import time
from pathlib import Path
from typing import Any

from cluster import process
from cluster.stack import Stack
from cluster.state import read_state
from cluster.supervisor import supervisor_alive
from devtools.bench.machine import machine
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
