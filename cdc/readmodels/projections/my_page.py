"""The my page: profile, collection and scan counts per user, from auth, my, character and scan
events. The last step of the reward saga becomes visible here (``ProfileUpdated``).

Keys (``ns`` = namespace, ``rm:`` live): ``<ns>my:<user_id>`` (hash) and
``<ns>my_chars:<user_id>`` (hash: character code → JSON). Served as ``GET /api/v1/users/me/page``.
"""

from __future__ import annotations

import json
from typing import Any

import redis.asyncio as redis

from cdc.consumers import ConsumerSpec
from cdc.consumers.apply import Handler
from cdc.readmodels.projections import LIVE, projection_spec, when
from eco2.events import EventEnvelope

NAME = "readmodel.my_page"
SOURCES = {"my": ("profile",), "auth": ("user",), "character": ("character",), "scan": ("scan",)}
"""Database → the aggregates whose events feed this projection."""
PREFIXES = ("my:", "my_chars:")
"""What a rebuild clears (under its key namespace)."""
EVENT_TYPES = (
    "UserRegistered",
    "UserSignedIn",
    "ProfileUpdated",
    "CharacterAcquired",
    "ScanCompleted",
    "UserDeleted",
)
_CHARACTER_FIELDS = ("character_code", "character_name", "character_type", "source", "acquired_at")


def page_key(user_id: str, ns: str = LIVE) -> str:
    return f"{ns}my:{user_id}"


def _user_of(envelope: EventEnvelope) -> str | None:
    user = envelope.payload.get("user_id") or envelope.metadata.user_id
    return str(user) if user else None


def _page_fields(envelope: EventEnvelope) -> dict[str, Any]:
    p = envelope.payload
    match envelope.event_type:
        case "UserRegistered":
            return {
                "display_name": p.get("display_name") or "",
                "provider": p.get("provider") or "",
                "registered_at": when(envelope),
            }
        case "UserSignedIn":
            return {"last_login_at": when(envelope)}
        case "ProfileUpdated":
            return {
                "owned_count": int(p.get("owned_count") or 0),
                "last_change": p.get("change") or "",
                "updated_at": when(envelope),
                "updated_by_event": str(envelope.event_id),
            }
        case "ScanCompleted":
            return {"last_scan_at": when(envelope)}
    return {}


def projector(ns: str = LIVE) -> Handler:
    async def project(envelope: EventEnvelope, pipe: Any) -> None:
        user = _user_of(envelope)
        if user is None:
            return
        page, chars = page_key(user, ns), f"{ns}my_chars:{user}"
        if fields := _page_fields(envelope):
            pipe.hset(page, mapping=fields)
        if envelope.event_type == "ScanCompleted":
            pipe.hincrby(page, "scans", 1)
        elif envelope.event_type == "CharacterAcquired":
            entry = {key: envelope.payload.get(key) for key in _CHARACTER_FIELDS}
            code = envelope.payload["character_code"]
            pipe.hset(chars, code, json.dumps(entry, ensure_ascii=False))
        elif envelope.event_type == "UserDeleted":
            pipe.delete(page, chars)

    return project


async def my_page(client: redis.Redis, user_id: str, ns: str = LIVE) -> dict[str, Any]:
    async with client.pipeline(transaction=False) as pipe:
        pipe.hgetall(page_key(user_id, ns))
        pipe.hgetall(f"{ns}my_chars:{user_id}")
        page, chars = await pipe.execute()
    characters = sorted(
        (json.loads(v) for v in chars.values()), key=lambda c: c.get("acquired_at") or ""
    )
    return {
        "user_id": user_id,
        "display_name": page.get("display_name"),
        "provider": page.get("provider"),
        "owned_count": int(page.get("owned_count", len(characters))),
        "characters": characters,
        "scans": int(page.get("scans", 0)),
        "last_scan_at": page.get("last_scan_at"),
        "last_login_at": page.get("last_login_at"),
        "updated_at": page.get("updated_at"),
    }


def spec(ns: str = LIVE) -> ConsumerSpec:
    return projection_spec(NAME, ns, projector(ns), SOURCES, EVENT_TYPES, PREFIXES)
