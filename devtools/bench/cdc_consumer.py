"""Consumer throughput for ``eco2 bench cdc``: events/s applied through the inbox runtime.

The effect handler is a batch projector (one ``INSERT ... SELECT FROM unnest(...)`` per batch,
one effect row per event); the no-op handler measures the runtime and the inbox alone.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg

from cdc.consumers.apply import batch_handler
from eco2.events import EventEnvelope
from eco2.migrations import database_dsn
from eco2.settings import Settings

_PROJECT = "INSERT INTO bench_effects (event_id, n) SELECT * FROM unnest($1::uuid[], $2::int[])"


async def consumer_throughput(settings: Settings, db: str, count: int, noop: bool) -> float:
    from confluent_kafka import Producer

    from cdc.consumers.inbox import PostgresStore
    from cdc.consumers.runtime import ConsumerRuntime, ConsumerSpec
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
    await pool.execute("TRUNCATE bench_effects")

    @batch_handler
    async def project(conn: Any, envelopes: Sequence[EventEnvelope]) -> None:
        """What a real projector does: one effect row per event, one statement per batch."""
        await conn.execute(
            _PROJECT, [e.event_id for e in envelopes], [e.payload["n"] for e in envelopes]
        )

    async def nothing(envelope: EventEnvelope, conn: Any) -> None:
        pass

    spec = ConsumerSpec(
        name=f"bench-{uuid.uuid4().hex[:8]}",
        topics=(topic,),
        database=db,
        handler=nothing if noop else project,
    )
    runtime = ConsumerRuntime([(spec, PostgresStore(pool))], settings, batch_size=1000)
    stats = runtime.members[0].stats
    stop = asyncio.Event()
    task = asyncio.create_task(runtime.run(stop))
    # Sampling the runtime's counters every 10 ms is the measurement itself, not a wait.
    while stats.messages == 0:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    started = time.perf_counter()
    first = stats.messages  # the first batch (group join included) is not counted
    while stats.applied < count and time.perf_counter() - started < 300:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    elapsed = time.perf_counter() - started
    stop.set()
    await task
    written = await pool.fetchval("SELECT count(*) FROM bench_effects")
    await pool.close()
    if written != (0 if noop else stats.applied):
        raise RuntimeError(f"{stats.applied} events applied but {written} effect rows")
    return (stats.applied - first) / elapsed
