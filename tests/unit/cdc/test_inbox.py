"""The in-memory inbox passes the store contract; batch application dedupes and rolls back."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from cdc.apply import Failure, apply_batch, classify
from cdc.inbox import MemoryStore, Store
from eco2.errors import PermanentFailure, Unavailable
from eco2.events import EventEnvelope
from tests.unit.cdc.inbox_contract import InboxContract


class TestMemoryStore(InboxContract):
    @pytest.fixture
    def store(self) -> Store:
        return MemoryStore()


def envelope(aggregate: str = "a", version: int = 1) -> EventEnvelope:
    return EventEnvelope(
        event_type="Counted",
        aggregate_type="t",
        aggregate_id=aggregate,
        aggregate_version=version,
        payload={"n": version},
    )


async def count(env: EventEnvelope, effects: dict[str, Any]) -> None:
    effects[str(env.event_id)] = effects.get(str(env.event_id), 0) + 1
    effects.setdefault("order", []).append(env.aggregate_version)


async def test_each_event_applied_once_even_if_delivered_twice() -> None:
    store = MemoryStore()
    events = [envelope(version=v) for v in (1, 2, 3)]
    assert await apply_batch(store, "c", [*events, events[1]], count) == 3
    assert await apply_batch(store, "c", events, count) == 0
    assert all(store.effects[str(e.event_id)] == 1 for e in events)
    assert store.effects["order"] == [1, 2, 3]


async def test_failed_batch_leaves_no_effect_and_no_inbox_row() -> None:
    store = MemoryStore()
    good, bad = envelope(version=1), envelope(version=2)

    async def fails_on_two(env: EventEnvelope, effects: dict[str, Any]) -> None:
        await count(env, effects)
        if env.aggregate_version == 2:
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await apply_batch(store, "c", [good, bad], fails_on_two)
    assert store.effects == {}
    assert store.rows == set()
    assert await apply_batch(store, "c", [good], count) == 1


def test_failures_are_classified() -> None:
    assert classify(ConnectionResetError()) is Failure.INFRASTRUCTURE
    assert classify(Unavailable("db")) is Failure.RETRIABLE
    assert classify(PermanentFailure("bad")) is Failure.PERMANENT
    assert classify(KeyError("bug?")) is Failure.RETRIABLE
    assert uuid.uuid4() != uuid.uuid4()
