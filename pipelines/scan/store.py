"""Durable scan jobs: the ``scan_jobs`` aggregate and its events, in the scan database.

Contract:

* Every stage commit is ONE statement that advances the job row (checking the expected
  ``version``) and inserts the stage's events into ``event_store``, so the result and its event
  commit together or not at all. A stage whose result is committed is never re-run.
* A commit against a stale ``version`` raises :class:`~eco2.errors.Conflict` and changes nothing
  (another runner owns the job now).
* Jobs are leased to a runner (``lease_owner``/``lease_expires_at``); leases of running jobs are
  renewed in batches, and a job whose runner died is claimed by another as a new attempt
  (:class:`~pipelines.jobs.leases.TableLeases`).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg

from eco2.errors import Conflict
from eco2.events import Event, EventMetadata
from pipelines.jobs.leases import TableLeases
from pipelines.jobs.status import JobStatus
from pipelines.jobs.tracing import commit_span, current_or
from pipelines.scan.events import AGGREGATE_TYPE, RewardRevoked, ScanRequested
from pipelines.scan.machine import Job


def job_from_row(row: asyncpg.Record) -> Job:
    fields = {name: row[name] for name in Job.__dataclass_fields__}
    fields["status"] = JobStatus(row["status"])
    return Job(**fields)


async def fetch_job(pool: asyncpg.Pool, job_id: uuid.UUID) -> Job | None:
    """The stored job, or None (reads only: the read side uses it without a runner)."""
    row = await pool.fetchrow("SELECT * FROM scan_jobs WHERE job_id = $1", job_id)
    return job_from_row(row) if row else None


_ADVANCE = """
WITH u AS (
    UPDATE scan_jobs SET {assignments}, version = version + cardinality($3::text[]),
                         updated_at = now()
    WHERE job_id = $1 AND version = $2
    RETURNING *
), e AS (
    INSERT INTO event_store (event_id, aggregate_type, aggregate_id, aggregate_version,
                             event_type, schema_version, payload, metadata)
    SELECT gen_random_uuid(), '{aggregate}', u.job_id::text, $2 + ev.ord, ev.type, ev.sv,
           ev.payload::jsonb, $6::text::jsonb
    FROM u, unnest($3::text[], $4::int[], $5::text[]) WITH ORDINALITY AS ev(type, sv, payload, ord)
    RETURNING 1
)
SELECT u.* FROM u
"""

_SUBMIT = """
WITH j AS (
    INSERT INTO scan_jobs (job_id, user_id, idempotency_key, image_url, user_input, model,
                           status, stage, version, traceparent, lease_owner, lease_expires_at)
    VALUES ($1, $2, $3, $4, $5, $6, 'queued', 'queued', 1, $7, $8,
            now() + make_interval(secs => $9))
    ON CONFLICT (user_id, idempotency_key) DO NOTHING
    RETURNING *
), e AS (
    INSERT INTO event_store (event_id, aggregate_type, aggregate_id, aggregate_version,
                             event_type, schema_version, payload, metadata)
    SELECT gen_random_uuid(), '{aggregate}', j.job_id::text, 1, $10, $11,
           $12::text::jsonb, $13::text::jsonb
    FROM j RETURNING 1
)
SELECT * FROM j
""".replace("{aggregate}", AGGREGATE_TYPE)


def _payload(event: Event) -> str:
    return json.dumps(event.model_dump(mode="json"), ensure_ascii=False)


class ScanStore:
    """Persistence of scan jobs for one runner (``owner``), on the scan database's pool."""

    def __init__(self, pool: asyncpg.Pool, *, owner: str, lease_s: float = 30.0) -> None:
        self._pool = pool
        self.owner = owner
        self.lease_s = lease_s
        self.leases = TableLeases(pool, "scan_jobs", job_from_row, owner=owner, lease_s=lease_s)

    async def submit(
        self,
        *,
        user_id: str,
        idempotency_key: str | None,
        image_url: str,
        user_input: str | None,
        model: str,
        traceparent: str | None,
    ) -> tuple[Job, bool]:
        """Store a new job with ``ScanRequested``; returns ``(job, created)``.

        The same ``idempotency_key`` from the same user returns the existing job, created=False.
        """
        job_id = uuid.uuid4()
        event = ScanRequested(
            scan_id=str(job_id),
            user_id=user_id,
            image_url=image_url,
            user_input=user_input,
            model=model,
        )
        meta = self._meta(traceparent, str(job_id), user_id)
        row = await self._pool.fetchrow(
            _SUBMIT,
            job_id,
            user_id,
            idempotency_key,
            image_url,
            user_input,
            model,
            traceparent,
            self.owner,
            self.lease_s,
            event.event_type,
            event.schema_version,
            _payload(event),
            meta,
        )
        if row is not None:
            return job_from_row(row), True
        assert idempotency_key is not None  # only a repeated key conflicts
        existing = await self.by_key(user_id, idempotency_key)
        assert existing is not None  # the conflicting row exists; jobs are never deleted
        return existing, False

    async def by_key(self, user_id: str, idempotency_key: str) -> Job | None:
        """The job ``user_id`` submitted with ``idempotency_key``, if any."""
        row = await self._pool.fetchrow(
            "SELECT * FROM scan_jobs WHERE user_id = $1 AND idempotency_key = $2",
            user_id,
            idempotency_key,
        )
        return None if row is None else job_from_row(row)

    async def get(self, job_id: uuid.UUID) -> Job | None:
        return await fetch_job(self._pool, job_id)

    async def ping(self) -> None:
        """Raise unless the scan database answers."""
        await self._pool.fetchval("SELECT 1")

    async def advance(self, job: Job, events: Sequence[Event], **columns: Any) -> Job:
        """Set ``columns`` on the job and append ``events`` in one statement.

        Raises :class:`Conflict` when the job moved on since ``job`` was read.
        """
        names = list(columns)
        assignments = ", ".join(f"{name} = ${i}" for i, name in enumerate(names, start=7))
        sql = _ADVANCE.format(assignments=assignments, aggregate=AGGREGATE_TYPE)
        with commit_span("eco2_scan", "scan_jobs", str(job.job_id)):
            row = await self._pool.fetchrow(
                sql,
                job.job_id,
                job.version,
                [e.event_type for e in events],
                [e.schema_version for e in events],
                [_payload(e) for e in events],
                # The events' trace continues from this commit (the relay publishes under it).
                self._meta(current_or(job.traceparent), str(job.job_id), job.user_id),
                *columns.values(),
            )
        if row is None:
            raise Conflict(f"scan job {job.job_id} moved past version {job.version}")
        return job_from_row(row)

    @staticmethod
    def _meta(traceparent: str | None, correlation_id: str, user_id: str) -> str:
        return EventMetadata(
            traceparent=traceparent, correlation_id=correlation_id, user_id=user_id
        ).model_dump_json(exclude_none=True)


