"""The user's scan history: one hash per scan, a sorted set per user, from the scan events.

Keys (``ns`` = namespace, ``rm:`` live): ``<ns>scan:<scan_id>`` (hash) and
``<ns>scan_history:<user_id>`` (sorted set of scan ids by request time in ms). Each event sets
its own fields only and the status is derived when read, so the hash does not depend on the
order events of different scans arrive in. Served as ``GET /api/v1/scan/history``.
"""

from __future__ import annotations

from typing import Any, cast

import redis.asyncio as redis

from cdc.consumers import ConsumerSpec
from cdc.consumers.apply import Handler
from cdc.readmodels.projections import LIVE, epoch_ms, projection_spec, when
from eco2.events import EventEnvelope

NAME = "readmodel.scan_history"
SOURCES = {"scan": ("scan",)}
"""Database → the aggregates whose events feed this projection."""
PREFIXES = ("scan:", "scan_history:")
"""What a rebuild clears (under its key namespace)."""
EVENT_TYPES = (
    "ScanRequested",
    "ScanClassified",
    "ScanAnswered",
    "RewardGranted",
    "RewardRevoked",
    "ScanCompleted",
    "ScanFailed",
)


def _scan_fields(envelope: EventEnvelope) -> dict[str, Any]:
    p = envelope.payload
    match envelope.event_type:
        case "ScanRequested":
            return {
                "scan_id": p["scan_id"],
                "user_id": p["user_id"],
                "image_url": p["image_url"],
                "requested_at": when(envelope),
            }
        case "ScanClassified":
            c = p.get("classification") or {}
            names = ("major_category", "middle_category", "minor_category")
            return {key: c.get(key) or "" for key in names}
        case "ScanAnswered":
            return {
                "rule_id": p.get("rule_id") or "",
                "insufficiencies": len(p.get("insufficiencies") or []),
            }
        case "RewardGranted":
            return {"character_code": p["character_code"], "character_name": p["character_name"]}
        case "RewardRevoked":
            return {"reward_revoked": p.get("reason") or "revoked"}
        case "ScanCompleted":
            return {"completed_at": when(envelope), "rewarded": int(bool(p.get("rewarded")))}
        case "ScanFailed":
            return {"failed_at": when(envelope), "failed_stage": p.get("stage") or ""}
    return {}


def projector(ns: str = LIVE) -> Handler:
    async def project(envelope: EventEnvelope, pipe: Any) -> None:
        fields = _scan_fields(envelope)
        if not fields:
            return
        pipe.hset(f"{ns}scan:{envelope.aggregate_id}", mapping=fields)
        if envelope.event_type == "ScanRequested":
            score = epoch_ms(envelope.occurred_at)
            pipe.zadd(f"{ns}scan_history:{fields['user_id']}", {envelope.aggregate_id: score})

    return project


def _status(fields: dict[str, str]) -> str:
    if fields.get("completed_at"):
        return "completed"
    return "failed" if fields.get("failed_at") else "processing"


def view(fields: dict[str, str]) -> dict[str, Any]:
    """One history entry as the API shows it."""
    rewarded = fields.get("rewarded") == "1" and not fields.get("reward_revoked")
    return {
        "scan_id": fields.get("scan_id"),
        "status": _status(fields),
        "image_url": fields.get("image_url"),
        "major_category": fields.get("major_category") or None,
        "middle_category": fields.get("middle_category") or None,
        "minor_category": fields.get("minor_category") or None,
        "rule_id": fields.get("rule_id") or None,
        "rewarded": rewarded,
        "character_name": fields.get("character_name") if rewarded else None,
        "reward_revoked": fields.get("reward_revoked") or None,
        "requested_at": fields.get("requested_at"),
        "completed_at": fields.get("completed_at"),
        "result_url": f"/api/v1/scan/{fields.get('scan_id')}/result",
    }


async def history(
    client: redis.Redis, user_id: str, limit: int, before_ms: int | None, ns: str = LIVE
) -> tuple[list[dict[str, Any]], int | None]:
    """Newest first; returns ``(entries, cursor for the next page or None)``.

    The cursor is the last entry's time and the next page starts below it, so scans requested
    in the same millisecond go on one page: a page cut inside such a tie takes the rest of it
    (and may hold more than ``limit`` entries)."""
    key = f"{ns}scan_history:{user_id}"
    high = "+inf" if before_ms is None else f"({before_ms}"
    found = cast(
        list[tuple[str, float]],
        await client.zrevrangebyscore(key, high, "-inf", start=0, num=limit + 1, withscores=True),
    )
    page, more = found[:limit], len(found) > limit
    if more and page and found[limit][1] == page[-1][1]:
        page, more = await _with_whole_tie(client, key, page)
    async with client.pipeline(transaction=False) as pipe:
        for scan_id, _score in page:
            pipe.hgetall(f"{ns}scan:{scan_id}")
        rows = await pipe.execute()
    entries = [view(row) for row in rows if row]
    return entries, (int(page[-1][1]) if more and page else None)


async def _with_whole_tie(
    client: redis.Redis, key: str, page: list[tuple[str, float]]
) -> tuple[list[tuple[str, float]], bool]:
    """``page`` with every entry of its last score, and whether older entries follow."""
    score = page[-1][1]
    tie = cast(
        list[tuple[str, float]],
        await client.zrevrangebyscore(key, score, score, withscores=True),
    )
    older = await client.zrevrangebyscore(key, f"({score}", "-inf", start=0, num=1)
    return [entry for entry in page if entry[1] != score] + tie, bool(older)


def spec(ns: str = LIVE) -> ConsumerSpec:
    # History pages may lag a quarter second; the saga's consumers keep the short wait.
    return projection_spec(
        NAME, ns, projector(ns), SOURCES, EVENT_TYPES, PREFIXES, fetch_wait_ms=250
    )
