"""Notices and the rules that make them from other domains' events (plain Python).

A notice belongs to one user and its ``id`` is the ``event_id`` of the event it comes from, so
however often that event is delivered there is at most one notice for it. The payload models
below are this domain's own view of the fields it reads (other fields are ignored); a payload
without them fails validation, which the consumer runtime treats as permanent (dead letter).
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from eco2.errors import InvalidInput
from eco2.events import EventEnvelope

CHARACTER_ACQUIRED = "character_acquired"
COLLECTION_UPDATED = "collection_updated"
MAX_CURSOR_CHARS = 200


class CharacterAcquired(BaseModel):
    """character/CharacterAcquired, as far as a notice needs it."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    user_id: str = Field(min_length=1)
    character_code: str = Field(min_length=1)
    character_name: str = Field(min_length=1)
    source: str
    scan_id: str | None = None


class ProfileUpdated(BaseModel):
    """profile/ProfileUpdated, as far as a notice needs it."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    user_id: str = Field(min_length=1)
    change: str
    character_code: str | None = None
    owned_count: int = Field(ge=0)


@dataclass(frozen=True)
class Notice:
    """A notice to write: ``id`` is the source event's id."""

    id: uuid.UUID
    user_id: str
    kind: str
    title: str
    body: str
    data: dict[str, Any]


@dataclass(frozen=True)
class StoredNotice(Notice):
    """A notice as stored: ``created_at`` orders the feed, ``read_at`` is None while unread."""

    created_at: datetime
    read_at: datetime | None

    @property
    def position(self) -> FeedPosition:
        return FeedPosition(self.created_at, self.id)


@dataclass(frozen=True)
class FeedPosition:
    """A place in one user's feed: the feed is ordered by ``(created_at, id)``."""

    created_at: datetime
    id: uuid.UUID


def _has_final_consonant(word: str) -> bool | None:
    """Whether a Korean word ends in a final consonant (받침); None if it ends in no syllable."""
    last = word.strip()[-1:]
    if not last or not "가" <= last <= "힣":
        return None
    return (ord(last) - ord("가")) % 28 != 0


def with_subject_particle(word: str) -> str:
    """``word`` + 이/가 as Korean grammar wants it (``이(가)`` when it cannot tell)."""
    final = _has_final_consonant(word)
    if final is None:
        return f"{word}이(가)"
    return f"{word}{'이' if final else '가'}"


def character_acquired_notice(event_id: uuid.UUID, event: CharacterAcquired) -> Notice:
    """The notice that the user has met a new character."""
    name = with_subject_particle(event.character_name)
    if event.source == "default-onboard":
        title = "첫 캐릭터가 찾아왔어요"
        body = f"{name} 함께할게요. 사진 한 장으로 분리배출을 시작해 보세요!"
    else:
        title = "새 캐릭터를 만났어요!"
        body = f"{name} 컬렉션에 들어왔어요. 제대로 분리배출해 준 덕분이에요."
    data = {
        "character_code": event.character_code,
        "character_name": event.character_name,
        "source": event.source,
        "scan_id": event.scan_id,
    }
    return Notice(event_id, event.user_id, CHARACTER_ACQUIRED, title, body, data)


def collection_updated_notice(event_id: uuid.UUID, event: ProfileUpdated) -> Notice | None:
    """The notice that the user's collection grew; None for any other profile change."""
    if event.change != "character_added":
        return None
    title = "컬렉션이 늘었어요"
    body = f"지금까지 캐릭터 {event.owned_count}종을 모았어요. 다음 친구도 만나 볼까요?"
    data = {"owned_count": event.owned_count, "character_code": event.character_code}
    return Notice(event_id, event.user_id, COLLECTION_UPDATED, title, body, data)


def notice_from_character_event(envelope: EventEnvelope) -> Notice | None:
    """A notice for ``CharacterAcquired``; None for the aggregate's other event types."""
    if envelope.event_type != "CharacterAcquired":
        return None
    event = CharacterAcquired.model_validate(envelope.payload)
    return character_acquired_notice(envelope.event_id, event)


def notice_from_profile_event(envelope: EventEnvelope) -> Notice | None:
    """A notice for ``ProfileUpdated`` with change ``character_added``; None otherwise."""
    if envelope.event_type != "ProfileUpdated":
        return None
    event = ProfileUpdated.model_validate(envelope.payload)
    return collection_updated_notice(envelope.event_id, event)


def encode_cursor(position: FeedPosition) -> str:
    """An opaque cursor for the page after ``position`` (URL-safe, no padding)."""
    raw = json.dumps([position.created_at.isoformat(), str(position.id)], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> FeedPosition:
    """The position a cursor from :func:`encode_cursor` stands for.

    Raises :class:`InvalidInput` (code ``invalid_cursor``) for anything else.
    """
    try:
        if len(cursor) > MAX_CURSOR_CHARS:
            raise ValueError("too long")
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        parts = json.loads(raw)
        if not isinstance(parts, list) or not all(isinstance(p, str) for p in parts):
            raise ValueError("not a list of strings")
        created, notice_id = parts
        position = FeedPosition(datetime.fromisoformat(created), uuid.UUID(notice_id))
    except (ValueError, TypeError, binascii.Error) as exc:
        raise _bad_cursor() from exc
    if position.created_at.tzinfo is None:
        raise _bad_cursor()
    return position


def _bad_cursor() -> InvalidInput:
    return InvalidInput(
        "the cursor is not one this API gave out: pass next_cursor from the previous page "
        "unchanged, or leave it out to start from the newest notice",
        code="invalid_cursor",
    )
