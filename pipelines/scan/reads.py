"""The scan pipeline's read side: ownership, snapshots and results from the job rows.

Used by the read service (:mod:`pipelines.read_service`), never by Ray Serve: a stream or a
result read costs the pipeline's model-serving processes nothing.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from pipelines.jobs.progress import ProgressEvent
from pipelines.jobs.status import JobStatus
from pipelines.jobs.streams import not_yours
from pipelines.rules.rulebook import RuleBook
from pipelines.scan import views
from pipelines.scan.machine import KIND
from pipelines.scan.store import fetch_job


class ScanReads:
    """A :class:`~pipelines.jobs.streams.JobReader` of scan jobs, plus the result read."""

    def __init__(self, pool: asyncpg.Pool, rules: RuleBook) -> None:
        self._pool, self._rules = pool, rules

    async def owner(self, job_id: uuid.UUID) -> str | None:
        job = await fetch_job(self._pool, job_id)
        return job.user_id if job else None

    async def snapshot(self, job_id: uuid.UUID) -> ProgressEvent | None:
        job = await fetch_job(self._pool, job_id)
        return views.snapshot_event(job, self._rules) if job else None

    async def catch_up(self, job_id: uuid.UUID, after: str | None) -> list[ProgressEvent]:
        job = await fetch_job(self._pool, job_id)
        return views.stored_events(job, self._rules, after) if job else []

    async def result(self, user_id: str, job_id: uuid.UUID) -> tuple[int, dict[str, Any]]:
        """``GET /result``: 200 with the result, 202 while running, 422 for a dead-lettered job
        (the web client treats anything but 200 as an error, which is what it should show; the
        body says why and that it can be re-run), 404 for another user's or no job."""
        job = await fetch_job(self._pool, job_id)
        if job is None or job.user_id != user_id:
            raise not_yours(KIND, job_id)
        return _STATUS.get(job.status, 202), views.final(job, self._rules)


_STATUS = {JobStatus.COMPLETED: 200, JobStatus.FAILED: 422}
