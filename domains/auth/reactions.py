"""Auth's reaction: an account deleted in the profile domain can no longer refresh.

``auth.user_deleted`` consumes ``outbox.event.profile`` and, for ``UserDeleted``, marks the account
deleted and revokes all its refresh tokens; the blacklist keeper (:mod:`domains.auth.blacklist`)
then refuses their access tokens within a couple of seconds. Idempotent beyond the inbox: both
updates only touch rows not yet deleted/revoked. Other event types of the topic, and ids that
are not ours, are ignored.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from cdc.consumers import ConsumerSpec
from domains.auth.repository import mark_user_deleted
from eco2.events import EventEnvelope

PROFILE_TOPIC = "outbox.event.profile"


class UserDeleted(BaseModel):
    """Our reading of profile/UserDeleted (only the fields auth uses)."""

    model_config = ConfigDict(extra="ignore")
    user_id: str
    deleted_at: datetime


async def on_profile_event(envelope: EventEnvelope, conn: Any) -> None:
    if envelope.event_type != "UserDeleted":
        return
    event = UserDeleted.model_validate(envelope.payload)
    try:
        user_id = uuid.UUID(event.user_id)
    except ValueError:
        return  # not an id auth ever issued
    await mark_user_deleted(conn, user_id, event.deleted_at)


def user_deleted_consumer() -> ConsumerSpec:
    return ConsumerSpec(
        name="auth.user_deleted",
        topics=(PROFILE_TOPIC,),
        database="auth",
        handler=on_profile_event,
        event_types=frozenset({"UserDeleted"}),
    )
