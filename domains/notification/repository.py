"""The notification database (``eco2_notification``): writing notices and reading a user's feed.

Every read filters on ``user_id``: a user only ever reads their own notices. Writing a notice also
announces it on the PostgreSQL channel :data:`CHANNEL` in the same transaction; PostgreSQL
delivers a NOTIFY only when that transaction commits, so live subscribers never hear of a notice
that rolled back.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg

from domains.notification.model import FeedPosition, Notice, StoredNotice
from eco2.errors import Unavailable

CHANNEL = "eco2_notifications"
"""The NOTIFY channel; each payload is ``{"user_id": ..., "id": ...}`` of one new notice."""

# Inserted rows only (ON CONFLICT skips a notice that already exists) are announced, so a
# re-applied event neither duplicates a notice nor announces it twice. JSON arrives as text so
# the statement works on connections without a jsonb codec (the consumer runtime's pool).
_INSERT = """
WITH added AS (
    INSERT INTO notifications (id, user_id, kind, title, body, data)
    SELECT n.id, n.user_id, n.kind, n.title, n.body, n.data::jsonb
    FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[])
         WITH ORDINALITY AS n(id, user_id, kind, title, body, data, ord)
    ORDER BY n.ord
    ON CONFLICT (id) DO NOTHING
    RETURNING id, user_id
)
SELECT count(pg_notify($7, json_build_object('user_id', user_id, 'id', id)::text)) FROM added
"""

_COLUMNS = "id, user_id, kind, title, body, data::text AS data, created_at, read_at"
_NEWEST_FIRST = "ORDER BY created_at DESC, id DESC"
_PAGE = f"SELECT {_COLUMNS} FROM notifications WHERE user_id = $1 {_NEWEST_FIRST} LIMIT $2"
_PAGE_AFTER = f"""
SELECT {_COLUMNS} FROM notifications WHERE user_id = $1 AND (created_at, id) < ($3, $4)
{_NEWEST_FIRST} LIMIT $2
"""
_NEWER = f"""
SELECT {_COLUMNS} FROM notifications WHERE user_id = $1 AND (created_at, id) > ($3, $4)
{_NEWEST_FIRST} LIMIT $2
"""
_UNREAD = f"""
SELECT {_COLUMNS} FROM notifications WHERE user_id = $1 AND read_at IS NULL
{_NEWEST_FIRST} LIMIT $2
"""
_ONE = f"SELECT {_COLUMNS} FROM notifications WHERE user_id = $1 AND id = $2"
_MARK_READ = """
UPDATE notifications SET read_at = coalesce(read_at, now())
WHERE user_id = $1 AND id = $2 RETURNING id
"""

_INFRASTRUCTURE = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
)


async def insert_notices(conn: Any, notices: Sequence[Notice]) -> int:
    """Write ``notices`` in order on ``conn`` (inside the caller's transaction) and announce the
    new ones on :data:`CHANNEL`; return how many were new. Idempotent per notice id."""
    if not notices:
        return 0
    columns: list[list[Any]] = [[], [], [], [], [], []]
    for n in notices:
        row = (n.id, n.user_id, n.kind, n.title, n.body, json.dumps(n.data, ensure_ascii=False))
        for column, value in zip(columns, row, strict=True):
            column.append(value)
    added: int = await conn.fetchval(_INSERT, *columns, CHANNEL)
    return added


def _stored(row: asyncpg.Record) -> StoredNotice:
    return StoredNotice(
        id=row["id"],
        user_id=row["user_id"],
        kind=row["kind"],
        title=row["title"],
        body=row["body"],
        data=json.loads(row["data"]),
        created_at=row["created_at"],
        read_at=row["read_at"],
    )


class NotificationRepository:
    """Reads and read-marks on a pool of ``eco2_notification``.

    Raises :class:`Unavailable` when the database cannot be reached.
    """

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def _fetch(self, query: str, *args: Any) -> list[StoredNotice]:
        try:
            rows = await self.pool.fetch(query, *args)
        except _INFRASTRUCTURE as exc:
            raise Unavailable(f"the notification database is unreachable: {exc}") from exc
        return [_stored(r) for r in rows]

    async def page(
        self, user_id: str, limit: int, after: FeedPosition | None
    ) -> list[StoredNotice]:
        """Up to ``limit`` notices of ``user_id``, newest first, older than ``after`` if given."""
        if after is None:
            return await self._fetch(_PAGE, user_id, limit)
        return await self._fetch(_PAGE_AFTER, user_id, limit, after.created_at, after.id)

    async def newer_than(
        self, user_id: str, position: FeedPosition, limit: int
    ) -> tuple[list[StoredNotice], bool]:
        """The newest ``limit`` notices after ``position``, oldest first, and whether more
        than ``limit`` were newer (the oldest of them are then left out)."""
        rows = await self._fetch(_NEWER, user_id, limit + 1, position.created_at, position.id)
        return rows[:limit][::-1], len(rows) > limit

    async def latest_unread(self, user_id: str, limit: int) -> list[StoredNotice]:
        """The newest ``limit`` unread notices of ``user_id``, oldest first."""
        return (await self._fetch(_UNREAD, user_id, limit))[::-1]

    async def get(self, user_id: str, notice_id: uuid.UUID) -> StoredNotice | None:
        """``user_id``'s notice ``notice_id``; None if unknown or someone else's."""
        rows = await self._fetch(_ONE, user_id, notice_id)
        return rows[0] if rows else None

    async def mark_read(self, user_id: str, notice_id: uuid.UUID) -> bool:
        """Mark ``user_id``'s notice read (the first read time is kept); False if unknown or
        someone else's."""
        try:
            found = await self.pool.fetchval(_MARK_READ, user_id, notice_id)
        except _INFRASTRUCTURE as exc:
            raise Unavailable(f"the notification database is unreachable: {exc}") from exc
        return found is not None
