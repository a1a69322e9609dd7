"""CQRS read models in Valkey, built by projectors from the domains' events (architecture.md §5).

Each module here is one projection: which topics it reads, how each event changes its keys
(queued on the unit of work's MULTI pipeline, see :mod:`cdc.consumers.valkey_inbox`), how to
clear it for a rebuild, and the queries the read API (:mod:`cdc.readmodels.api`) answers from
it. Projections read other domains' event payloads by field name only; they import no domain.

``eco2 cdc consume <name>`` runs one live; ``eco2 cdc rebuild <name>`` rebuilds it from the event
stores with an identical result.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

import redis.asyncio as redis

from cdc.consumers import ConsumerSpec
from cdc.consumers.apply import Handler
from cdc.readmodels.store import delete_prefix
from eco2.events import EventEnvelope

LIVE = "rm:"
"""Key namespace of the live read models; a rebuild may target another to compare."""

PROJECTIONS: dict[str, str] = {
    "scan_history": "cdc.readmodels.projections.scan_history:spec",
    "my_page": "cdc.readmodels.projections.my_page:spec",
    "leaderboard": "cdc.readmodels.projections.leaderboard:spec",
    "chat_index": "cdc.readmodels.projections.chat_index:spec",
}
"""Projection name → ``module:function`` returning its :class:`~cdc.consumers.ConsumerSpec`."""


def projection_spec(
    name: str,
    ns: str,
    handler: Handler,
    sources: Mapping[str, Sequence[str]],
    event_types: Iterable[str],
    prefixes: Iterable[str],
    *,
    fetch_wait_ms: int | None = None,
) -> ConsumerSpec:
    """The consumer of a projection kept under the key namespace ``ns``.

    ``sources`` maps each domain database whose event store feeds it to the aggregates it reads
    there (each aggregate's topic is ``outbox.event.<aggregate>``). A rebuild first deletes the
    keys under ``ns`` + each of ``prefixes``.
    """

    async def clear(client: redis.Redis) -> None:
        for prefix in prefixes:
            await delete_prefix(client, f"{ns}{prefix}")

    return ConsumerSpec(
        name=name if ns == LIVE else f"{name}@{ns}",
        topics=tuple(f"outbox.event.{a}" for aggregates in sources.values() for a in aggregates),
        database=next(iter(sources)),
        handler=handler,
        event_types=frozenset(event_types),
        reset=clear,
        sources=tuple(sources),
        target="valkey",
        rebuild_when_lost=ns == LIVE,  # a namespace of a test or a comparison is left alone
        fetch_wait_ms=fetch_wait_ms,
    )


def epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def when(envelope: EventEnvelope) -> str:
    """The event's time as ISO-8601 (projections never read the clock)."""
    return envelope.occurred_at.isoformat()
