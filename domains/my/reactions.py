"""The my domain's event reactions.

* ``my.users`` (``outbox.event.user``): ``UserRegistered`` / ``UserSignedIn`` → profile upsert
  (display name, provider, latest login time); order-insensitive, so redelivery changes nothing.
* ``my.characters`` (``outbox.event.character``): ``CharacterAcquired`` → a ``user_characters``
  row (unique per user and character); only a NEW row emits ``ProfileUpdated``
  (``character_added`` with the new ``owned_count``). A deleted profile takes no new character.

Handlers write on the inbox transaction's connection; other event types are ignored.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from cdc.consumers import ConsumerSpec
from domains.my import model, repository
from domains.my.model import OwnedCharacter
from eco2.events import EventEnvelope, EventMetadata
from eco2.telemetry import get_logger

_log = get_logger(__name__)


class _In(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class UserRegisteredIn(_In):
    user_id: str
    provider: str
    display_name: str | None = None
    registered_at: datetime


class UserSignedInIn(_In):
    user_id: str
    provider: str
    signed_in_at: datetime


class CharacterAcquiredIn(_In):
    user_id: str
    character_id: str
    character_code: str
    character_name: str
    character_type: str
    character_dialog: str
    source: str
    acquired_at: datetime


async def on_user_event(envelope: EventEnvelope, conn: Any) -> None:
    if envelope.event_type == "UserRegistered":
        registered = UserRegisteredIn.model_validate(envelope.payload)
        await repository.record_sign_in(
            conn,
            registered.user_id,
            registered.provider,
            registered.display_name,
            registered.registered_at,
        )
    elif envelope.event_type == "UserSignedIn":
        signed_in = UserSignedInIn.model_validate(envelope.payload)
        await repository.record_sign_in(
            conn, signed_in.user_id, signed_in.provider, None, signed_in.signed_in_at
        )


async def on_character_event(envelope: EventEnvelope, conn: Any) -> None:
    if envelope.event_type != "CharacterAcquired":
        return
    acquired = CharacterAcquiredIn.model_validate(envelope.payload)
    profile = await repository.lock_profile(conn, acquired.user_id, None)
    if profile.deleted:
        _log.info("character for a deleted profile ignored", user_id=acquired.user_id)
        return
    if not await repository.add_character(conn, _owned(acquired)):
        return
    count = await repository.owned_count(conn, acquired.user_id)
    event = model.character_added(
        acquired.user_id, acquired.character_code, count, datetime.now(UTC)
    )
    await repository.emit(conn, acquired.user_id, event, _follow_up(envelope, acquired.user_id))


def _owned(acquired: CharacterAcquiredIn) -> OwnedCharacter:
    return OwnedCharacter(
        user_id=acquired.user_id,
        character_code=acquired.character_code,
        character_id=acquired.character_id,
        name=acquired.character_name,
        type=acquired.character_type,
        dialog=acquired.character_dialog,
        source=acquired.source,
        acquired_at=acquired.acquired_at,
    )


def _follow_up(envelope: EventEnvelope, user_id: str) -> EventMetadata:
    return EventMetadata(
        traceparent=envelope.metadata.traceparent,
        correlation_id=envelope.metadata.correlation_id or str(envelope.event_id),
        causation_id=str(envelope.event_id),
        user_id=user_id,
    )


def consumer_specs() -> list[ConsumerSpec]:
    return [
        ConsumerSpec(
            name="my.users",
            topics=("outbox.event.user",),
            database="my",
            handler=on_user_event,
            event_types=frozenset({"UserRegistered", "UserSignedIn"}),
        ),
        ConsumerSpec(
            name="my.characters",
            topics=("outbox.event.character",),
            database="my",
            handler=on_character_event,
            event_types=frozenset({"CharacterAcquired"}),
        ),
    ]
