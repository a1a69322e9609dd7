"""CQRS read models in Valkey, built by projectors from the domains' events (architecture.md §5).

Each module here is one projection: which topics it reads, how each event changes its keys
(queued on the unit of work's MULTI pipeline, see :mod:`cdc.consumers.valkey_inbox`), how to
clear it for a rebuild, and the queries the read API (:mod:`cdc.readmodels.api`) answers from
it. Projections read other domains' event payloads by field name only; they import no domain.

``eco2 cdc consume <name>`` runs one live; ``eco2 cdc rebuild <name>`` rebuilds it from the event
stores with an identical result.
"""

from __future__ import annotations

from datetime import datetime

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


def epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def when(envelope: EventEnvelope) -> str:
    """The event's time as ISO-8601 (projections never read the clock)."""
    return envelope.occurred_at.isoformat()
