"""The notification domain on the stack's PostgreSQL: reactions (each event delivered twice),
announcements on commit, and the feed's HTTP API."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from cdc.consumers import ConsumerSpec
from cdc.consumers.apply import apply_batch
from cdc.consumers.inbox import PostgresStore
from domains.notification import reactions
from domains.notification.repository import CHANNEL
from domains.notification.service import consumers, create_app
from eco2.db import domain_dsn
from eco2.events import EventEnvelope
from eco2.settings import Settings
from tests.integration.delivery import apply_twice
from tests.unit.domains.notification import factories

pytestmark = pytest.mark.integration


@pytest.fixture
async def consumer_pool(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    """A pool like the consumer runtime's: the domain's role, no JSON codecs."""
    pool = await asyncpg.create_pool(domain_dsn(settings, "notification"), min_size=1, max_size=2)
    yield pool
    await pool.close()


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield client


def spec_for(envelope: EventEnvelope, settings: Settings) -> ConsumerSpec:
    topic = f"outbox.event.{envelope.aggregate_type}"
    return next(s for s in consumers(settings) if topic in s.topics)


async def deliver_twice(pool: asyncpg.Pool, settings: Settings, envelope: EventEnvelope) -> None:
    assert await apply_twice(pool, spec_for(envelope, settings), envelope) == [1, 0]


async def feed(api: httpx.AsyncClient, user_id: str, **params: str | int) -> httpx.Response:
    return await api.get("/api/v1/notifications", params=params, headers={"X-User-ID": user_id})


def test_the_reactions_are_the_two_saga_consumers(settings: Settings) -> None:
    specs = {s.name: s for s in consumers(settings)}
    assert specs.keys() == {"notification.characters", "notification.profiles"}
    assert specs["notification.characters"].topics == ("outbox.event.character",)
    assert specs["notification.profiles"].topics == ("outbox.event.profile",)
    assert {s.database for s in specs.values()} == {"notification"}


async def test_a_character_acquired_event_makes_exactly_one_notice(
    consumer_pool: asyncpg.Pool, settings: Settings, api: httpx.AsyncClient
) -> None:
    user = factories.new_user()
    event = factories.character_acquired(user, code="char-glassy", name="글래시", scan_id="s-7")
    await deliver_twice(consumer_pool, settings, event)
    # Even a consumer without this inbox row (a rebuild, a renamed group) adds no second notice.
    replay = reactions.CHARACTERS + f".replay-{uuid.uuid4().hex[:6]}"
    handler = reactions.on_character_events
    assert await apply_batch(PostgresStore(consumer_pool), replay, [event], handler) == 1

    body = (await feed(api, user)).json()
    assert len(body["notifications"]) == 1
    notice = body["notifications"][0]
    assert notice["id"] == str(event.event_id)
    assert notice["kind"] == "character_acquired"
    assert notice["body"].startswith("글래시가 ")
    assert notice["data"] == {
        "character_code": "char-glassy",
        "character_name": "글래시",
        "source": "scan",
        "scan_id": "s-7",
    }
    assert notice["read_at"] is None
    assert body["next_cursor"] is None


async def test_only_a_character_added_profile_change_makes_a_collection_notice(
    consumer_pool: asyncpg.Pool, settings: Settings, api: httpx.AsyncClient
) -> None:
    user = factories.new_user()
    added = factories.profile_updated(user, code="char-paepy", owned_count=3, version=2)
    await deliver_twice(consumer_pool, settings, added)
    edited = factories.profile_updated(user, change="profile_edited", code=None, version=3)
    await deliver_twice(consumer_pool, settings, edited)
    await deliver_twice(consumer_pool, settings, factories.grant_rejected(user))

    notices = (await feed(api, user)).json()["notifications"]
    assert [(n["id"], n["kind"]) for n in notices] == [(str(added.event_id), "collection_updated")]
    assert notices[0]["data"] == {"owned_count": 3, "character_code": "char-paepy"}


async def test_a_notice_is_announced_once_and_only_when_it_commits(
    consumer_pool: asyncpg.Pool, settings: Settings
) -> None:
    heard: asyncio.Queue[str] = asyncio.Queue()
    listener = await asyncpg.connect(domain_dsn(settings, "notification"))
    await listener.add_listener(CHANNEL, lambda *args: heard.put_nowait(args[3]))
    try:
        user = factories.new_user()
        rolled_back = factories.character_acquired(user)
        spec = spec_for(rolled_back, settings)

        async def apply_then_fail() -> None:
            async with PostgresStore(consumer_pool).unit_of_work() as unit:
                await spec.handler(rolled_back, unit.conn)
                raise RuntimeError("failed after the effect")

        with pytest.raises(RuntimeError, match="after the effect"):
            await apply_then_fail()
        committed = factories.character_acquired(user, code="char-bini", name="비니")
        await deliver_twice(consumer_pool, settings, committed)

        # The stack's own services announce other users' notices on the same channel.
        async def next_for_user() -> dict[str, str]:
            while (message := json.loads(await heard.get()))["user_id"] != user:
                pass
            return dict(message)

        first = await asyncio.wait_for(next_for_user(), 5)
        assert first == {"user_id": user, "id": str(committed.event_id)}
        with pytest.raises(TimeoutError):  # nothing else for this user arrives
            await asyncio.wait_for(next_for_user(), 0.3)
    finally:
        await listener.close()


async def test_the_feed_pages_newest_first_with_an_opaque_cursor(
    consumer_pool: asyncpg.Pool, settings: Settings, api: httpx.AsyncClient
) -> None:
    user = factories.new_user()
    events = [factories.profile_updated(user, owned_count=n, version=n) for n in range(1, 6)]
    for event in events:
        await deliver_twice(consumer_pool, settings, event)

    seen: list[str] = []
    cursor: str | None = None
    for expected in (2, 2, 1):
        params: dict[str, str | int] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await feed(api, user, **params)).json()
        assert len(page["notifications"]) == expected
        seen += [n["id"] for n in page["notifications"]]
        cursor = page["next_cursor"]
    assert cursor is None
    assert seen == [str(e.event_id) for e in reversed(events)]
    default = (await feed(api, user)).json()
    assert [n["id"] for n in default["notifications"]] == seen


async def test_bad_paging_values_are_refused_with_what_to_do(api: httpx.AsyncClient) -> None:
    user = factories.new_user()
    bad_cursor = await feed(api, user, cursor="bm90LWEtY3Vyc29y")
    assert bad_cursor.status_code == 400
    assert bad_cursor.json()["error"]["code"] == "invalid_cursor"
    assert "next_cursor" in bad_cursor.json()["error"]["message"]
    for limit in (0, 101, "many"):
        assert (await feed(api, user, limit=limit)).status_code == 422


async def test_a_user_reads_and_marks_only_their_own_notices(
    consumer_pool: asyncpg.Pool, settings: Settings, api: httpx.AsyncClient
) -> None:
    owner, other = factories.new_user(), factories.new_user()
    event = factories.character_acquired(owner)
    await deliver_twice(consumer_pool, settings, event)
    path = f"/api/v1/notifications/{event.event_id}/read"

    assert (await feed(api, other)).json() == {"notifications": [], "next_cursor": None}
    refused = await api.post(path, headers={"X-User-ID": other})
    assert refused.status_code == 404
    assert refused.json()["error"]["code"] == "notification_not_found"
    assert (await feed(api, owner)).json()["notifications"][0]["read_at"] is None

    assert (await api.post(path, headers={"X-User-ID": owner})).status_code == 204
    read_at = (await feed(api, owner)).json()["notifications"][0]["read_at"]
    assert read_at is not None
    assert (await api.post(path, headers={"X-User-ID": owner})).status_code == 204
    assert (await feed(api, owner)).json()["notifications"][0]["read_at"] == read_at

    for unknown in (str(uuid.uuid4()), "not-an-id"):
        missing = await api.post(
            f"/api/v1/notifications/{unknown}/read", headers={"X-User-ID": owner}
        )
        assert missing.status_code == 404


async def test_signed_out_callers_get_401_and_health_answers(api: httpx.AsyncClient) -> None:
    for response in (
        await api.get("/api/v1/notifications"),
        await api.post(f"/api/v1/notifications/{uuid.uuid4()}/read"),
        await api.get("/api/v1/notifications/stream"),
    ):
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthenticated"
    health = await api.get("/healthz")
    assert health.status_code == 200
    assert health.json() == {"status": "ok", "listener": "connected"}
