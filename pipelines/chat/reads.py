"""The chat pipeline's read side: ownership, snapshots and results from the job rows, for the
read service (:mod:`pipelines.read_service`), never Ray Serve."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from pipelines.chat import views
from pipelines.chat.machine import KIND, current_node
from pipelines.chat.store import fetch_job
from pipelines.jobs.progress import ProgressEvent
from pipelines.jobs.status import JobStatus
from pipelines.jobs.streams import not_yours

_STATUS = {JobStatus.COMPLETED: 200, JobStatus.FAILED: 422}


class ChatReads:
    """A :class:`~pipelines.jobs.streams.JobReader` of chat jobs."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def owner(self, job_id: uuid.UUID) -> str | None:
        job = await fetch_job(self._pool, job_id)
        return job.user_id if job else None

    async def snapshot(self, job_id: uuid.UUID) -> ProgressEvent | None:
        job = await fetch_job(self._pool, job_id)
        return views.snapshot_event(job) if job else None

    async def catch_up(self, job_id: uuid.UUID, after: str | None) -> list[ProgressEvent]:
        job = await fetch_job(self._pool, job_id)
        return views.stored_events(job, after) if job else []

    async def result(self, user_id: str, job_id: uuid.UUID) -> tuple[int, dict[str, Any]]:
        """200 answered (or cancelled), 202 while running (with the node it is in), 422 when it
        failed (the body says why), 404 for another user's job or none."""
        job = await fetch_job(self._pool, job_id)
        if job is None or job.user_id != user_id:
            raise not_yours(KIND, job_id)
        body = views.result(job)
        if job.unfinished:
            body["current_stage"] = current_node(job)
        return _STATUS.get(job.status, 202), body
