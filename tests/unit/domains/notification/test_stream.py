"""The SSE frames of one stream (``notice_events``) with an in-memory feed and the real hub."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncGenerator
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sse_starlette import ServerSentEvent

from domains.notification.http import Backend, StreamConfig, notice_events
from domains.notification.live import NotificationHub
from domains.notification.model import FeedPosition, StoredNotice
from domains.notification.repository import NotificationRepository
from eco2.errors import Unavailable

T0 = datetime(2025, 5, 1, tzinfo=UTC)


class MemoryFeed:
    """The reads ``notice_events`` makes, over a list (oldest first)."""

    def __init__(self) -> None:
        self.notices: list[StoredNotice] = []

    def add(self, user_id: str, *, read: bool = False) -> StoredNotice:
        created = T0 + timedelta(seconds=len(self.notices))
        notice = StoredNotice(
            id=uuid.uuid4(),
            user_id=user_id,
            kind="character_acquired",
            title="새 캐릭터를 만났어요!",
            body="페티가 컬렉션에 들어왔어요.",
            data={"character_code": "char-petty"},
            created_at=created,
            read_at=created if read else None,
        )
        self.notices.append(notice)
        return notice

    def _of(self, user_id: str) -> list[StoredNotice]:
        return [n for n in self.notices if n.user_id == user_id]

    async def get(self, user_id: str, notice_id: uuid.UUID) -> StoredNotice | None:
        return next((n for n in self._of(user_id) if n.id == notice_id), None)

    async def latest_unread(self, user_id: str, limit: int) -> list[StoredNotice]:
        return [n for n in self._of(user_id) if n.read_at is None][-limit:]

    async def newer_than(
        self, user_id: str, position: FeedPosition, limit: int
    ) -> tuple[list[StoredNotice], bool]:
        key = (position.created_at, position.id)
        newer = [n for n in self._of(user_id) if (n.created_at, n.id) > key]
        return newer[-limit:], len(newer) > limit


def backend(feed: MemoryFeed, hub: NotificationHub, catch_up_limit: int = 50) -> Backend:
    repository = cast(NotificationRepository, feed)
    return Backend(repository, hub, StreamConfig(catch_up_limit=catch_up_limit))


def idle_hub(queue_size: int = 8) -> NotificationHub:
    async def never() -> Any:
        raise AssertionError("not started in these tests")

    return NotificationHub(never, queue_size=queue_size)


def announce(hub: NotificationHub, notice: StoredNotice, user_id: str | None = None) -> None:
    hub.dispatch(json.dumps({"user_id": user_id or notice.user_id, "id": str(notice.id)}))


async def frame(stream: AsyncGenerator[ServerSentEvent, None]) -> ServerSentEvent:
    return await asyncio.wait_for(anext(stream), 1)


async def connect(
    feed: MemoryFeed,
    hub: NotificationHub,
    user_id: str,
    last_event_id: str | None = None,
    **kw: Any,
) -> AsyncGenerator[ServerSentEvent, None]:
    stream = notice_events(backend(feed, hub, **kw), user_id, last_event_id)
    hello = await frame(stream)  # subscribed from here on
    assert hello.comment == "connected"
    assert hello.retry == 3000
    return stream


def notice_of(event: ServerSentEvent) -> dict[str, Any]:
    assert event.event == "notification"
    body: dict[str, Any] = json.loads(str(event.data))
    assert body["id"] == event.id
    return body


async def test_connect_sends_the_latest_unread_oldest_first_then_live_ones() -> None:
    feed, hub = MemoryFeed(), idle_hub()
    feed.add("a", read=True)
    unread = [feed.add("a"), feed.add("a")]
    feed.add("b")
    stream = await connect(feed, hub, "a")
    assert [(await frame(stream)).id for _ in unread] == [str(n.id) for n in unread]
    live = feed.add("a")
    announce(hub, live)
    body = notice_of(await frame(stream))
    assert body["id"] == str(live.id)
    assert body["title"] == live.title
    assert body["data"] == {"character_code": "char-petty"}
    assert body["read_at"] is None
    await stream.aclose()


async def test_a_notice_both_stored_and_announced_is_sent_once() -> None:
    feed, hub = MemoryFeed(), idle_hub()
    stream = await connect(feed, hub, "a")
    racing = feed.add("a")  # committed after subscribing, before the backlog is read
    announce(hub, racing)
    assert (await frame(stream)).id == str(racing.id)
    later = feed.add("a")
    announce(hub, later)
    assert (await frame(stream)).id == str(later.id)
    await stream.aclose()


async def test_last_event_id_resumes_right_after_that_notice_read_or_not() -> None:
    feed, hub = MemoryFeed(), idle_hub()
    seen = feed.add("a", read=True)
    missed = [feed.add("a", read=True), feed.add("a")]
    stream = await connect(feed, hub, "a", str(seen.id))
    assert [(await frame(stream)).id for _ in missed] == [str(n.id) for n in missed]
    await stream.aclose()


async def test_too_many_missed_notices_say_resync_then_send_the_newest() -> None:
    feed, hub = MemoryFeed(), idle_hub()
    seen = feed.add("a")
    missed = [feed.add("a") for _ in range(4)]
    stream = await connect(feed, hub, "a", str(seen.id), catch_up_limit=2)
    resync = await frame(stream)
    assert resync.event == "resync"
    assert json.loads(str(resync.data))["reason"] == "missed_too_many"
    assert [(await frame(stream)).id for _ in range(2)] == [str(n.id) for n in missed[2:]]
    await stream.aclose()


async def test_an_unknown_or_foreign_last_event_id_starts_from_the_latest_unread() -> None:
    feed, hub = MemoryFeed(), idle_hub()
    foreign = feed.add("b")
    mine = feed.add("a")
    for last_event_id in (str(foreign.id), str(uuid.uuid4()), "garbage", "x" * 1000):
        stream = await connect(feed, hub, "a", last_event_id)
        assert (await frame(stream)).id == str(mine.id)
        await stream.aclose()


async def test_an_announcement_naming_another_users_notice_shows_nothing() -> None:
    feed, hub = MemoryFeed(), idle_hub()
    stream = await connect(feed, hub, "a")
    foreign = feed.add("b")
    announce(hub, foreign, user_id="a")
    mine = feed.add("a")
    announce(hub, mine)
    assert (await frame(stream)).id == str(mine.id)
    await stream.aclose()


async def test_a_subscriber_that_fell_behind_gets_resync_and_the_stream_ends() -> None:
    feed, hub = MemoryFeed(), idle_hub(queue_size=1)
    stream = await connect(feed, hub, "a")
    for _ in range(3):  # read elsewhere already, so the backlog is empty
        announce(hub, feed.add("a", read=True))
    resync = await frame(stream)
    assert resync.event == "resync"
    assert json.loads(str(resync.data)) == {
        "reason": "fell_behind",
        "reload": "/api/v1/notifications",
    }
    assert [e async for e in stream] == []


class DownFeed(MemoryFeed):
    async def latest_unread(self, user_id: str, limit: int) -> list[StoredNotice]:
        raise Unavailable("the notification database is unreachable")


async def test_an_unreachable_database_ends_the_stream_with_resync() -> None:
    stream = await connect(DownFeed(), idle_hub(), "a")
    resync = await frame(stream)
    assert resync.event == "resync"
    assert json.loads(str(resync.data))["reason"] == "unavailable"
    assert [e async for e in stream] == []
