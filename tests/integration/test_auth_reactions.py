"""Auth's reaction to profile/UserDeleted, delivered twice through the real inbox."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis

from cdc.consumers.apply import apply_batch
from cdc.consumers.inbox import PostgresStore
from domains.auth.blacklist import CHECK_EVERY_S
from domains.auth.service import consumers, create_app
from domains.auth.tokens import revoked_session_key
from eco2.db import create_pool
from eco2.events import EventEnvelope
from eco2.settings import Settings

pytestmark = pytest.mark.integration
AUTH = "/api/v1/auth"


@pytest.fixture(scope="module")
async def db(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(settings, "auth", max_size=2)
    yield pool
    await pool.close()


def _claims(token: str) -> dict[str, Any]:
    """A JWT's claims, unverified (the test only needs to know which session it belongs to)."""
    body = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))))


def deleted(user_id: str, at: datetime) -> EventEnvelope:
    return EventEnvelope(
        event_type="UserDeleted",
        aggregate_type="profile",
        aggregate_id=user_id,
        aggregate_version=5,
        payload={"user_id": user_id, "deleted_at": at.isoformat()},
    )


async def test_user_deleted_ends_sessions_and_frees_the_identity(
    settings: Settings, db: asyncpg.Pool
) -> None:
    (spec,) = consumers(settings)
    assert spec.topics == ("outbox.event.profile",)
    assert spec.database == "auth"
    app = create_app(settings)
    key = f"device-{uuid.uuid4().hex}"
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        login = (await client.post(f"{AUTH}/dev-login", json={"user_key": key})).json()
        at = datetime(2025, 5, 1, tzinfo=UTC)
        event = deleted(login["user_id"], at)
        store = PostgresStore(db)
        assert await apply_batch(store, spec.name, [event], spec.handler) == 1
        assert await apply_batch(store, spec.name, [event], spec.handler) == 0
        later = deleted(login["user_id"], datetime(2026, 1, 1, tzinfo=UTC))
        await apply_batch(store, spec.name, [later], spec.handler)  # first deletion time wins

        row = await db.fetchrow(
            "SELECT deleted_at, version FROM users WHERE id = $1::uuid", login["user_id"]
        )
        assert row["deleted_at"] == at
        live = await db.fetchval(
            "SELECT count(*) FROM refresh_tokens WHERE user_id = $1::uuid AND revoked_at IS NULL",
            login["user_id"],
        )
        assert live == 0
        refreshed = await client.post(
            f"{AUTH}/refresh", json={"refresh_token": login["refresh_token"]}
        )
        assert refreshed.status_code == 401
        # ... and its access token is refused at once, not when it expires: the lifespan's
        # blacklist keeper puts the revoked session on the blacklist ext-authz reads.
        sid = _claims(login["access_token"])["sid"]
        valkey = aioredis.Redis.from_url(settings.cache.require("test"))
        try:
            deadline = time.monotonic() + 3 * CHECK_EVERY_S + 5
            while not await valkey.exists(revoked_session_key(sid)):
                assert time.monotonic() < deadline, "the deleted account's session not blacklisted"
                await asyncio.sleep(0.2)
        finally:
            await valkey.aclose()

        again = (await client.post(f"{AUTH}/dev-login", json={"user_key": key})).json()
        assert again["user_id"] != login["user_id"]  # a new account for the same identity


async def test_other_profile_events_and_foreign_ids_are_ignored(
    settings: Settings, db: asyncpg.Pool
) -> None:
    (spec,) = consumers(settings)
    store = PostgresStore(db)
    updated = EventEnvelope(
        event_type="ProfileUpdated",
        aggregate_type="profile",
        aggregate_id="x",
        aggregate_version=1,
        payload={"user_id": "x", "change": "profile_edited"},
    )
    foreign = deleted("not-a-uuid", datetime.now(UTC))
    assert await apply_batch(store, spec.name, [updated, foreign], spec.handler) == 2
