"""The live fan-out hub with a fake LISTEN connection: routing, bounded queues, reconnects."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from domains.notification.live import RESYNC, NotificationHub, Subscription
from domains.notification.repository import CHANNEL


class FakeConnection:
    """The part of ``asyncpg.Connection`` the hub uses."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.closed = False
        self.healthy = True
        self.listeners: dict[str, Callable[..., None]] = {}
        self.on_terminate: list[Callable[[Any], None]] = []

    def add_termination_listener(self, callback: Callable[[Any], None]) -> None:
        self.on_terminate.append(callback)

    async def add_listener(self, channel: str, callback: Callable[..., None]) -> None:
        self.listeners[channel] = callback

    def is_closed(self) -> bool:
        return self.closed

    def get_server_pid(self) -> int:
        return self.pid

    async def fetchval(self, _query: str, **_options: Any) -> int:
        if not self.healthy:
            raise ConnectionResetError("gone")
        return 1

    async def close(self) -> None:
        self.drop()

    def terminate(self) -> None:
        self.drop()

    def drop(self) -> None:
        if not self.closed:
            self.closed = True
            for callback in self.on_terminate:
                callback(self)

    def announce(self, user_id: str, notice_id: uuid.UUID) -> None:
        payload = json.dumps({"user_id": user_id, "id": str(notice_id)})
        self.listeners[CHANNEL](self, 1, CHANNEL, payload)


class Connector:
    """A connect factory handing out fake connections, failing the first ``failures`` calls
    after the first connection."""

    def __init__(self, failures: int = 0) -> None:
        self.made: list[FakeConnection] = []
        self.failures = failures

    async def __call__(self) -> Any:
        if self.made and self.failures:
            self.failures -= 1
            raise ConnectionRefusedError("database restarting")
        conn = FakeConnection(pid=len(self.made) + 1)
        self.made.append(conn)
        return conn


def announcement(user_id: str, notice_id: uuid.UUID) -> str:
    return json.dumps({"user_id": user_id, "id": str(notice_id)})


async def eventually(check: Callable[[], bool], attempts: int = 400) -> None:
    """Wait (up to ``attempts`` × 5 ms) until ``check()`` holds."""
    for _ in range(attempts):
        if check():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition not reached in time")


def drain(subscription: Subscription) -> list[uuid.UUID | None]:
    items = []
    while not subscription.queue.empty():
        items.append(subscription.queue.get_nowait())
    return items


def test_an_announcement_reaches_only_its_users_subscribers() -> None:
    hub = NotificationHub(Connector())
    notice = uuid.uuid4()
    with hub.subscribe("a") as tab1, hub.subscribe("a") as tab2, hub.subscribe("b") as other:
        hub.dispatch(announcement("a", notice))
        assert drain(tab1) == [notice]
        assert drain(tab2) == [notice]
        assert drain(other) == []


def test_a_full_queue_makes_only_that_subscriber_lag() -> None:
    hub = NotificationHub(Connector(), queue_size=2)
    ids = [uuid.uuid4() for _ in range(3)]
    with hub.subscribe("a") as slow, hub.subscribe("a") as fast:
        for notice in ids:
            hub.dispatch(announcement("a", notice))
            assert fast.queue.get_nowait() == notice
        assert slow.lagging
        assert not fast.lagging
        assert drain(slow) == ids[:2]  # full: no room for RESYNC, the reader checks ``lagging``
        hub.dispatch(announcement("a", uuid.uuid4()))
        assert drain(slow) == []  # a lagging subscriber gets nothing more


@pytest.mark.parametrize(
    "payload",
    ["not json", "null", "[]", '"text"', '{"user_id": "a"}', '{"user_id": "a", "id": "x"}'],
)
def test_a_malformed_announcement_is_ignored(payload: str) -> None:
    hub = NotificationHub(Connector())
    with hub.subscribe("a") as subscription:
        hub.dispatch(payload)
        assert drain(subscription) == []
        assert not subscription.lagging


def test_a_closed_subscription_hears_nothing_more() -> None:
    hub = NotificationHub(Connector())
    with hub.subscribe("a") as subscription:
        pass
    hub.dispatch(announcement("a", uuid.uuid4()))
    assert drain(subscription) == []


async def _with_hub(
    connector: Connector, body: Callable[[NotificationHub], Awaitable[None]], **options: Any
) -> None:
    hub = NotificationHub(connector, retry_s=0.01, **options)
    await hub.start()
    try:
        await body(hub)
    finally:
        await hub.close()


async def test_announcements_on_the_connection_are_dispatched() -> None:
    connector = Connector()

    async def body(hub: NotificationHub) -> None:
        notice = uuid.uuid4()
        with hub.subscribe("a") as subscription:
            connector.made[0].announce("a", notice)
            assert await asyncio.wait_for(subscription.queue.get(), 1) == notice

    await _with_hub(connector, body)


async def test_a_lost_connection_is_reopened_and_subscribers_resync() -> None:
    connector = Connector(failures=2)

    async def body(hub: NotificationHub) -> None:
        with hub.subscribe("a") as before:
            assert hub.backend_pid == 1
            connector.made[0].drop()
            await eventually(lambda: hub.backend_pid == 2)
            assert before.lagging
            assert await asyncio.wait_for(before.queue.get(), 1) is RESYNC
        notice = uuid.uuid4()
        with hub.subscribe("a") as after:
            connector.made[1].announce("a", notice)
            assert await asyncio.wait_for(after.queue.get(), 1) == notice

    await _with_hub(connector, body)


async def test_a_connection_failing_its_health_query_is_replaced() -> None:
    connector = Connector()

    async def body(hub: NotificationHub) -> None:
        connector.made[0].healthy = False
        await eventually(lambda: hub.backend_pid == 2)
        assert connector.made[0].closed
        assert hub.connected

    await _with_hub(connector, body, health_every_s=0.01)


async def test_closing_the_hub_closes_the_connection_and_resyncs_readers() -> None:
    connector = Connector()
    hub = NotificationHub(connector)
    await hub.start()
    with hub.subscribe("a") as subscription:
        await hub.close()
        assert subscription.lagging
        assert subscription.queue.get_nowait() is RESYNC
    assert connector.made[0].closed
    assert not hub.connected
