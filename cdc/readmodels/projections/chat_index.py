"""The searchable chat index: each user's chats by last activity, and their words.

Keys (``ns`` = namespace, ``rm:`` live): ``<ns>chat:<chat_id>`` (hash: title, user, last
activity, deleted), ``<ns>chat_index:<user_id>`` (sorted set of chat ids by last activity, ms)
and ``<ns>chat_words:<user_id>:<word>`` (set of chat ids). Words come from titles and both sides
of every message, lower-cased, with every prefix of two or more characters (Korean attaches
particles: 페트병은 is found by 페트병). Served as ``GET /api/v1/chat/search?q=``.
"""

from __future__ import annotations

import re
from typing import Any, cast

import redis.asyncio as redis

from cdc.consumers import ConsumerSpec
from cdc.consumers.apply import Handler
from cdc.readmodels.projections import LIVE, epoch_ms, projection_spec
from eco2.events import EventEnvelope

NAME = "readmodel.chat_index"
SOURCES = {"chat": ("chat",)}
"""Database → the aggregates whose events feed this projection."""
PREFIXES = ("chat:", "chat_index:", "chat_words:")
"""What a rebuild clears (under its key namespace)."""
EVENT_TYPES = ("ChatCreated", "ChatRenamed", "ChatDeleted", "MessagePosted", "ChatAnswered")
MAX_WORDS = 200
MAX_PREFIX = 12
_WORD = re.compile(r"\w+")


def words(text: str) -> set[str]:
    """The searchable words of ``text``: each token's prefixes of 2..12 characters."""
    found: set[str] = set()
    for token in _WORD.findall(text.lower()):
        found.update(token[:n] for n in range(2, min(len(token), MAX_PREFIX) + 1))
        if len(found) >= MAX_WORDS:
            break
    return found


def _text_of(envelope: EventEnvelope) -> str:
    p = envelope.payload
    match envelope.event_type:
        case "ChatCreated" | "ChatRenamed":
            return str(p.get("title") or "")
        case "MessagePosted":
            return str(p.get("content") or "")
        case "ChatAnswered":
            return str(p.get("assistant_message") or "")
    return ""


def projector(ns: str = LIVE) -> Handler:
    async def project(envelope: EventEnvelope, pipe: Any) -> None:
        p, chat_id = envelope.payload, envelope.aggregate_id
        user = p.get("user_id")
        if not user:
            return
        key = f"{ns}chat:{chat_id}"
        at = epoch_ms(envelope.occurred_at)
        if envelope.event_type == "ChatDeleted":
            pipe.hset(key, mapping={"deleted": 1})
            pipe.zrem(f"{ns}chat_index:{user}", chat_id)
            return
        if envelope.event_type in ("ChatCreated", "ChatRenamed"):
            pipe.hset(key, mapping={"chat_id": chat_id, "user_id": user, "title": p["title"]})
        pipe.hset(key, mapping={"last_activity_ms": at})
        pipe.zadd(f"{ns}chat_index:{user}", {chat_id: at}, gt=True)
        for word in words(_text_of(envelope)):
            pipe.sadd(f"{ns}chat_words:{user}:{word}", chat_id)

    return project


async def search(
    client: redis.Redis, user_id: str, query: str, limit: int, ns: str = LIVE
) -> list[dict[str, Any]]:
    """The user's chats containing every word of ``query``, most recently active first."""
    terms = sorted({t for t in _WORD.findall(query.lower()) if len(t) >= 2})
    if not terms:
        return []
    keys = [f"{ns}chat_words:{user_id}:{t[:MAX_PREFIX]}" for t in terms]
    matching = cast(set[str], await client.sinter(keys))
    if not matching:
        return []
    async with client.pipeline(transaction=False) as pipe:
        for chat_id in matching:
            pipe.hgetall(f"{ns}chat:{chat_id}")
        rows = cast(list[dict[str, str]], await pipe.execute())
    live = [r for r in rows if r and not r.get("deleted") and r.get("user_id") == user_id]
    live.sort(key=lambda r: int(r.get("last_activity_ms", 0)), reverse=True)
    return [
        {
            "id": r["chat_id"],
            "title": r.get("title"),
            "last_activity_ms": int(r.get("last_activity_ms", 0)),
        }
        for r in live[:limit]
    ]


def spec(ns: str = LIVE) -> ConsumerSpec:
    return projection_spec(
        NAME, ns, projector(ns), SOURCES, EVENT_TYPES, PREFIXES, fetch_wait_ms=250
    )
