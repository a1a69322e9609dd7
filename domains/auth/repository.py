"""The auth database (``eco2_auth``): accounts with their events, signing keys, refresh tokens.

Every state change that has events appends them with :func:`eco2.eventstore.append` on the same
connection inside the same transaction, with the ``user`` aggregate's version taken from (and
bumped in) ``users.version``, which the row lock of the upsert serialises.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from domains.auth.events import AGGREGATE_TYPE
from domains.auth.model import (
    ProviderProfile,
    RefreshRecord,
    RefreshVerdict,
    SignedInUser,
    judge_refresh,
    sign_in_events,
)
from domains.auth.tokens import SigningKey
from eco2.errors import Unavailable
from eco2.events import EventEnvelope, EventMetadata
from eco2.eventstore import append


@dataclass(frozen=True)
class RefreshGrant:
    """A refresh token about to be issued: stored before it is signed."""

    jti: uuid.UUID
    family_id: uuid.UUID
    expires_at: datetime


_INSERT_KEY = """
INSERT INTO signing_keys (kid, private_key_pem, public_jwk, active) VALUES ($1, $2, $3, true)
ON CONFLICT DO NOTHING
"""
_SELECT_KEYS = """
SELECT kid, private_key_pem, public_jwk, active FROM signing_keys ORDER BY created_at, kid
"""

# A new account gets version 2: UserRegistered (1) and UserSignedIn (2).
_UPSERT_USER = """
INSERT INTO users (id, provider, provider_subject, display_name, created_at, last_login_at, version)
VALUES ($1, $2, $3, $4, $5, $5, 2)
ON CONFLICT (provider, provider_subject) WHERE deleted_at IS NULL
DO UPDATE SET last_login_at = EXCLUDED.last_login_at, version = users.version + 1
RETURNING id, display_name, version
"""
_INSERT_REFRESH = """
INSERT INTO refresh_tokens (jti, user_id, family_id, issued_at, expires_at)
VALUES ($1, $2, $3, $4, $5)
"""
_LOCK_REFRESH = """
SELECT r.jti, r.user_id, r.family_id, r.expires_at, r.used_at, r.revoked_at,
       u.provider, u.display_name, u.deleted_at IS NOT NULL AS user_deleted
FROM refresh_tokens r JOIN users u ON u.id = r.user_id
WHERE r.jti = $1
FOR UPDATE OF r
"""
_MARK_USED = "UPDATE refresh_tokens SET used_at = $2 WHERE jti = $1"
_REVOKE_FAMILY = """
UPDATE refresh_tokens SET revoked_at = $2 WHERE family_id = $1 AND revoked_at IS NULL
"""
_REVOKED_SINCE = """
SELECT family_id, max(revoked_at) AS revoked_at FROM refresh_tokens
WHERE revoked_at > $1 GROUP BY family_id
"""
_DELETE_USER = """
UPDATE users SET deleted_at = $2 WHERE id = $1 AND deleted_at IS NULL
"""
_REVOKE_USER = """
UPDATE refresh_tokens SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL
"""
"""Stamped when auth revokes them (the blacklist keeper follows that stamp), not with the
deletion's own time, which may lie further back than the keeper looks."""


def _record(row: Any) -> RefreshRecord:
    return RefreshRecord(
        jti=row["jti"],
        user_id=str(row["user_id"]),
        family_id=row["family_id"],
        provider=row["provider"],
        display_name=row["display_name"],
        expires_at=row["expires_at"],
        used_at=row["used_at"],
        revoked_at=row["revoked_at"],
        user_deleted=row["user_deleted"],
    )


class AuthRepository:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def signing_keys(self, candidate: SigningKey) -> tuple[SigningKey, list[SigningKey]]:
        """The active key and all stored keys, storing ``candidate`` as the active one when there
        is none. Concurrent callers all get the same active key (the first insert wins)."""
        async with self._pool.acquire() as conn:
            await conn.execute(
                _INSERT_KEY, candidate.kid, candidate.private_pem, candidate.public_jwk
            )
            rows = await conn.fetch(_SELECT_KEYS)
        keys = [SigningKey(r["kid"], r["private_key_pem"], r["public_jwk"]) for r in rows]
        active = [key for key, row in zip(keys, rows, strict=True) if row["active"]]
        if not active:  # a key was retired between our insert and our read
            raise Unavailable("no active signing key yet; start again")
        return active[0], keys

    async def sign_in(
        self,
        profile: ProviderProfile,
        grant: RefreshGrant,
        *,
        at: datetime,
        metadata: EventMetadata,
    ) -> SignedInUser:
        """Register or update the account of ``profile``, append its events and store the
        session's first refresh token, in one transaction."""
        new_id = uuid.uuid4()
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                _UPSERT_USER, new_id, profile.provider, profile.subject, profile.display_name, at
            )
            user = SignedInUser(
                user_id=str(row["id"]),
                provider=profile.provider,
                display_name=row["display_name"],
                registered=row["id"] == new_id,
            )
            meta = metadata.model_copy(update={"user_id": user.user_id})
            await append(
                conn,
                [
                    EventEnvelope.of(
                        event,
                        aggregate_type=AGGREGATE_TYPE,
                        aggregate_id=user.user_id,
                        aggregate_version=version,
                        metadata=meta,
                    )
                    for version, event in sign_in_events(user, version=row["version"], at=at)
                ],
            )
            await conn.execute(
                _INSERT_REFRESH, grant.jti, row["id"], grant.family_id, at, grant.expires_at
            )
        return user

    async def rotate(
        self, jti: uuid.UUID, successor: uuid.UUID, *, expires_at: datetime, at: datetime
    ) -> tuple[RefreshVerdict, RefreshRecord | None]:
        """Judge refresh token ``jti`` and act on the verdict in one transaction: on ``ROTATE``
        mark it used and store ``successor`` in its family; on ``REUSED`` revoke the family."""
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(_LOCK_REFRESH, jti)
            record = _record(row) if row is not None else None
            verdict = judge_refresh(record, at)
            if record is not None and verdict is RefreshVerdict.REUSED:
                await conn.execute(_REVOKE_FAMILY, record.family_id, at)
            elif record is not None and verdict is RefreshVerdict.ROTATE:
                await conn.execute(_MARK_USED, jti, at)
                await conn.execute(
                    _INSERT_REFRESH,
                    successor,
                    uuid.UUID(record.user_id),
                    record.family_id,
                    at,
                    expires_at,
                )
        return verdict, record

    async def revoke_family(self, family_id: uuid.UUID, *, at: datetime) -> None:
        await self._pool.execute(_REVOKE_FAMILY, family_id, at)

    async def revoked_since(self, since: datetime) -> list[tuple[str, datetime]]:
        """``(session id, when revoked)`` of every session revoked after ``since``."""
        rows = await self._pool.fetch(_REVOKED_SINCE, since)
        return [(str(row["family_id"]), row["revoked_at"]) for row in rows]


async def mark_user_deleted(conn: asyncpg.Connection, user_id: uuid.UUID, at: datetime) -> None:
    """Mark the account deleted (first deletion time wins) and revoke all its refresh tokens;
    idempotent."""
    await conn.execute(_DELETE_USER, user_id, at)
    await conn.execute(_REVOKE_USER, user_id)
