"""Envelopes of the events the notification domain reads, shaped as the other domains send them
(brief payloads of character/CharacterAcquired and profile/ProfileUpdated). Shared by the unit and
integration tests of the notification domain."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from eco2.events import EventEnvelope, EventMetadata


def new_user() -> str:
    return f"user-{uuid.uuid4().hex[:12]}"


def _envelope(
    event_type: str, aggregate_type: str, user_id: str, payload: dict[str, Any], version: int
) -> EventEnvelope:
    return EventEnvelope(
        event_type=event_type,
        aggregate_type=aggregate_type,
        aggregate_id=user_id,
        aggregate_version=version,
        payload=payload,
        metadata=EventMetadata(user_id=user_id, correlation_id=str(uuid.uuid4())),
    )


def character_acquired(
    user_id: str,
    *,
    code: str = "char-petty",
    name: str = "페티",
    source: str = "scan",
    scan_id: str | None = "scan-1",
    version: int = 1,
) -> EventEnvelope:
    payload = {
        "ownership_id": str(uuid.uuid4()),
        "user_id": user_id,
        "character_id": str(uuid.uuid4()),
        "character_code": code,
        "character_name": name,
        "character_type": "무색페트병",
        "character_dialog": "라벨 벗기고 꾹 눌러서, 뚜껑은 닫아서 보내 줘!",
        "source": source,
        "scan_id": scan_id,
        "acquired_at": datetime.now(UTC).isoformat(),
    }
    return _envelope("CharacterAcquired", "character", user_id, payload, version)


def grant_rejected(user_id: str, *, version: int = 1) -> EventEnvelope:
    payload = {
        "scan_id": "scan-1",
        "user_id": user_id,
        "character_code": "char-nope",
        "reason": "unknown_character",
        "rejected_at": datetime.now(UTC).isoformat(),
    }
    return _envelope("CharacterGrantRejected", "character", user_id, payload, version)


def profile_updated(
    user_id: str,
    *,
    change: str = "character_added",
    code: str | None = "char-petty",
    owned_count: int = 2,
    version: int = 1,
) -> EventEnvelope:
    payload = {
        "user_id": user_id,
        "change": change,
        "character_code": code,
        "owned_count": owned_count,
        "updated_at": datetime.now(UTC).isoformat(),
    }
    return _envelope("ProfileUpdated", "profile", user_id, payload, version)
