"""The character domain on the real ``eco2_character``: reward reactions (each event delivered
twice), deleted users, onboarding and the catalogue."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from domains.character.model import ownership_id
from domains.character.service import consumers, create_app
from eco2 import eventstore
from eco2.db import create_pool
from eco2.events import EventEnvelope
from eco2.settings import Settings
from tests.integration.delivery import apply_twice, reward_granted

pytestmark = pytest.mark.integration


@pytest.fixture
async def pool(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(settings, "character", min_size=1, max_size=2)
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            yield c


def _spec(settings: Settings, name: str) -> Any:
    return next(s for s in consumers(settings) if s.name == name)


def user_deleted(user_id: str) -> EventEnvelope:
    return EventEnvelope(
        event_type="UserDeleted",
        aggregate_type="profile",
        aggregate_id=user_id,
        aggregate_version=1,
        payload={"user_id": user_id, "deleted_at": "2025-03-01T00:00:00+00:00"},
    )


async def deliver_twice(
    pool: asyncpg.Pool, settings: Settings, name: str, envelope: EventEnvelope
) -> list[int]:
    return await apply_twice(pool, _spec(settings, name), envelope)


async def events_of(pool: asyncpg.Pool, user_id: str) -> list[EventEnvelope]:
    async with pool.acquire() as conn:
        return await eventstore.load(conn, user_id)


async def ownerships(pool: asyncpg.Pool, user_id: str) -> list[Any]:
    return list(await pool.fetch("SELECT * FROM character_ownerships WHERE user_id = $1", user_id))


async def test_a_reward_delivered_twice_records_one_ownership_and_one_event(
    pool: asyncpg.Pool, settings: Settings
) -> None:
    user = f"user-{uuid.uuid4()}"
    granted = reward_granted(user)
    assert await deliver_twice(pool, settings, "character.rewards", granted) == [1, 0]

    [row] = await ownerships(pool, user)
    assert row["id"] == ownership_id(user, "char-petty")
    assert (row["status"], row["source"], row["scan_id"]) == (
        "owned",
        "scan",
        granted.payload["scan_id"],
    )
    [event] = await events_of(pool, user)
    assert (event.event_type, event.aggregate_type, event.aggregate_version) == (
        "CharacterAcquired",
        "character",
        1,
    )
    assert event.payload["ownership_id"] == str(row["id"])
    assert event.payload["character_name"] == "페티"
    assert event.payload["character_type"] == "생수·음료 투명 페트병"
    assert event.payload["source"] == "scan"
    assert event.metadata.causation_id == str(granted.event_id)
    assert event.metadata.correlation_id == granted.payload["scan_id"]
    assert event.metadata.traceparent == granted.metadata.traceparent


async def test_a_second_grant_of_an_owned_character_changes_nothing(
    pool: asyncpg.Pool, settings: Settings
) -> None:
    user = f"user-{uuid.uuid4()}"
    await deliver_twice(pool, settings, "character.rewards", reward_granted(user))
    before = await ownerships(pool, user)

    assert await deliver_twice(pool, settings, "character.rewards", reward_granted(user)) == [1, 0]

    assert await ownerships(pool, user) == before
    assert [e.event_type for e in await events_of(pool, user)] == ["CharacterAcquired"]


async def test_the_irregular_code_is_a_known_character(
    pool: asyncpg.Pool, settings: Settings
) -> None:
    user = f"user-{uuid.uuid4()}"
    await deliver_twice(
        pool, settings, "character.rewards", reward_granted(user, "char-eb7429f0523f")
    )
    [event] = await events_of(pool, user)
    assert (event.event_type, event.payload["character_name"]) == ("CharacterAcquired", "일렉")


async def test_an_unknown_character_is_rejected_for_compensation(
    pool: asyncpg.Pool, settings: Settings
) -> None:
    user = f"user-{uuid.uuid4()}"
    granted = reward_granted(user, "char-nobody")
    await deliver_twice(pool, settings, "character.rewards", granted)

    assert await ownerships(pool, user) == []
    [event] = await events_of(pool, user)
    assert event.event_type == "CharacterGrantRejected"
    assert event.payload["reason"] == "unknown_character"
    assert event.payload["scan_id"] == granted.payload["scan_id"]
    assert event.payload["character_code"] == "char-nobody"


async def test_a_deleted_user_gets_no_more_characters(
    pool: asyncpg.Pool, settings: Settings
) -> None:
    user = f"user-{uuid.uuid4()}"
    await deliver_twice(pool, settings, "character.rewards", reward_granted(user, "char-bini"))
    assert await deliver_twice(pool, settings, "character.profiles", user_deleted(user)) == [1, 0]

    await deliver_twice(pool, settings, "character.rewards", reward_granted(user))

    assert [r["character_code"] for r in await ownerships(pool, user)] == ["char-bini"]
    events = await events_of(pool, user)
    assert [e.event_type for e in events] == ["CharacterAcquired", "CharacterGrantRejected"]
    assert events[1].payload["reason"] == "user_deleted"
    assert [e.aggregate_version for e in events] == [1, 2]


async def test_catalog_lists_the_13_characters_in_the_compat_shape(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/api/v1/character/catalog")
    assert response.status_code == 200
    catalog = response.json()
    assert len(catalog) == 13
    assert all(set(c) == {"name", "type", "dialog", "match", "code", "image_url"} for c in catalog)
    assert catalog[0]["code"] == "char-eco"
    elec = next(c for c in catalog if c["name"] == "일렉")
    assert elec["code"] == "char-eb7429f0523f"
    assert elec["match"] == "전기전자제품"
    assert elec["image_url"] == "https://cdn.eco2.local/character/monitor.png"
    assert len({c["match"] for c in catalog}) == 13


async def test_onboarding_grants_ico_once(client: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    user = f"user-{uuid.uuid4()}"
    first = await client.post("/internal/characters/onboard", json={"user_id": user})
    second = await client.post("/internal/characters/onboard", json={"user_id": user})

    assert first.status_code == second.status_code == 200
    assert first.json()["granted"] is True
    assert second.json()["granted"] is False
    assert first.json()["character"] == second.json()["character"]
    assert set(first.json()["character"]) == {"id", "code", "name", "type", "dialog", "acquired_at"}
    assert first.json()["character"]["name"] == "이코"

    [event] = await events_of(pool, user)
    assert (event.event_type, event.payload["source"], event.payload["scan_id"]) == (
        "CharacterAcquired",
        "default-onboard",
        None,
    )
    owned = (await client.get(f"/internal/characters/{user}")).json()
    assert [(o["code"], o["source"]) for o in owned] == [("char-eco", "default-onboard")]


async def test_onboarding_a_deleted_user_is_refused(
    client: httpx.AsyncClient, pool: asyncpg.Pool, settings: Settings
) -> None:
    user = f"user-{uuid.uuid4()}"
    await deliver_twice(pool, settings, "character.profiles", user_deleted(user))

    response = await client.post("/internal/characters/onboard", json={"user_id": user})

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "user_deleted"
    assert await ownerships(pool, user) == []
    assert (await client.get(f"/internal/characters/{user}")).json() == []


async def test_healthz(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).status_code == 200
