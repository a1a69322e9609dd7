"""One invocation of a rescoring run, from the command's options to its report.

:func:`prepare` checks every option before anything connects (:class:`InvalidRescore` names the
bad one); :func:`execute` lists the selection, skips what the run already finished, hands the
rest to the Ray Data job and collects the rows into a :class:`RescoreReport`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from eco2.db import create_pool
from eco2.settings import Settings
from pipelines.rescore import store
from pipelines.rescore.options import (
    InvalidRescore,
    Plan,
    Selection,
    check_budget,
    check_model,
    check_rules_version,
    derive_run_id,
    parse_filters,
    parse_stages,
)
from pipelines.rescore.report import RescoreReport
from pipelines.rescore.worker import DEFAULT_CONCURRENCY, RowReport
from pipelines.rules.rulebook import load_rulebook


@dataclass(frozen=True)
class Request:
    """A checked invocation."""

    plan: Plan
    selection: Selection
    budget_rpm: int | None = None
    budget_tpm: int | None = None
    workers: int = 2
    batch_size: int = 64
    concurrency: int = DEFAULT_CONCURRENCY
    batch_api: bool = False
    """Each block's calls of a stage as one Batch API job instead of one request per row."""
    dry_run: bool = False


def _utc(moment: datetime | None) -> datetime | None:
    """Times without an offset are UTC."""
    return moment.replace(tzinfo=UTC) if moment and moment.tzinfo is None else moment


def prepare(
    settings: Settings,
    *,
    stages: str = "vision,answer",
    model: str | None = None,
    rules_version: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    filters: Sequence[str] = (),
    limit: int | None = None,
    run_id: str | None = None,
    budget_rpm: int | None = None,
    budget_tpm: int | None = None,
    workers: int | None = None,
    batch_size: int | None = None,
    batch_api: bool = False,
    dry_run: bool = False,
) -> Request:
    """The checked request; raises :class:`~pipelines.rescore.options.InvalidRescore`."""
    chosen = parse_stages(stages)
    if batch_api and (budget_rpm is not None or budget_tpm is not None):
        raise InvalidRescore(
            "--budget-rpm / --budget-tpm pace requests sent one by one; the Batch API queues "
            "its work apart from those limits: drop the budget or --batch-api"
        )
    if limit is not None and limit <= 0:
        raise InvalidRescore(f"--limit must be a positive number (got {limit})")
    selection = Selection(_utc(since), _utc(until), parse_filters(filters), limit)
    version = check_rules_version(rules_version, load_rulebook())
    check_model(model, settings.model.supported_models)
    plan = Plan(
        run_id=run_id or derive_run_id(chosen, model, version, selection),
        stages=chosen,
        model=model,
        rules_version=version,
    )
    return Request(
        plan=plan,
        selection=selection,
        budget_rpm=check_budget(budget_rpm, "--budget-rpm"),
        budget_tpm=check_budget(budget_tpm, "--budget-tpm"),
        workers=_workers(workers, budget_rpm, budget_tpm),
        batch_size=batch_size or _batch_size(budget_rpm, batch_api),
        batch_api=batch_api,
        dry_run=dry_run,
    )


def _workers(requested: int | None, budget_rpm: int | None, budget_tpm: int | None) -> int:
    """Two actors by default; one under a budget, whose bucket is then the only one. Each actor
    paces its share (budget / actors) alone, so several actors meet the budget only while all
    of them are busy, which actors starting one after the other are not; one actor sustains far
    more requests than a budget usually allows."""
    if requested is not None:
        return max(1, requested)
    return 1 if budget_rpm is not None or budget_tpm is not None else 2


def _batch_size(budget_rpm: int | None, batch_api: bool = False) -> int:
    """Under a budget, a batch is about five seconds of requests at two per row: the pause
    between two batches (commit, next rows) spends none of the budget, so batches much shorter
    than that fall behind it; without a budget, large batches cost the least, and a Batch API
    job (a file upload, a few polls, a download per stage) pays off over many rows."""
    if batch_api:
        return 500
    if budget_rpm is None:
        return 128
    return max(4, min(128, budget_rpm // 24))


async def list_candidates(settings: Settings, request: Request) -> list[store.Candidate]:
    pool = await create_pool(settings, "scan", min_size=1, max_size=1)
    try:
        return await store.candidates(pool, request.plan.run_id, request.selection)
    finally:
        await pool.close()


def execute(
    settings: Settings,
    request: Request,
    *,
    on_start: Callable[[int], None] = lambda total: None,
    on_row: Callable[[RowReport], None] = lambda row: None,
) -> RescoreReport:
    """Rescore what the request selects and the run has not finished; the report of it."""
    candidates = asyncio.run(list_candidates(settings, request))
    pending = [c.job_id for c in candidates if not c.done]
    report = RescoreReport(
        plan=request.plan,
        selected=len(candidates),
        already_done=len(candidates) - len(pending),
        budget_rpm=request.budget_rpm,
        budget_tpm=request.budget_tpm,
        dry_run=request.dry_run,
    )
    if not candidates:
        report.message = "no completed scan matches the selection: nothing to rescore"
    elif request.dry_run:
        report.message = f"dry run: {len(pending)} scan(s) would be rescored, no model called"
    elif not pending:
        report.message = f"run {request.plan.run_id} has rescored every selected scan already"
    if report.message:
        return report
    from pipelines.rescore.ray_job import rescore_rows  # Ray only when there is work

    on_start(len(pending))
    started = time.perf_counter()
    for row in rescore_rows(
        settings,
        request.plan,
        pending,
        workers=request.workers,
        batch_size=request.batch_size,
        rpm=request.budget_rpm,
        tpm=request.budget_tpm,
        concurrency=request.concurrency,
        batch_api=request.batch_api,
    ):
        report.rows.append(row)
        on_row(row)
    report.elapsed_s = time.perf_counter() - started
    return report
