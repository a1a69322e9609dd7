"""The character domain's adapter on ``eco2_character`` (asyncpg).

:func:`grant` is the one write path of an ownership (used by the reward reaction and by
onboarding). It runs on a connection inside the caller's transaction and writes the ownership,
the user's new aggregate version and the event together. The user's row is locked first, so two
grants of the same user are serialised and the existing ownership read under that lock is current;
``UNIQUE (user_id, character_code)`` guards the invariant on top.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from typing import Any

import asyncpg

from domains.character import model
from domains.character.events import AGGREGATE_TYPE
from domains.character.model import Character, Grant, GrantOutcome, Ownership, Source
from eco2 import eventstore
from eco2.db import transaction as db_transaction
from eco2.errors import Conflict
from eco2.events import Event, EventMetadata

_CATALOG = """
SELECT code, name, match_label, type, dialog, cdn_code FROM character_catalog ORDER BY position
"""
_CHARACTER = """
SELECT code, name, match_label, type, dialog, cdn_code FROM character_catalog WHERE code = $1
"""
# DO UPDATE (not DO NOTHING) so the row comes back locked even when it already existed.
_LOCK_USER = """
INSERT INTO character_users (user_id) VALUES ($1)
ON CONFLICT (user_id) DO UPDATE SET user_id = EXCLUDED.user_id
RETURNING version, deleted_at
"""
_BUMP = "UPDATE character_users SET version = version + 1 WHERE user_id = $1 RETURNING version"
_INSERT_OWNERSHIP = """
INSERT INTO character_ownerships (id, user_id, character_code, source, scan_id, acquired_at)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (user_id, character_code) DO NOTHING
RETURNING id
"""
_OWNERSHIP_COLUMNS = """
o.id, o.user_id, o.source, o.scan_id, o.acquired_at, o.status,
c.code, c.name, c.match_label, c.type, c.dialog, c.cdn_code
"""
_OWNERSHIP = f"""
SELECT {_OWNERSHIP_COLUMNS} FROM character_ownerships o
JOIN character_catalog c ON c.code = o.character_code
WHERE o.user_id = $1 AND o.character_code = $2
"""
_OWNED = f"""
SELECT {_OWNERSHIP_COLUMNS} FROM character_ownerships o
JOIN character_catalog c ON c.code = o.character_code
WHERE o.user_id = $1 AND o.status = 'owned'
ORDER BY o.acquired_at, c.position
"""
_MARK_DELETED = """
INSERT INTO character_users (user_id, deleted_at) VALUES ($1, $2)
ON CONFLICT (user_id)
DO UPDATE SET deleted_at = COALESCE(character_users.deleted_at, EXCLUDED.deleted_at)
"""


def transaction(pool: asyncpg.Pool) -> AbstractAsyncContextManager[asyncpg.Connection]:
    """A connection in a transaction; an unreachable database is :class:`Unavailable`."""
    return db_transaction(pool, "the character database")


def _character(row: Any) -> Character:
    return Character(
        code=row["code"],
        name=row["name"],
        match_label=row["match_label"],
        type=row["type"],
        dialog=row["dialog"],
        cdn_code=row["cdn_code"],
    )


def _ownership(row: Any) -> Ownership:
    return Ownership(
        id=row["id"],
        user_id=row["user_id"],
        character=_character(row),
        source=Source(row["source"]),
        scan_id=row["scan_id"],
        acquired_at=row["acquired_at"],
        status=row["status"],
    )


async def catalog(conn: asyncpg.Connection | asyncpg.Pool) -> list[Character]:
    """All characters in catalogue order (이코 first)."""
    return [_character(r) for r in await conn.fetch(_CATALOG)]


async def owned_by(conn: asyncpg.Connection | asyncpg.Pool, user_id: str) -> list[Ownership]:
    """The user's characters with status ``owned``, oldest first."""
    return [_ownership(r) for r in await conn.fetch(_OWNED, user_id)]


async def mark_user_deleted(conn: asyncpg.Connection, user_id: str, deleted_at: datetime) -> None:
    """Remember that the user is gone (the first deletion time wins); later grants are rejected."""
    await conn.execute(_MARK_DELETED, user_id, deleted_at)


async def grant(conn: asyncpg.Connection, request: Grant, metadata: EventMetadata) -> GrantOutcome:
    """Judge and apply one grant on ``conn`` (inside a transaction), see :func:`model.decide_grant`.

    Writes ``CharacterAcquired`` with a new ownership, ``CharacterGrantRejected`` for a refused
    grant, nothing for an owned character. Raises ``eco2.errors.Conflict`` (retriable) if another
    writer got in between (a stored aggregate version or ownership).
    """
    user = await conn.fetchrow(_LOCK_USER, request.user_id)
    found = await conn.fetchrow(_CHARACTER, request.character_code)
    existing = await conn.fetchrow(_OWNERSHIP, request.user_id, request.character_code)
    decision = model.decide_grant(
        request,
        user_deleted=user["deleted_at"] is not None,
        character=_character(found) if found is not None else None,
        existing=_ownership(existing) if existing is not None else None,
        now=datetime.now(UTC),
    )
    if decision.outcome.granted:
        assert decision.outcome.ownership is not None
        await _insert(conn, decision.outcome.ownership)
    if decision.event is not None:
        await _emit(conn, request.user_id, decision.event, metadata)
    return decision.outcome


async def _insert(conn: asyncpg.Connection, ownership: Ownership) -> None:
    inserted = await conn.fetchval(
        _INSERT_OWNERSHIP,
        ownership.id,
        ownership.user_id,
        ownership.character.code,
        ownership.source.value,
        ownership.scan_id,
        ownership.acquired_at,
    )
    if inserted is None:  # only possible for a writer that skipped the user lock
        raise Conflict(f"ownership {ownership.id} was recorded concurrently; retry")


async def _emit(
    conn: asyncpg.Connection, user_id: str, event: Event, metadata: EventMetadata
) -> None:
    version = await conn.fetchval(_BUMP, user_id)
    await eventstore.append_versions(conn, AGGREGATE_TYPE, user_id, version, [event], metadata)
