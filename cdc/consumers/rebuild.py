"""Rebuild a consumer's state from the event stores, without Kafka.

The consumer's inbox is emptied and its ``reset`` run (one transaction), then every event of its
input aggregate types is applied from each source database's ``event_store`` in ``position`` order
(which is version order within an aggregate), in batches through the same inbox transaction as the
live runtime. Run it with the consumer stopped; when the consumer resumes, Kafka delivers what
committed meanwhile and its inbox skips what the rebuild already applied.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from contextlib import AsyncExitStack

import asyncpg

from cdc.consumers.apply import apply_batch
from cdc.consumers.inbox import Store
from cdc.consumers.runtime import ConsumerSpec, database_of, open_store
from cdc.outbox import TOPIC_PREFIX
from eco2.events import EventEnvelope
from eco2.migrations import database_dsn
from eco2.settings import Settings
from eco2.telemetry import get_logger

log = get_logger(__name__)

BATCH = 1000
_SELECT = """
SELECT position, event_id, aggregate_type, aggregate_id, aggregate_version, event_type,
       schema_version, payload::text AS payload, metadata::text AS metadata, occurred_at
FROM event_store WHERE aggregate_type = ANY($1::text[]) AND position > $2
  AND ($4::text[] IS NULL OR event_type = ANY($4::text[]))
ORDER BY position LIMIT $3
"""


def aggregate_types(spec: ConsumerSpec) -> list[str]:
    return [t.removeprefix(TOPIC_PREFIX) for t in spec.topics if t.startswith(TOPIC_PREFIX)]


def _envelope(row: asyncpg.Record) -> EventEnvelope:
    fields = {k: row[k] for k in row.keys() if k != "position"}  # noqa: SIM118 (Record API)
    fields["payload"] = json.loads(row["payload"])
    fields["metadata"] = json.loads(row["metadata"])
    return EventEnvelope.model_validate(fields)


async def _replay_source(
    settings: Settings, source: str, spec: ConsumerSpec, store: Store, types: Sequence[str]
) -> int:
    assert settings.db.url is not None
    try:
        conn = await asyncpg.connect(database_dsn(settings.db.url, database_of(settings, source)))
    except asyncpg.InvalidCatalogNameError:
        log.info("rebuild: source database does not exist", source=source)
        return 0
    applied, last = 0, 0
    try:
        wanted = sorted(spec.event_types) if spec.event_types is not None else None
        while rows := await conn.fetch(_SELECT, list(types), last, BATCH, wanted):
            envelopes = [_envelope(r) for r in rows]
            applied += await apply_batch(store, spec.name, envelopes, spec.handler)
            last = rows[-1]["position"]
    finally:
        await conn.close()
    return applied


async def rebuild(spec: ConsumerSpec, settings: Settings, store: Store | None = None) -> int:
    """Reset ``spec``'s state, re-apply its input from the event stores, mark it whole; return
    the count. ``store``: the consumer's own (a live consumer rebuilding itself), else one is
    opened for the rebuild."""
    if settings.db.url is None:
        raise ValueError("no database configured: set ECO2_DB__URL or run `eco2 up`")
    async with AsyncExitStack() as stack:
        if store is None:
            store = await stack.enter_async_context(open_store(spec, settings))
        await store.reset(spec.name, spec.reset)
        types, total = aggregate_types(spec), 0
        for source in spec.sources:
            total += await _replay_source(settings, source, spec, store, types)
        await store.mark_whole(spec.name)
    log.info("rebuild done", consumer=spec.name, events=total)
    return total
