"""``eco2 bench saga``: the reward saga's end-to-end latency and the projectors' throughput.

Saga latency: ``RewardGranted`` rows are committed into the scan database's event store at a
steady rate, one new user each; the time until that user's ``ProfileUpdated`` is visible in the
my-page read model in Valkey is measured. In between: WAL relay → Kafka → character (ownership +
``CharacterAcquired``, one transaction) → relay → my (``ProfileUpdated``) → relay → projector →
Valkey. Needs the local stack (``eco2 up --detach``) with its domain host running.

Projector throughput: synthetic ``CharacterAcquired`` events are produced to a scratch topic and
consumed by the real consumer runtime into a scratch namespace of the my-page and leaderboard
read models (Valkey inbox, MULTI/EXEC per batch), timed from the first to the last applied event.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, cast

import asyncpg
import typer
from confluent_kafka import Producer

from cdc.consumers.runtime import ConsumerRuntime, ConsumerSpec
from cdc.consumers.valkey_inbox import ValkeyStore, inbox_key
from cdc.outbox import (
    H_AGGREGATE_TYPE,
    H_AGGREGATE_VERSION,
    H_EVENT_TYPE,
    H_ID,
    H_METADATA,
    H_OCCURRED_AT,
    H_SCHEMA_VERSION,
    Headers,
)
from cdc.readmodels.projections import leaderboard, my_page
from cdc.readmodels.store import connect, delete_prefix
from cluster.running import running_settings
from devtools.bench.cdc import percentile
from eco2.kafka import producer_config
from eco2.migrations import database_dsn
from eco2.settings import Settings

_GRANT = """
INSERT INTO event_store (event_id, aggregate_type, aggregate_id, aggregate_version, event_type,
                         schema_version, payload, metadata)
VALUES ($1, 'scan', $2, 1, 'RewardGranted', 1, $3::text::jsonb, $4::text::jsonb)
"""


def _grant(user: str, scan_id: str) -> tuple[str, str]:
    payload = {
        "scan_id": scan_id,
        "user_id": user,
        "character_id": "char-petty",
        "character_code": "char-petty",
        "character_name": "페티",
        "match_label": "무색페트병",
        "match_reason": "무색페트병",
        "reward_type": "character",
        "source": "scan",
    }
    meta = {"correlation_id": scan_id, "user_id": user}
    return json.dumps(payload, ensure_ascii=False), json.dumps(meta)


async def saga_latency(settings: Settings, grants: int, rate: float) -> dict[str, Any]:
    assert settings.db.url is not None
    cache_url = settings.cache.require("bench saga")
    run = uuid.uuid4().hex[:8]
    users = [f"bench-saga-{run}-{i}" for i in range(grants)]
    committed: dict[str, float] = {}
    seen: dict[str, float] = {}
    conn = await asyncpg.connect(database_dsn(settings.db.url, settings.database_name("scan")))
    valkey = connect(cache_url)

    async def writer() -> None:
        interval = 1.0 / rate
        start = time.perf_counter()
        for i, user in enumerate(users):
            await asyncio.sleep(max(0.0, start + i * interval - time.perf_counter()))
            scan_id = str(uuid.uuid4())
            payload, meta = _grant(user, scan_id)
            await conn.execute(_GRANT, uuid.uuid4(), scan_id, payload, meta)
            committed[user] = time.perf_counter()

    async def watcher(deadline: float) -> None:
        while len(seen) < grants and time.perf_counter() < deadline:
            pending = [u for u in committed if u not in seen]
            if pending:
                async with valkey.pipeline(transaction=False) as pipe:
                    for user in pending:
                        pipe.hget(my_page.page_key(user), "updated_at")
                    found = await pipe.execute()
                now = time.perf_counter()
                for user, value in zip(pending, found, strict=True):
                    if value is not None:
                        seen[user] = now
            await asyncio.sleep(0.001)

    try:
        deadline = time.perf_counter() + grants / rate + 60
        await asyncio.gather(writer(), watcher(deadline))
    finally:
        await conn.close()
        await valkey.aclose()
    latencies = [(seen[u] - committed[u]) * 1000 for u in seen]
    return {
        "grants": grants,
        "rate_per_s": rate,
        "completed": len(seen),
        "saga_p50_ms": round(percentile(latencies, 0.50), 1),
        "saga_p95_ms": round(percentile(latencies, 0.95), 1),
        "saga_p99_ms": round(percentile(latencies, 0.99), 1),
        "saga_max_ms": round(max(latencies), 1) if latencies else None,
    }


def _acquired(user: str, code: str, n: int) -> tuple[bytes, bytes, Headers]:
    """One ``CharacterAcquired`` message in the relay's outbox format (payload + headers)."""
    now = datetime.now(UTC).isoformat()
    payload = {
        "user_id": user,
        "character_code": code,
        "character_name": code,
        "character_type": "bench",
        "source": "scan",
        "acquired_at": now,
    }
    headers: Headers = [
        (H_ID, str(uuid.uuid4()).encode()),
        (H_EVENT_TYPE, b"CharacterAcquired"),
        (H_AGGREGATE_TYPE, b"character"),
        (H_AGGREGATE_VERSION, str(n).encode()),
        (H_SCHEMA_VERSION, b"1"),
        (H_OCCURRED_AT, now.encode()),
        (H_METADATA, b"{}"),
    ]
    return user.encode(), json.dumps(payload).encode(), headers


