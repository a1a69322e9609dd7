"""Consumer throughput for ``eco2 bench cdc``: events/s applied through the inbox runtime."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import asyncpg

from eco2.events import EventEnvelope
from eco2.migrations import database_dsn
from eco2.settings import Settings


async def consumer_throughput(settings: Settings, db: str, count: int, noop: bool) -> float:
    from confluent_kafka import Producer

    from cdc.consumer import ConsumerRuntime, ConsumerSpec
    from cdc.inbox import PostgresStore
    from cdc.outbox import EVENT_COLUMNS, RowLayout, record_from_values
    from eco2.kafka import producer_config

    assert settings.db.url is not None
    topic = f"bench.cdc.consumer.{uuid.uuid4().hex[:8]}"
    producer, layout = Producer(producer_config(settings)), RowLayout(EVENT_COLUMNS)
    for n in range(count):
        values = [
            str(uuid.uuid4()),
            "bench",
            f"c{n % 100}",
            str(n + 1),
            "Benched",
            "1",
            '{"n": 1}',
            "{}",
            "2026-01-01 00:00:00+00",
        ]
        record = record_from_values(layout, [v.encode() for v in values], {})
        while True:
            try:
                producer.produce(topic, record.value, record.key, headers=record.headers)  # type: ignore[arg-type]
                break
            except BufferError:
                producer.poll(0.05)
    producer.flush(60)
    pool = await asyncpg.create_pool(database_dsn(settings.db.url, db), min_size=1, max_size=2)
    await pool.execute("CREATE TABLE IF NOT EXISTS bench_effects (event_id uuid, n int)")

    async def effect(envelope: EventEnvelope, conn: Any) -> None:
        if not noop:
            await conn.execute("INSERT INTO bench_effects VALUES ($1, $2)", envelope.event_id, 1)

    spec = ConsumerSpec(
        name=f"bench-{uuid.uuid4().hex[:8]}", topics=(topic,), database=db, handler=effect
    )
    runtime = ConsumerRuntime(spec, settings, PostgresStore(pool), batch_size=1000)
    stop = asyncio.Event()
    task = asyncio.create_task(runtime.run(stop))
    # Sampling the runtime's counters every 10 ms is the measurement itself, not a wait.
    while runtime.stats.messages == 0:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    started = time.perf_counter()
    first = runtime.stats.messages  # the first batch (group join included) is not counted
    while runtime.stats.applied < count and time.perf_counter() - started < 300:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    elapsed = time.perf_counter() - started
    stop.set()
    await task
    await pool.close()
    return (runtime.stats.applied - first) / elapsed
