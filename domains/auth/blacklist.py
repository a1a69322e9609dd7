"""The access-token blacklist ext-authz reads, written by auth, restorable from auth's database.

Auth's database is its source of truth: a revoked session is a refresh family with
``revoked_at`` set (a logout, a reused refresh token, a deleted account). Valkey holds the fast
copy ext-authz reads on each request: ``authz:revoked:session:<sid>`` for every session revoked
within an access token's life, and ``authz:blacklist:restored`` saying the copy is whole.

Valkey may come back from a restart without its data (or without the last second of it: its
append-only file is synced every second). :class:`BlacklistKeeper` notices the new server (its
run id differs from the one the marker names), writes every session revoked within an access
token's life from the database, then sets the marker. Until then ext-authz answers 503 instead
of letting a revoked session in. Between restores it follows the database: every session revoked
there since its last look (an account deleted in the profile domain revokes its sessions through
auth's reaction, not through a logout) is blacklisted within one check.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

import redis.asyncio as aioredis

from domains.auth.repository import AuthRepository
from domains.auth.tokens import RESTORED_KEY, revoked_session_key
from eco2.errors import Unavailable
from eco2.telemetry import get_logger
from eco2.tokens import LEEWAY_S

log = get_logger(__name__)
CHECK_EVERY_S = 2.0
FOLLOW_OVERLAP = timedelta(seconds=10)
"""How far back each look reaches before the previous one: a revocation is stamped when its
transaction began, and becomes visible when it commits."""


class ValkeyBlacklist:
    """Writes the blacklist's keys (see the module docstring)."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client

    async def revoke(self, sid: str, ttl_s: int) -> None:
        """Refuse every access token of session ``sid`` for ``ttl_s`` seconds."""
        try:
            await self._client.set(revoked_session_key(sid), "1", ex=max(1, ttl_s))
        except (aioredis.RedisError, OSError) as exc:
            raise Unavailable(f"could not revoke the session ({exc}); log out again") from exc

    async def server_id(self) -> str:
        """The run id of the Valkey server (a new one after every restart)."""
        info = await self._client.info("server")
        return str(info["run_id"])

    async def restored_for(self) -> str | None:
        """The server run id the blacklist was last restored on (None: never, or lost)."""
        value = await self._client.get(RESTORED_KEY)
        return value.decode() if isinstance(value, bytes) else value

    async def restore(
        self, sessions: Sequence[tuple[str, int]], server_id: str | None = None
    ) -> None:
        """Write ``(sid, ttl_s)`` for each session, then (given ``server_id``) mark the blacklist
        restored on that server (one round trip, in that order)."""
        async with self._client.pipeline(transaction=False) as pipe:
            for sid, ttl_s in sessions:
                pipe.set(revoked_session_key(sid), "1", ex=max(1, ttl_s))
            if server_id is not None:
                pipe.set(RESTORED_KEY, server_id)
            await pipe.execute()


class BlacklistKeeper:
    """Keeps the Valkey blacklist whole across Valkey restarts (see the module docstring)."""

    def __init__(
        self,
        repository: AuthRepository,
        blacklist: ValkeyBlacklist,
        access_ttl_s: int,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._repo, self._blacklist, self._clock = repository, blacklist, clock
        self._lifetime = timedelta(seconds=access_ttl_s + LEEWAY_S)
        self._looked_at: datetime | None = None

    async def check(self) -> bool:
        """Restore the blacklist when the server does not have it (True), else blacklist what
        was revoked since the last look (False)."""
        server = await self._blacklist.server_id()
        now = self._clock()
        if await self._blacklist.restored_for() == server:
            since = (self._looked_at or now - self._lifetime) - FOLLOW_OVERLAP
            await self._blacklist.restore(await self._revoked_since(since, now))
            self._looked_at = now
            return False
        sessions = await self._revoked_since(now - self._lifetime, now)
        await self._blacklist.restore(sessions, server)
        self._looked_at = now
        log.info("token blacklist restored", sessions=len(sessions), server=server)
        return True

    async def _revoked_since(self, since: datetime, now: datetime) -> list[tuple[str, int]]:
        """``(sid, seconds its access tokens may still pass)`` revoked after ``since``."""
        revoked = await self._repo.revoked_since(since)
        return [(sid, int((at + self._lifetime - now).total_seconds()) + 1) for sid, at in revoked]

    async def run(self) -> None:
        """Check now and every :data:`CHECK_EVERY_S` until cancelled; errors are retried."""
        while True:
            try:
                await self.check()
            except (aioredis.RedisError, OSError) as exc:
                log.info("token blacklist unchecked: Valkey unreachable", error=str(exc))
            except Exception as exc:  # the keeper must outlive a database hiccup
                log.warning("token blacklist not restored yet", error=repr(exc))
            await asyncio.sleep(CHECK_EVERY_S)