async def projector_throughput(settings: Settings, events: int) -> dict[str, Any]:
    cache_url = settings.cache.require("bench saga")
    run = uuid.uuid4().hex[:8]
    topic, ns = f"bench.projector.{run}", f"rmbench-{run}:"
    producer = Producer(producer_config(settings))
    for i in range(events):
        key, value, headers = _acquired(f"u{i % 2000}", f"c{i}", i // 2000 + 1)
        producer.produce(topic, value, key, headers=cast(Any, headers))
        if i % 10_000 == 0:
            producer.poll(0)
    producer.flush(60)

    page, board = my_page.projector(ns), leaderboard.projector(ns)

    async def both(envelope: Any, pipe: Any) -> None:
        await page(envelope, pipe)
        await board(envelope, pipe)

    spec = ConsumerSpec(
        name=f"bench.projector.{run}",
        topics=(topic,),
        database="my",
        handler=both,
        target="valkey",
    )
    valkey = connect(cache_url)
    runtime = ConsumerRuntime([(spec, ValkeyStore(valkey))], settings, batch_size=1000)
    stats = runtime.members[0].stats
    stop = asyncio.Event()
    task = asyncio.create_task(runtime.run(stop))
    first: float | None = None
    deadline = time.perf_counter() + 300
    while stats.applied < events and time.perf_counter() < deadline:
        if first is None and stats.applied:
            first = time.perf_counter()
        await asyncio.sleep(0.01)
    last = time.perf_counter()
    stop.set()
    await task
    applied = stats.applied
    await delete_prefix(valkey, ns)
    await valkey.delete(inbox_key(spec.name))
    await valkey.aclose()
    elapsed = last - (first or last)
    return {
        "projector_events": events,
        "projector_applied": applied,
        "projector_events_per_s": round(applied / elapsed) if elapsed > 0 else None,
        "projector_batches": stats.batches,
    }


def bench_saga(
    as_json: Annotated[bool, typer.Option("--json", help="print the figures as JSON")] = False,
    grants: Annotated[int, typer.Option(help="RewardGranted events, one new user each")] = 300,
    rate: Annotated[float, typer.Option(help="grants per second (steady)")] = 30.0,
    events: Annotated[int, typer.Option(help="events for the projector run")] = 50_000,
) -> None:
    """Reward saga p50/p99 (RewardGranted commit → read model) and projector throughput."""
    settings = running_settings()
    result = {
        "command": f"eco2 bench saga --grants {grants} --rate {rate} --events {events}",
        **asyncio.run(saga_latency(settings, grants, rate)),
        **asyncio.run(projector_throughput(settings, events)),
    }
    typer.echo(json.dumps(result, ensure_ascii=False, indent=None if as_json else 2))
