"""The leases of one jobs table (``scan_jobs``, ``chat_jobs``): who runs a job, until when.

A runner holds a lease on each job it runs and renews them in batches; a job whose lease
expired (its runner died) is claimed by another runner as a new ``attempt``; a dead-lettered
job is moved back to running for reprocessing. The table needs the columns ``job_id``,
``status``, ``attempt``, ``error``, ``failed_stage``, ``lease_owner``, ``lease_expires_at`` and
``updated_at``; every query touches only the rows of unfinished (or, to reprocess, failed) jobs.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

import asyncpg

J = TypeVar("J")

_RENEW = """
UPDATE {table} SET lease_expires_at = now() + make_interval(secs => $3)
WHERE job_id = ANY($1) AND lease_owner = $2 AND status IN ('queued', 'running')
"""

_CLAIM_EXPIRED = """
UPDATE {table}
SET lease_owner = $1, lease_expires_at = now() + make_interval(secs => $2),
    attempt = attempt + 1
WHERE job_id IN (
    SELECT job_id FROM {table}
    WHERE status IN ('queued', 'running') AND lease_expires_at < now()
    ORDER BY lease_expires_at LIMIT $3 FOR UPDATE SKIP LOCKED)
RETURNING *
"""

_RECLAIM_FAILED = """
UPDATE {table} SET status = 'running', attempt = attempt + 1, error = NULL,
       failed_stage = NULL, lease_owner = $1,
       lease_expires_at = now() + make_interval(secs => $2), updated_at = now()
WHERE status = 'failed' AND ($3::uuid IS NULL OR job_id = $3)
RETURNING *
"""


class TableLeases(Generic[J]):
    """:class:`pipelines.jobs.tasks.Leases` over one table; ``job`` reads a returned row."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        table: str,
        job: Callable[[asyncpg.Record], J],
        *,
        owner: str,
        lease_s: float,
    ) -> None:
        if not table.isidentifier():
            raise ValueError(f"not a table name: {table!r}")
        self._pool, self._job, self.owner, self.lease_s = pool, job, owner, lease_s
        self._renew = _RENEW.format(table=table)
        self._claim_expired = _CLAIM_EXPIRED.format(table=table)
        self._reclaim_failed = _RECLAIM_FAILED.format(table=table)

    async def renew_leases(self, job_ids: Sequence[uuid.UUID]) -> None:
        if job_ids:
            await self._pool.execute(self._renew, list(job_ids), self.owner, self.lease_s)

    async def claim_expired(self, limit: int = 50) -> list[J]:
        """Take over unfinished jobs whose lease expired (their runner died)."""
        rows = await self._pool.fetch(self._claim_expired, self.owner, self.lease_s, limit)
        return [self._job(row) for row in rows]

    async def reclaim_failed(self, job_id: uuid.UUID | None = None) -> list[J]:
        """Move failed jobs (one, or all) back to running under this runner."""
        rows = await self._pool.fetch(self._reclaim_failed, self.owner, self.lease_s, job_id)
        return [self._job(row) for row in rows]
