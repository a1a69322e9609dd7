"""The rescoring job's reads and writes on the scan database.

Contract of :func:`record`: one transaction per batch stores every row's ``scan_rescorings`` row
and, for each row that became ``done`` with a changed outcome, bumps the scan's aggregate
``version`` (taking its row lock) and appends ``ScanRescored`` at that version through
:func:`eco2.eventstore.append` (a batch's events in one call). A row already ``done`` in this
run is left as it is and gets no second event, so concurrent or repeated invocations of a run
emit each event once.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from eco2.events import EventEnvelope, EventMetadata
from eco2.eventstore import append
from pipelines.rescore.budget import Usage
from pipelines.rescore.options import Filter, Plan, Selection
from pipelines.rescore.rescorer import Outcome
from pipelines.scan.events import AGGREGATE_TYPE, ScanRescored
from pipelines.scan.machine import Job
from pipelines.scan.store import job_from_row

_FILTER_SQL = {
    "major": ("j.vision_result->'classification'->>'major_category' = ${n}", None),
    "middle": ("j.vision_result->'classification'->>'middle_category' = ${n}", None),
    "rule": ("j.rule_id = ${n}", "j.rule_id IS NULL"),
    "reward": ("j.reward->>'code' = ${n}", "j.reward IS NULL"),
    "user": ("j.user_id = ${n}", None),
    "model": ("j.model = ${n}", None),
}

_CANDIDATES = """
SELECT j.job_id, coalesce(r.status = 'done', false) AS done
FROM scan_jobs j
LEFT JOIN scan_rescorings r ON r.run_id = $1 AND r.job_id = j.job_id
WHERE j.status = 'completed' AND j.vision_result IS NOT NULL {conditions}
ORDER BY j.created_at, j.job_id
"""

_RECORD = """
INSERT INTO scan_rescorings AS s (run_id, job_id, status, stages, model, rules_version,
                                  previous_outcome, new_outcome, changed, requests, tokens, error)
SELECT $1, r.job_id, r.status, $2, r.model, $3, r.previous::jsonb, r.new::jsonb,
       string_to_array(r.changed, ','), r.requests, r.tokens, r.error
