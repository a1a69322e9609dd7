"""Start-up of the location service: the dataset loads once, the GEO index follows the table."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis

from domains.location.geo import GEO_KEY
from domains.location.service import create_app
from eco2.migrations import database_dsn
from eco2.settings import Settings
from tests.conftest import StackUrls

pytestmark = pytest.mark.integration


@pytest.fixture
async def db(stack: StackUrls, settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(database_dsn(stack.db_url, settings.database_name("location")))
    yield conn
    await conn.close()


@pytest.fixture
async def cache(stack: StackUrls) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(stack.cache_url)
    yield client
    await client.aclose()


async def start_and_query(settings: Settings) -> int:
    """Run one app's start-up, ask for nearby sites once, shut down; the number found."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await client.get(
                "/api/v1/locations/centers", params={"lat": 37.5663, "lon": 126.9019}
            )
    assert response.status_code == 200, response.text
    return len(response.json())


async def test_dataset_loads_once_however_often_the_service_starts(
    settings: Settings, db: asyncpg.Connection
) -> None:
    size = settings.location.dataset_size
    await start_and_query(settings)
    first = await db.fetchval("SELECT count(*) FROM location_sites")
    loaded_at = await db.fetchval("SELECT max(loaded_at) FROM location_sites")
    await start_and_query(settings)
    assert await db.fetchval("SELECT count(*) FROM location_sites") == first == size
    assert await db.fetchval("SELECT max(loaded_at) FROM location_sites") == loaded_at


async def test_concurrent_starters_on_an_empty_table_load_it_exactly_once(
    settings: Settings, db: asyncpg.Connection
) -> None:
    await db.execute("TRUNCATE location_sites")
    found = await asyncio.gather(*(start_and_query(settings) for _ in range(3)))
    assert len(set(found)) == 1
    assert found[0] > 0
    count = await db.fetchval("SELECT count(*) FROM location_sites")
    distinct = await db.fetchval("SELECT count(DISTINCT id) FROM location_sites")
    assert count == distinct == settings.location.dataset_size


async def test_deleted_geo_index_is_rebuilt_at_start(
    settings: Settings, db: asyncpg.Connection, cache: aioredis.Redis
) -> None:
    await start_and_query(settings)
    await cache.delete(GEO_KEY)
    assert await cache.exists(GEO_KEY) == 0
    assert await start_and_query(settings) > 0
    assert await cache.zcard(GEO_KEY) == await db.fetchval("SELECT count(*) FROM location_sites")


async def test_a_changed_table_makes_the_index_rebuild(
    settings: Settings, db: asyncpg.Connection, cache: aioredis.Redis
) -> None:
    await start_and_query(settings)
    moved = await db.fetchval("SELECT max(id) FROM location_sites")
    # A shop that moved from its place to Busan: same count, different geometry.
    await db.execute(
        "UPDATE location_sites SET latitude = 35.1796, longitude = 129.0756 WHERE id = $1", moved
    )
    try:
        await start_and_query(settings)
        (position,) = await cache.geopos(GEO_KEY, str(moved))
        assert position is not None
        assert position[1] == pytest.approx(35.1796, abs=1e-4)
    finally:
        await db.execute("TRUNCATE location_sites")
        await start_and_query(settings)  # reload the generated dataset for other tests


async def test_index_deleted_while_running_is_rebuilt_by_the_next_query(
    settings: Settings, cache: aioredis.Redis
) -> None:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            await cache.delete(GEO_KEY)
            response = await client.get(
                "/api/v1/locations/centers", params={"lat": 37.5663, "lon": 126.9019}
            )
    assert response.status_code == 200
    assert response.json()
    assert await cache.exists(GEO_KEY) == 1
