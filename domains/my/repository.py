"""The my domain's adapter on ``eco2_my`` (asyncpg).

Every read and write is keyed by the caller's user id; nothing here takes another user's id from
a request body. Writes that emit an event lock the profile row first (:func:`lock_profile`), bump
its ``version`` and append the event on the same connection, inside the caller's transaction.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any, TypeAlias

import asyncpg

from domains.my.events import AGGREGATE_TYPE
from domains.my.model import OwnedCharacter, Profile
from eco2 import eventstore
from eco2.db import transaction as db_transaction
from eco2.events import Event, EventMetadata

_PROFILE_COLUMNS = """
user_id, display_name, nickname, phone_number, provider, last_login_at, created_at, deleted_at,
version
"""
_SELECT_PROFILE = f"SELECT {_PROFILE_COLUMNS} FROM profiles WHERE user_id = $1"
_CREATE_PROFILE = f"""
INSERT INTO profiles (user_id, provider) VALUES ($1, $2)
ON CONFLICT (user_id) DO NOTHING RETURNING {_PROFILE_COLUMNS}
"""
# DO UPDATE (not DO NOTHING) so the row comes back locked even when it already existed.
_LOCK_PROFILE = f"""
INSERT INTO profiles (user_id, provider) VALUES ($1, $2)
ON CONFLICT (user_id) DO UPDATE SET provider = COALESCE(profiles.provider, EXCLUDED.provider)
RETURNING {_PROFILE_COLUMNS}
"""
_SIGNED_IN = """
INSERT INTO profiles (user_id, display_name, provider, last_login_at) VALUES ($1, $2, $3, $4)
ON CONFLICT (user_id) DO UPDATE SET
    display_name = COALESCE(EXCLUDED.display_name, profiles.display_name),
    provider = COALESCE(EXCLUDED.provider, profiles.provider),
    last_login_at = GREATEST(profiles.last_login_at, EXCLUDED.last_login_at)
"""
_EDIT = f"""
UPDATE profiles SET nickname = COALESCE($2, nickname), phone_number = COALESCE($3, phone_number)
WHERE user_id = $1 RETURNING {_PROFILE_COLUMNS}
"""
# Personal data goes with the account; the row stays as a tombstone (version, deleted_at).
_DELETE = """
UPDATE profiles SET deleted_at = $2, nickname = NULL, phone_number = NULL WHERE user_id = $1
"""
_BUMP = "UPDATE profiles SET version = version + 1 WHERE user_id = $1 RETURNING version"
_ADD_CHARACTER = """
INSERT INTO user_characters
    (user_id, character_code, character_id, name, type, dialog, source, acquired_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (user_id, character_code) DO NOTHING RETURNING 1
"""
_COUNT = "SELECT count(*) FROM user_characters WHERE user_id = $1"
_CHARACTERS = """
SELECT user_id, character_code, character_id, name, type, dialog, source, acquired_at
FROM user_characters WHERE user_id = $1 ORDER BY acquired_at, character_code
"""
_OWNS_NAMED = "SELECT EXISTS (SELECT 1 FROM user_characters WHERE user_id = $1 AND name = $2)"

Db: TypeAlias = asyncpg.Connection | asyncpg.Pool
"""A connection (inside a transaction) or the pool (a one-statement read)."""


def transaction(pool: asyncpg.Pool) -> AbstractAsyncContextManager[asyncpg.Connection]:
    """A connection in a transaction; an unreachable database is :class:`Unavailable`."""
    return db_transaction(pool, "the profile database")


def _profile(row: Any) -> Profile:
    return Profile(**dict(row))


async def get_or_create_profile(db: Db, user_id: str, provider: str | None) -> Profile:
    """The user's profile, created empty on first access (before ``UserRegistered`` arrives)."""
    row = await db.fetchrow(_SELECT_PROFILE, user_id)
    if row is None:
        row = await db.fetchrow(_CREATE_PROFILE, user_id, provider)
    if row is None:  # created concurrently between the two statements
        row = await db.fetchrow(_SELECT_PROFILE, user_id)
    return _profile(row)


async def find_profile(db: Db, user_id: str) -> Profile | None:
    row = await db.fetchrow(_SELECT_PROFILE, user_id)
    return None if row is None else _profile(row)


async def lock_profile(conn: asyncpg.Connection, user_id: str, provider: str | None) -> Profile:
    """The user's profile (created if missing), locked until the transaction ends."""
    return _profile(await conn.fetchrow(_LOCK_PROFILE, user_id, provider))


async def record_sign_in(
    conn: asyncpg.Connection,
    user_id: str,
    provider: str,
    display_name: str | None,
    at: datetime,
) -> None:
    """Upsert from a registration or sign-in: latest login time wins, a missing name is kept."""
    await conn.execute(_SIGNED_IN, user_id, display_name, provider, at)


async def edit_profile(conn: asyncpg.Connection, user_id: str, changes: dict[str, str]) -> Profile:
    row = await conn.fetchrow(_EDIT, user_id, changes.get("nickname"), changes.get("phone_number"))
    return _profile(row)


async def mark_deleted(conn: asyncpg.Connection, user_id: str, at: datetime) -> None:
    await conn.execute(_DELETE, user_id, at)


async def add_character(conn: asyncpg.Connection, owned: OwnedCharacter) -> bool:
    """Insert the read-model row; False when the user already had that character."""
    inserted = await conn.fetchval(
        _ADD_CHARACTER,
        owned.user_id,
        owned.character_code,
        owned.character_id,
        owned.name,
        owned.type,
        owned.dialog,
        owned.source,
        owned.acquired_at,
    )
    return inserted is not None


async def owned_count(db: Db, user_id: str) -> int:
    count: int = await db.fetchval(_COUNT, user_id)
    return count


async def characters_of(db: Db, user_id: str) -> list[OwnedCharacter]:
    """The user's characters, oldest first."""
    return [OwnedCharacter(**dict(r)) for r in await db.fetch(_CHARACTERS, user_id)]


async def owns_named(db: Db, user_id: str, character_name: str) -> bool:
    owned: bool = await db.fetchval(_OWNS_NAMED, user_id, character_name)
    return owned


async def emit(
    conn: asyncpg.Connection, user_id: str, event: Event, metadata: EventMetadata
) -> None:
    """Append ``event`` as the profile's next version (the row must be locked by the caller).

    Raises ``eco2.errors.Conflict`` (retriable) if another writer stored that version.
    """
    version = await conn.fetchval(_BUMP, user_id)
    await eventstore.append_versions(conn, AGGREGATE_TYPE, user_id, version, [event], metadata)
