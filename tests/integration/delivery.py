"""Delivering events to a reaction the way the consumer runtime does, twice, for the
idempotency checks of the domain tests, and the scan event they react to most."""

from __future__ import annotations

import uuid

import asyncpg

from cdc.consumers import ConsumerSpec
from cdc.consumers.apply import apply_batch
from cdc.consumers.inbox import PostgresStore
from eco2.events import EventEnvelope, EventMetadata


async def apply_twice(pool: asyncpg.Pool, spec: ConsumerSpec, envelope: EventEnvelope) -> list[int]:
    """Apply ``envelope`` twice through ``spec``'s handler; the new-event count of each call.

    The inbox is private to this delivery: the stack's own consumer of the same name may apply a
    stored event first (the relay publishes it). The effect must still happen once, which the
    natural keys guarantee, while the counts seen here stay deterministic."""
    store, inbox = PostgresStore(pool), f"{spec.name}@test-{uuid.uuid4().hex[:8]}"
    return [await apply_batch(store, inbox, [envelope], spec.handler) for _ in range(2)]


def reward_granted(user_id: str, code: str = "char-petty", name: str = "페티") -> EventEnvelope:
    """The scan domain's ``RewardGranted`` for a scan of its own."""
    scan_id = str(uuid.uuid4())
    return EventEnvelope(
        event_type="RewardGranted",
        aggregate_type="scan",
        aggregate_id=scan_id,
        aggregate_version=4,
        payload={
            "scan_id": scan_id,
            "user_id": user_id,
            "character_id": code,
            "character_code": code,
            "character_name": name,
            "match_label": "무색페트병",
            "match_reason": "무색페트병>무색페트병(물병)",
            "reward_type": "character",
            "source": "scan",
        },
        metadata=EventMetadata(
            correlation_id=scan_id,
            user_id=user_id,
            traceparent="00-" + "a" * 32 + "-" + "b" * 16 + "-01",
        ),
    )
