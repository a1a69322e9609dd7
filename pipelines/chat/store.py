"""Durable chat jobs in ``eco2_chat``, and the conversation writes that go with them.

Contract:

* :meth:`ChatStore.submit` stores the job, the user's message and ``MessagePosted`` in ONE
  transaction; the same idempotency key from the same user returns the first job (created=False)
  and stores nothing more;
* :meth:`ChatStore.advance` stores a transition in ONE transaction: the job's columns (checking
  its ``version``: a stale one raises :class:`~eco2.errors.Conflict` and changes nothing), the
  chat's events, the assistant's message and a new summary when the transition has them;
* jobs are leased like scan's (:class:`~pipelines.jobs.leases.TableLeases`); a job taken over
  after its runner died starts a new attempt, so its stream's event ids never repeat an earlier
  runner's.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

import asyncpg

from domains.chat import repository as chats
from domains.chat.model import Chat, Message
from eco2.errors import Conflict, InvalidInput
from eco2.events import EventMetadata
from pipelines.chat.machine import ChatJob, Commit
from pipelines.jobs.leases import TableLeases
from pipelines.jobs.status import JobStatus
from pipelines.jobs.tracing import commit_span

_JSON_COLUMNS = frozenset(
    {"classification", "vision_result", "context", "metadata", "needs_input", "user_input"}
)


def job_from_row(row: asyncpg.Record) -> ChatJob:
    fields = {name: row[name] for name in ChatJob.__dataclass_fields__}
    fields["status"] = JobStatus(row["status"])
    return ChatJob(**fields)


async def fetch_job(pool: asyncpg.Pool | asyncpg.Connection, job_id: uuid.UUID) -> ChatJob | None:
    row = await pool.fetchrow("SELECT * FROM chat_jobs WHERE job_id = $1", job_id)
    return job_from_row(row) if row else None


def _meta(job: ChatJob) -> EventMetadata:
    return EventMetadata(
        traceparent=job.traceparent, correlation_id=str(job.job_id), user_id=job.user_id
    )


class ChatStore:
    def __init__(self, pool: asyncpg.Pool, *, owner: str, lease_s: float) -> None:
        self.pool, self.owner, self.lease_s = pool, owner, lease_s
        self.leases = TableLeases(pool, "chat_jobs", job_from_row, owner=owner, lease_s=lease_s)

    async def ping(self) -> None:
        await self.pool.fetchval("SELECT 1")

    async def submit(
        self,
        *,
        user_id: str,
        chat_id: uuid.UUID,
        idempotency_key: str | None,
        message: str,
        image_url: str | None,
        user_location: dict[str, float] | None,
        model: str,
        client_model: str,
        traceparent: str | None,
    ) -> tuple[ChatJob, bool]:
        """Store the job with the user's message; :class:`NotFound` for another user's chat."""
        job_id = uuid.uuid4()
        async with self.pool.acquire() as conn, conn.transaction():
            chat = await chats.owned(conn, user_id, chat_id)
            row = await conn.fetchrow(
                """
                INSERT INTO chat_jobs (job_id, chat_id, user_id, idempotency_key, message,
                    image_url, user_location, model, client_model, status, stage, version,
                    traceparent, lease_owner, lease_expires_at)
                VALUES ($1, $2, $3, $4, $5, $6, $7::text::jsonb, $8, $9, 'queued', 'queued', 1,
                        $10, $11, now() + make_interval(secs => $12))
                ON CONFLICT (user_id, idempotency_key) DO NOTHING
                RETURNING *
                """,
                job_id,
                chat_id,
                user_id,
                idempotency_key,
                message,
                image_url,
                json.dumps(user_location) if user_location else None,
                model,
                client_model,
                traceparent,
                self.owner,
                self.lease_s,
            )
            if row is None:
                assert idempotency_key is not None  # only a repeated key conflicts
                existing = await self.by_key(user_id, idempotency_key, conn)
                assert existing is not None  # the conflicting row exists; jobs are never deleted
                return existing, False
            job = job_from_row(row)
            posted = await chats.add_message(
                conn, chat, job_id=job_id, role="user", content=message, image_url=image_url
            )
            row = await conn.fetchrow(
                "UPDATE chat_jobs SET user_message_id = $2 WHERE job_id = $1 RETURNING *",
                job_id,
                posted.message_id,
            )
            await chats.append(conn, chat_id, [chats.posted(chat, posted, user_id)], _meta(job))
        return job_from_row(row), True

    async def by_key(
        self,
        user_id: str,
        idempotency_key: str,
        conn: asyncpg.Pool | asyncpg.Connection | None = None,
    ) -> ChatJob | None:
        """The job ``user_id`` posted with ``idempotency_key``, if any."""
        row = await (conn or self.pool).fetchrow(
            "SELECT * FROM chat_jobs WHERE user_id = $1 AND idempotency_key = $2",
            user_id,
            idempotency_key,
        )
        return None if row is None else job_from_row(row)

    async def advance(self, job: ChatJob, commit: Commit) -> ChatJob:
        """Store ``commit`` for ``job`` (see the module docstring)."""
        names = list(commit.columns)
        assignments = ", ".join(
            f"{name} = ${i}::text::jsonb" if name in _JSON_COLUMNS else f"{name} = ${i}"
            for i, name in enumerate(names, start=3)
        )
        values = [
            json.dumps(value, ensure_ascii=False) if name in _JSON_COLUMNS else value
            for name, value in commit.columns.items()
        ]
        with commit_span("eco2_chat", "chat_jobs", str(job.job_id)):
            async with self.pool.acquire() as conn, conn.transaction():
                row = await conn.fetchrow(
                    f"UPDATE chat_jobs SET {assignments}, version = version + 1, "
                    "updated_at = now() WHERE job_id = $1 AND version = $2 RETURNING *",
                    job.job_id,
                    job.version,
                    *values,
                )
                if row is None:
                    raise Conflict(f"chat job {job.job_id} moved past version {job.version}")
                chat = await conn.fetchrow("SELECT * FROM chats WHERE chat_id = $1", job.chat_id)
                if commit.assistant is not None and chat is not None:
                    await chats.add_message(
                        conn,
                        Chat(**{k: chat[k] for k in Chat.__dataclass_fields__}),
                        job_id=job.job_id,
                        role="assistant",
                        content=commit.assistant,
                        intent=job.intent,
                        metadata=_answer_metadata(job, commit),
                    )
                if commit.summary is not None:
                    summary, upto = commit.summary
                    await chats.store_summary(conn, job.chat_id, summary, upto, _meta(job))
                await chats.append(conn, job.chat_id, commit.events, _meta(job))
        return job_from_row(row)

    async def conversation(self, job: ChatJob) -> tuple[Chat, list[Message]]:
        """The chat and its messages after its summary, without this job's own."""
        async with self.pool.acquire() as conn:
            chat = await chats.owned(conn, job.user_id, job.chat_id)
            messages = await chats.messages_after(conn, job.chat_id, chat.summarised_upto)
        return chat, [m for m in messages if m.job_id != job.job_id]

    async def user_message_time(self, job: ChatJob) -> datetime:
        at: datetime = await self.pool.fetchval(
            "SELECT created_at FROM chat_messages WHERE job_id = $1 AND role = 'user'", job.job_id
        )
        return at

    async def ask(self, job: ChatJob, question: dict[str, Any]) -> None:
        """Record that the job waits for the user (``needs_input``)."""
        await self.pool.execute(
            "UPDATE chat_jobs SET needs_input = $2::text::jsonb, user_input = NULL "
            "WHERE job_id = $1",
            job.job_id,
            json.dumps(question, ensure_ascii=False),
        )

    async def record_input(self, user_id: str, job_id: uuid.UUID, answer: dict[str, Any]) -> bool:
        """Store the user's reply to ``needs_input``; False when the job is not waiting."""
        done = await self.pool.fetchval(
            "UPDATE chat_jobs SET user_input = $3::text::jsonb WHERE job_id = $1 AND user_id = $2 "
            "AND needs_input IS NOT NULL AND user_input IS NULL AND stage = 'classified' "
            "AND status IN ('queued', 'running') RETURNING 1",
            job_id,
            user_id,
            json.dumps(answer, ensure_ascii=False),
        )
        return bool(done)

    async def user_input(self, job_id: uuid.UUID) -> dict[str, Any] | None:
        value = await self.pool.fetchval(
            "SELECT user_input FROM chat_jobs WHERE job_id = $1", job_id
        )
        return dict(value) if isinstance(value, dict) else None


def _answer_metadata(job: ChatJob, commit: Commit) -> dict[str, Any]:
    context = job.context or {}
    metadata: dict[str, Any] = {
        "tools": context.get("tools", {}),
        "missing": context.get("missing", []),
        "model": job.client_model,
    }
    if commit.columns.get("status") == JobStatus.FAILED.value:
        metadata["error"] = commit.columns.get("error")
    return metadata


def location_of(data: Any) -> dict[str, float]:
    """A ``{latitude, longitude}`` reply (HITL input or the message's ``user_location``)."""
    try:
        latitude, longitude = float(data["latitude"]), float(data["longitude"])
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInput(
            'a location is {"latitude": <number>, "longitude": <number>}', code="bad_location"
        ) from exc
    return {"latitude": latitude, "longitude": longitude}
