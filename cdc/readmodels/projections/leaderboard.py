"""The character leaderboard: how many users own each character, and each user's collection
size, from ``CharacterAcquired`` (a new ownership; a repeated grant emits none).

Keys (``ns`` = namespace, ``rm:`` live): ``<ns>leaderboard:characters`` and
``<ns>leaderboard:collectors`` (sorted sets). Served as ``GET /api/v1/character/leaderboard``.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as redis

from cdc.consumers import ConsumerSpec
from cdc.consumers.apply import Handler
from cdc.readmodels.projections import LIVE, projection_spec
from eco2.events import EventEnvelope

NAME = "readmodel.leaderboard"
SOURCES = {"character": ("character",)}
"""Database → the aggregates whose events feed this projection."""
PREFIXES = ("leaderboard:",)
"""What a rebuild clears (under its key namespace)."""
EVENT_TYPES = ("CharacterAcquired",)


def projector(ns: str = LIVE) -> Handler:
    async def project(envelope: EventEnvelope, pipe: Any) -> None:
        if envelope.event_type != "CharacterAcquired":
            return
        pipe.zincrby(f"{ns}leaderboard:characters", 1, envelope.payload["character_code"])
        pipe.zincrby(f"{ns}leaderboard:collectors", 1, envelope.payload["user_id"])

    return project


async def leaderboard(
    client: redis.Redis, user_id: str, limit: int, ns: str = LIVE
) -> dict[str, Any]:
    collectors = f"{ns}leaderboard:collectors"
    async with client.pipeline(transaction=False) as pipe:
        pipe.zrevrange(f"{ns}leaderboard:characters", 0, limit - 1, withscores=True)
        pipe.zscore(collectors, user_id)
        pipe.zrevrank(collectors, user_id)
        pipe.zcard(collectors)
        top, owned, rank, count = await pipe.execute()
    return {
        "characters": [
            {"rank": i + 1, "code": code, "owners": int(score)}
            for i, (code, score) in enumerate(top)
        ],
        "me": {"owned": int(owned or 0), "rank": None if rank is None else rank + 1},
        "collectors": count,
    }


def spec(ns: str = LIVE) -> ConsumerSpec:
    return projection_spec(NAME, ns, projector(ns), SOURCES, EVENT_TYPES, PREFIXES)
