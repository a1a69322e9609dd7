"""The character domain's event reactions (the reward saga's second step).

* ``character.rewards`` (``outbox.event.scan``): ``RewardGranted`` → :func:`repository.grant`:
  a new ownership + ``CharacterAcquired``; an owned character → nothing; a deleted user or an
  unknown character → ``CharacterGrantRejected`` (the scan domain compensates).
* ``character.profiles`` (``outbox.event.profile``): ``UserDeleted`` → the user is marked deleted.

Each handler writes on the inbox transaction's connection, so effect, event and inbox row commit
together; the unique ``(user_id, character_code)`` keeps a grant idempotent beyond the inbox too.
Other event types on these topics are ignored.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from cdc.consumers import ConsumerSpec
from domains.character import repository
from domains.character.model import Grant, Source
from eco2.events import EventEnvelope, EventMetadata
from eco2.telemetry import get_logger

_log = get_logger(__name__)


class RewardGrantedIn(BaseModel):
    """The fields of scan's ``RewardGranted`` this domain reads."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    scan_id: str
    user_id: str
    character_code: str


class UserDeletedIn(BaseModel):
    """The fields of my's ``UserDeleted`` this domain reads."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    user_id: str
    deleted_at: datetime


def follow_up(envelope: EventEnvelope, user_id: str, correlation: str) -> EventMetadata:
    """Metadata of an event caused by ``envelope``: same trace and correlation, caused by it."""
    return EventMetadata(
        traceparent=envelope.metadata.traceparent,
        correlation_id=envelope.metadata.correlation_id or correlation,
        causation_id=str(envelope.event_id),
        user_id=user_id,
    )


async def on_scan_event(envelope: EventEnvelope, conn: Any) -> None:
    if envelope.event_type != "RewardGranted":
        return
    reward = RewardGrantedIn.model_validate(envelope.payload)
    request = Grant(reward.user_id, reward.character_code, Source.SCAN, reward.scan_id)
    outcome = await repository.grant(
        conn, request, follow_up(envelope, reward.user_id, reward.scan_id)
    )
    # One line per scan is noise at load; a rejected grant, the start of the compensation, is
    # worth a line at the default level.
    log = _log.info if outcome.rejected else _log.debug
    log(
        "reward applied",
        scan_id=reward.scan_id,
        character_code=reward.character_code,
        granted=outcome.granted,
        rejected=outcome.rejected,
    )


async def on_profile_event(envelope: EventEnvelope, conn: Any) -> None:
    if envelope.event_type != "UserDeleted":
        return
    deleted = UserDeletedIn.model_validate(envelope.payload)
    await repository.mark_user_deleted(conn, deleted.user_id, deleted.deleted_at)


def consumer_specs() -> list[ConsumerSpec]:
    return [
        ConsumerSpec(
            name="character.rewards",
            topics=("outbox.event.scan",),
            database="character",
            handler=on_scan_event,
            event_types=frozenset({"RewardGranted"}),
        ),
        ConsumerSpec(
            name="character.profiles",
            topics=("outbox.event.profile",),
            database="character",
            handler=on_profile_event,
            event_types=frozenset({"UserDeleted"}),
        ),
    ]