_REVOKE = """
WITH u AS (
    UPDATE scan_jobs
    SET reward = NULL, version = version + 1, updated_at = now(),
        metadata = metadata || jsonb_build_object('reward_revoked', $3::text::jsonb)
    WHERE job_id = $1 AND user_id = $2 AND reward IS NOT NULL AND reward->>'code' = $4
    RETURNING job_id, version
), e AS (
    INSERT INTO event_store (event_id, aggregate_type, aggregate_id, aggregate_version,
                             event_type, schema_version, payload, metadata)
    SELECT gen_random_uuid(), '{aggregate}', u.job_id::text, u.version, $5, $6,
           $7::text::jsonb, $8::text::jsonb
    FROM u RETURNING 1
)
SELECT count(*) FROM u
""".replace("{aggregate}", AGGREGATE_TYPE)


async def revoke_reward(
    conn: asyncpg.Connection, event: RewardRevoked, metadata: EventMetadata
) -> bool:
    """Take back the reward of a completed scan and record ``RewardRevoked``, in one statement
    on ``conn`` (the caller's transaction). Returns False, changing nothing, when the job has no
    such reward (already revoked, or never granted): the compensation is idempotent."""
    detail = {"character_code": event.character_code, "reason": event.reason}
    changed = await conn.fetchval(
        _REVOKE,
        uuid.UUID(event.scan_id),
        event.user_id,
        json.dumps(detail, ensure_ascii=False),
        event.character_code,
        event.event_type,
        event.schema_version,
        _payload(event),
        metadata.model_dump_json(exclude_none=True),
    )
    return bool(changed)
