"""The in-memory inbox passes the store contract; batch application dedupes and rolls back, for
per-event handlers and for batch handlers (``apply_batch(conn, envelopes)``)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import pytest
import redis.exceptions

from cdc.consumers.apply import BatchHandler, Failure, apply_batch, batch_handler, classify
from cdc.consumers.inbox import MemoryStore, Store
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


def counting_batches() -> tuple[BatchHandler, list[list[int]]]:
    """A batch handler recording each call's versions, and applying them like ``count``."""
    calls: list[list[int]] = []

    @batch_handler
    async def project(effects: dict[str, Any], envelopes: Sequence[EventEnvelope]) -> None:
        calls.append([e.aggregate_version for e in envelopes])
        for env in envelopes:
            await count(env, effects)
            if env.payload.get("poison"):
                raise RuntimeError("poisoned")

    return project, calls


async def test_batch_handler_gets_the_new_events_once_in_order_in_one_call() -> None:
    store = MemoryStore()
    handler, calls = counting_batches()
    events = [envelope(version=v) for v in (1, 2, 3, 4)]
    assert await apply_batch(store, "c", events[:2], handler) == 2
    assert await apply_batch(store, "c", [*events, events[2], events[0]], handler) == 2
    assert calls == [[1, 2], [3, 4]]  # applied events skipped, repeats within a batch too
    assert await apply_batch(store, "c", events, handler) == 0
    assert calls == [[1, 2], [3, 4]]  # nothing new: not called at all
    assert all(store.effects[str(e.event_id)] == 1 for e in events)
    assert store.effects["order"] == [1, 2, 3, 4]


async def test_failed_batch_handler_rolls_back_and_a_batch_of_one_isolates_the_poison() -> None:
    store = MemoryStore()
    handler, calls = counting_batches()
    good, bad = (
        envelope(version=1),
        envelope(version=2).model_copy(update={"payload": {"poison": 1}}),
    )
    later = envelope(version=3)
    with pytest.raises(RuntimeError):
        await apply_batch(store, "c", [good, bad, later], handler)
    assert store.effects == {}
    assert store.rows == set()
    # what the consumer runtime does next: one event per transaction
    assert await apply_batch(store, "c", [good], handler) == 1
    with pytest.raises(RuntimeError):
        await apply_batch(store, "c", [bad], handler)
    assert await apply_batch(store, "c", [later], handler) == 1
    assert store.effects["order"] == [1, 3]
    assert str(bad.event_id) not in store.effects
    assert calls == [[1, 2, 3], [1], [2], [3]]


async def test_batch_handler_called_with_one_event_applies_a_batch_of_one() -> None:
    handler, calls = counting_batches()
    effects: dict[str, Any] = {}
    event = envelope(version=7)
    await handler(event, effects)
    assert calls == [[7]]
    assert effects[str(event.event_id)] == 1


def test_failures_are_classified() -> None:
    assert classify(ConnectionResetError()) is Failure.INFRASTRUCTURE
    # The read models' Valkey killed, restarting or loading its file: found by `eco2 chaos
    # --scenario valkey`, where each projector dead-lettered the event it was applying.
    assert classify(redis.exceptions.ConnectionError("refused")) is Failure.INFRASTRUCTURE
    assert classify(redis.exceptions.BusyLoadingError("loading")) is Failure.INFRASTRUCTURE
    assert classify(redis.exceptions.TimeoutError()) is Failure.INFRASTRUCTURE
    assert classify(redis.exceptions.ResponseError("WRONGTYPE")) is Failure.RETRIABLE
    assert classify(Unavailable("db")) is Failure.RETRIABLE
    assert classify(PermanentFailure("bad")) is Failure.PERMANENT
    assert classify(KeyError("bug?")) is Failure.RETRIABLE
    assert uuid.uuid4() != uuid.uuid4()
