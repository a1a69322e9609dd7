"""The notification domain's reactions: the last step of the reward saga.

Each handler runs inside the inbox transaction on ``eco2_notification`` and writes, in one
statement, one notice per relevant event (id = the event's id, ``ON CONFLICT DO NOTHING``) and a
``pg_notify`` for each new one. So a notice exists at most once however often its event is
delivered, and live subscribers hear of it only when it committed. Other event types of the
topics are skipped; a payload without the fields a notice needs is a permanent failure.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from cdc.consumers import ConsumerSpec
from cdc.consumers.apply import BatchHandler, batch_handler
from domains.notification.model import (
    Notice,
    notice_from_character_event,
    notice_from_profile_event,
)
from domains.notification.repository import insert_notices
from eco2.events import EventEnvelope

DATABASE = "notification"
CHARACTERS = "notification.characters"
PROFILES = "notification.profiles"


def _writing(notice_of: Callable[[EventEnvelope], Notice | None]) -> BatchHandler:
    """A batch handler writing ``notice_of(event)`` for every event that yields one."""

    async def write(conn: Any, envelopes: Sequence[EventEnvelope]) -> None:
        notices = [n for n in map(notice_of, envelopes) if n is not None]
        await insert_notices(conn, notices)

    return batch_handler(write)


on_character_events = _writing(notice_from_character_event)
"""character/CharacterAcquired → a ``character_acquired`` notice."""

on_profile_events = _writing(notice_from_profile_event)
"""profile/ProfileUpdated (change ``character_added``) → a ``collection_updated`` notice."""


def specs() -> list[ConsumerSpec]:
    """The consumers of this domain (group/inbox names are stable: do not rename them)."""
    return [
        ConsumerSpec(
            name=CHARACTERS,
            topics=("outbox.event.character",),
            database=DATABASE,
            handler=on_character_events,
            sources=("character",),
            event_types=frozenset({"CharacterAcquired"}),
        ),
        ConsumerSpec(
            name=PROFILES,
            topics=("outbox.event.profile",),
            database=DATABASE,
            handler=on_profile_events,
            sources=("my",),
            event_types=frozenset({"ProfileUpdated"}),
        ),
    ]
