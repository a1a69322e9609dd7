"""``eco2 bench rescore --json``: rows/s of the rescoring job at zero model latency — calling the
model per row, and with ``--batch-api`` (each block's calls of a stage as one Batch API job) —
and the requests per minute it achieves under a budget (target: within 5 % of the budget).

Needs the local stack (``eco2 up --detach``). Seeding: the bench user's completed scans are
inserted the way the scan store writes them — :meth:`ScanStore.submit` then
:meth:`ScanStore.advance` with the state machine's own ``classified`` and ``answered`` commits
(so each has its events) — with classifications an older model might have given: every fifth
scan of a PET bottle is stored as 플라스틱류, and rewards were off, so the rescoring finds changed
labels and rewards. No model is called to seed. The job itself runs as ``eco2 rescore`` does
(``python -m pipelines.rescore`` with the stack's environment), against the stack's Ray cluster
and simulator, whose latency preset is set to ``zero`` for the run and restored after.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

import asyncpg
import httpx
import psutil
import typer

from cluster.running import running_settings, running_state
from devtools.bench.machine import machine
from eco2.db import create_pool
from eco2.settings import Settings
from pipelines.rules.rulebook import load_rulebook
from pipelines.scan import machine as scan_machine
from pipelines.scan.machine import Policy
from pipelines.scan.store import ScanStore
from serve.contracts import AnswerResult, Classification, VisionMeta, VisionResult

COMMAND = "eco2 bench rescore --json"
BENCH_USER = "bench-rescore"
_ITEMS: tuple[
    tuple[str, str, str, list[str]], ...
] = (  # image words the simulator classifies, and the label an older model stored
    ("clear-pet-bottle-nolabel-empty", "재활용폐기물", "무색페트병", ["비닐_라벨_완전_제거됨"]),
    ("aluminum-can-empty", "재활용폐기물", "금속류", ["내용물_없음"]),
    ("glass-soju-bottle", "재활용폐기물", "유리병", []),
    ("styrofoam-foam-tape", "재활용폐기물", "발포합성수지", ["스티로폼_테이프_부착"]),
    ("tissue-trash", "일반종량제폐기물", "일반종량제폐기물", []),
)


def _stored_vision(index: int) -> tuple[str, VisionResult]:
    words, major, middle, tags = _ITEMS[index % len(_ITEMS)]
    if index % (5 * len(_ITEMS)) == 0:
        middle = "플라스틱류"  # what an older model said of a PET bottle
    vision = VisionResult(
        classification=Classification(major_category=major, middle_category=middle),
        situation_tags=tags,
        meta=VisionMeta(user_input="버려도 돼?"),
    )
    return f"https://cdn.eco2.local/scan/{words}-{index}.jpg", vision


async def _seed_one(store: ScanStore, policy: Policy, index: int) -> None:
    image_url, vision = _stored_vision(index)
    job, _ = await store.submit(
        user_id=BENCH_USER,
        idempotency_key=f"bench-rescore-{index}",
        image_url=image_url,
        user_input="버려도 돼?",
        model="gpt-5.2",
        traceparent=None,
    )
    if job.stage == "queued":
        commit = scan_machine.classified(job, vision, 0.0)
        job = await store.advance(job, commit.events, **commit.columns)
    if job.stage == "vision":
        match = scan_machine.find_rule(job, policy)
        answer = AnswerResult(disposal_steps={}, insufficiencies=[], user_answer="seeded")
        commit = scan_machine.answered(job, policy, match, answer, rule_ms=0.0, answer_ms=0.0)
        await store.advance(job, commit.events, **commit.columns)


async def seed(settings: Settings, rows: int) -> int:
    """Make sure the bench user has ``rows`` completed scans; returns how many were added."""
    pool = await create_pool(settings, "scan", min_size=1, max_size=8)
    try:
        have = await _count(pool)
        store = ScanStore(pool, owner="bench-rescore-seed")
        policy = Policy(rules=load_rulebook(), reward_enabled=False)
        for start in range(have, rows, 200):
            chunk = range(start, min(rows, start + 200))
            await asyncio.gather(*(_seed_one(store, policy, i) for i in chunk))
        return max(0, rows - have)
    finally:
        await pool.close()


async def _count(pool: asyncpg.Pool) -> int:
    count: int = await pool.fetchval(
        "SELECT count(*) FROM scan_jobs WHERE user_id = $1 AND status = 'completed'", BENCH_USER
    )
    return count


def _set_preset(sim: str, preset: str) -> dict[str, Any]:
    """Install the simulator's latency ``preset`` (faults and rate limits off); returns the
    configuration it replaced."""
    original: dict[str, Any] = httpx.get(f"{sim}/sim/config").raise_for_status().json()
    config = {"preset": preset, "seed": original.get("seed", 0)}
    httpx.put(f"{sim}/sim/config", json=config).raise_for_status()
    return original


def run_job(env: dict[str, str], *args: str) -> tuple[dict[str, Any], float]:
    """``python -m pipelines.rescore --json ARGS``: its JSON and wall seconds."""
    started = time.perf_counter()
    process = psutil.Popen(
        [sys.executable, "-m", "pipelines.rescore", "--json", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out, err = process.communicate(timeout=900)
    wall = time.perf_counter() - started
    try:
        figures: dict[str, Any] = json.loads(out)
    except json.JSONDecodeError:
        figures = {}
    if process.returncode != 0 or not figures:
        raise RuntimeError(
            f"rescore exited {process.returncode}; stdout {out[:500]!r}; stderr {err[-2000:]}"
        )
    return figures, wall


def _throughput(figures: dict[str, Any], wall_s: float) -> dict[str, Any]:
    return {
        "rows": figures["rescored"],
        "changed": figures["changed"],
        "failed": figures["failed"],
        "requests": figures["requests"],
        "job_s": figures["elapsed_s"],
        "rows_per_s": figures["rows_per_s"],
        "rows_per_s_while_calling": figures["rows_per_s_while_calling"],
        "process_wall_s": round(wall_s, 2),
        "rows_per_s_incl_startup": round(figures["rescored"] / wall_s, 1),
        "target_rows_per_s": 500,
    }


def bench_rescore(
    rows: Annotated[int, typer.Option(min=10, help="Scans rescored at zero latency.")] = 3000,
    budget_rpm: Annotated[int, typer.Option(min=1, help="Budget of the budget run.")] = 1200,
    budget_rows: Annotated[int, typer.Option(min=10, help="Scans of the budget run.")] = 300,
    workers: Annotated[int, typer.Option(min=1, help="Ray Data actors of the zero run.")] = 2,
    json_output: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Rescoring throughput at zero model latency and budget adherence (local stack)."""
    state = running_state()
    settings = running_settings()
    env = {**os.environ, **state.env}
    sim = state.env["ECO2_MODEL__BASE_URL"].removesuffix("/v1")
    seeded = asyncio.run(seed(settings, max(rows, budget_rows)))
    original = _set_preset(sim, "zero")
    tag = uuid.uuid4().hex[:8]
    load_before = os.getloadavg()
    try:
        common = ["--filter", f"user={BENCH_USER}"]
        zero, zero_wall = run_job(
            env,
            *common,
            "--workers",
            str(workers),
            "--limit",
            str(rows),
            "--run-id",
            f"bench-zero-{tag}",
            "--report-dir",
            str(settings.run_dir / "bench-rescore" / f"zero-{tag}"),
        )
        batch, batch_wall = run_job(
            env,
            *common,
            "--workers",
            str(workers),
            "--limit",
            str(rows),
            "--batch-api",
            "--run-id",
            f"bench-batch-{tag}",
            "--report-dir",
            str(settings.run_dir / "bench-rescore" / f"batch-{tag}"),
        )
        budget, budget_wall = run_job(
            env,
            *common,
            "--limit",
            str(budget_rows),
            "--run-id",
            f"bench-budget-{tag}",
            "--budget-rpm",
            str(budget_rpm),
            "--report-dir",
            str(settings.run_dir / "bench-rescore" / f"budget-{tag}"),
        )
    finally:
        httpx.put(f"{sim}/sim/config", json=original)
    achieved = budget["achieved_rpm"]
    result = {
        "command": COMMAND,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "load_avg_before": [round(x, 2) for x in load_before],
        "load_avg_after": [round(x, 2) for x in os.getloadavg()],
        "seeded_now": seeded,
        "seeding": "ScanStore.submit + advance with the state machine's commits (no model call)",
        "zero_latency": _throughput(zero, zero_wall),
        "zero_latency_batch_api": _throughput(batch, batch_wall),
        "budget": {
            "rows": budget["rescored"],
            "requests": budget["requests"],
            "budget_rpm": budget_rpm,
            "achieved_rpm": achieved,
            "adherence": budget["budget_adherence"],
            "within_5pct": achieved is not None and abs(achieved / budget_rpm - 1) <= 0.05,
            "process_wall_s": round(budget_wall, 2),
        },
    }
    typer.echo(json.dumps(result, indent=2, ensure_ascii=False) if json_output else str(result))
