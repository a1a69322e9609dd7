"""The chat domain's rules: plain Python, no framework or driver.

What a chat and a message are, the limits on what a user may send (every refusal says what to do
instead), the preview and the default title of a conversation, and the opaque cursors of its
pages.
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from eco2.errors import InvalidInput

PREVIEW_CHARS = 80
DEFAULT_TITLE = "새 대화"
MAX_CURSOR_CHARS = 200
Role = Literal["user", "assistant"]


@dataclass(frozen=True)
class Chat:
    chat_id: uuid.UUID
    user_id: str
    title: str
    preview: str | None
    message_count: int
    last_message_at: datetime | None
    created_at: datetime
    summary: str | None = None
    summarised_upto: int = 0
    version: int = 1

    @property
    def activity(self) -> datetime:
        """When the chat last changed for its user: its last message, else its creation."""
        return self.last_message_at or self.created_at


@dataclass(frozen=True)
class Message:
    message_id: uuid.UUID
    chat_id: uuid.UUID
    position: int
    role: Role
    content: str
    created_at: datetime
    job_id: uuid.UUID | None = None
    image_url: str | None = None
    intent: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Location:
    latitude: float
    longitude: float


def checked_title(title: str | None, limit: int) -> str:
    """A title as stored: trimmed, not empty, at most ``limit`` characters."""
    text = " ".join((title or "").split())
    if not text:
        raise InvalidInput(
            "title must not be empty; send a short name for the chat", code="bad_title"
        )
    if len(text) > limit:
        raise InvalidInput(f"title is longer than {limit} characters; shorten it", code="bad_title")
    return text


def checked_message(message: str, limit: int) -> str:
    """A message as stored: not blank, at most ``limit`` characters (whitespace kept)."""
    if not message.strip():
        raise InvalidInput("message must not be empty; type a question", code="empty_message")
    if len(message) > limit:
        raise InvalidInput(
            f"message is longer than {limit} characters ({len(message)}); shorten it or split it",
            code="message_too_long",
        )
    return message


def checked_location(latitude: float, longitude: float) -> Location:
    if not -90 <= latitude <= 90 or not -180 <= longitude <= 180:
        raise InvalidInput(
            "user_location must have latitude in [-90, 90] and longitude in [-180, 180]",
            code="bad_location",
        )
    return Location(latitude, longitude)


def preview_of(text: str) -> str:
    """The list's one-line preview of a message."""
    line = " ".join(text.split())
    return line if len(line) <= PREVIEW_CHARS else line[: PREVIEW_CHARS - 1] + "…"


def title_from(message: str, limit: int) -> str:
    """A chat's title from its first message (when the user gave none)."""
    line = " ".join(message.split())
    return (line if len(line) <= limit else line[: limit - 1] + "…") or DEFAULT_TITLE


def encode_cursor(*parts: str) -> str:
    raw = json.dumps(list(parts), separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, size: int) -> list[str]:
    """The ``size`` parts of a cursor from :func:`encode_cursor`; :class:`InvalidInput` else."""
    try:
        if len(cursor) > MAX_CURSOR_CHARS:
            raise ValueError("too long")
        parts = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(parts, list) or len(parts) != size:
            raise ValueError("wrong shape")
        if not all(isinstance(p, str) for p in parts):
            raise ValueError("not strings")
    except (ValueError, TypeError) as exc:
        raise InvalidInput(
            "cursor must be the next_cursor of a previous page", code="invalid_cursor"
        ) from exc
    return parts