FROM unnest($4::uuid[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::int[],
            $11::int[], $12::text[])
     AS r(job_id, status, model, previous, new, changed, requests, tokens, error)
ON CONFLICT (run_id, job_id) DO UPDATE
SET status = EXCLUDED.status, model = EXCLUDED.model, new_outcome = EXCLUDED.new_outcome,
    changed = EXCLUDED.changed, requests = s.requests + EXCLUDED.requests,
    tokens = s.tokens + EXCLUDED.tokens, error = EXCLUDED.error, rescored_at = now()
WHERE s.status <> 'done'
RETURNING s.job_id, s.status
"""

_BUMP = """
UPDATE scan_jobs SET version = version + 1 WHERE job_id = ANY($1::uuid[])
RETURNING job_id, version
"""


@dataclass(frozen=True)
class Candidate:
    job_id: str
    done: bool
    """Already finished in this run (a rerun skips it)."""


@dataclass(frozen=True)
class RowResult:
    """What one row of a batch ended with; ``current`` is None when its model calls failed."""

    job: Job
    model: str
    previous: Outcome
    current: Outcome | None
    usage: Usage
    error: str | None = None

    @property
    def changed(self) -> list[str]:
        return self.current.changes_from(self.previous) if self.current else []

    @property
    def status(self) -> str:
        return "done" if self.current is not None else "failed"


def _where(selection: Selection, first_param: int) -> tuple[str, list[Any]]:
    conditions: list[str] = []
    params: list[Any] = []

    def param(value: Any) -> str:
        params.append(value)
        return f"${first_param + len(params) - 1}"

    if selection.since is not None:
        conditions.append(f"j.created_at >= {param(selection.since)}")
    if selection.until is not None:
        conditions.append(f"j.created_at < {param(selection.until)}")
    for item in selection.filters:
        conditions.append(_condition(item, param))
    return "".join(f" AND {c}" for c in conditions), params


def _condition(item: Filter, param: Any) -> str:
    template, when_none = _FILTER_SQL[item.key]
    if when_none is not None and item.value.lower() == "none":
        return when_none
    return str(template.replace("${n}", param(item.value)))


async def candidates(pool: asyncpg.Pool, run_id: str, selection: Selection) -> list[Candidate]:
    """The completed scans the selection covers, oldest first, with whether ``run_id`` has
    finished each already."""
    conditions, params = _where(selection, first_param=2)
    sql = _CANDIDATES.format(conditions=conditions)
    if selection.limit is not None:
        sql += f" LIMIT {int(selection.limit)}"
    rows = await pool.fetch(sql, run_id, *params)
    return [Candidate(str(r["job_id"]), bool(r["done"])) for r in rows]


async def load_pending(pool: asyncpg.Pool, run_id: str, job_ids: Sequence[str]) -> list[Job]:
    """The stored jobs among ``job_ids`` that ``run_id`` has not finished (checked again here:
    another invocation of the run may have finished some since the candidates were listed)."""
    rows = await pool.fetch(
        """
        SELECT j.* FROM scan_jobs j
        WHERE j.job_id = ANY($2::uuid[]) AND NOT EXISTS (
            SELECT 1 FROM scan_rescorings r
            WHERE r.run_id = $1 AND r.job_id = j.job_id AND r.status = 'done')
        """,
        run_id,
        [uuid.UUID(job_id) for job_id in job_ids],
    )
    return [job_from_row(row) for row in rows]


def _json(outcome: Outcome | None) -> str | None:
    return json.dumps(outcome.as_dict(), ensure_ascii=False) if outcome else None


async def record(pool: asyncpg.Pool, plan: Plan, results: Sequence[RowResult]) -> set[str]:
    """Store ``results`` and their ``ScanRescored`` events in one transaction; returns the job
    ids whose row this call stored (rows another invocation finished first are not among them)."""
    if not results:
        return set()
    async with pool.acquire() as conn, conn.transaction():
        stored = await conn.fetch(
            _RECORD,
            plan.run_id,
            ",".join(plan.stages),
            plan.rules_version,
            [r.job.job_id for r in results],
            [r.status for r in results],
            [r.model for r in results],
            [_json(r.previous) for r in results],
            [_json(r.current) for r in results],
            [",".join(r.changed) for r in results],
            [r.usage.requests for r in results],
            [r.usage.tokens for r in results],
            [r.error for r in results],
        )
        done = {str(row["job_id"]) for row in stored if row["status"] == "done"}
        changed = [r for r in results if r.changed and str(r.job.job_id) in done]
        await _append_events(conn, plan, changed)
    return {str(row["job_id"]) for row in stored}


async def _append_events(
    conn: asyncpg.Connection, plan: Plan, results: Sequence[RowResult]
) -> None:
    if not results:
        return
    versions = {
        row["job_id"]: row["version"]
        for row in await conn.fetch(_BUMP, [r.job.job_id for r in results])
    }
    await append(
        conn,
        [
            EventEnvelope.of(
                rescored_event(plan, result),
                aggregate_type=AGGREGATE_TYPE,
                aggregate_id=str(result.job.job_id),
                aggregate_version=versions[result.job.job_id],
                metadata=EventMetadata(
                    traceparent=result.job.traceparent,
                    correlation_id=str(result.job.job_id),
                    user_id=result.job.user_id,
                ),
            )
            for result in results
        ],
    )


def rescored_event(plan: Plan, result: RowResult) -> ScanRescored:
    assert result.current is not None  # only rows with a new outcome change
    return ScanRescored(
        scan_id=str(result.job.job_id),
        user_id=result.job.user_id,
        run_id=plan.run_id,
        stages=list(plan.stages),
        model=result.model,
        rules_version=plan.rules_version,
        previous=result.previous.as_dict(),
        current=result.current.as_dict(),
        changed=result.changed,
    )
