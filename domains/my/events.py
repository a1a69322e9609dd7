"""My domain events, appended to ``eco2_my``'s event store.

Aggregate type ``profile``, aggregate id = the user id; each event takes the next
``profiles.version`` of that user. ``ProfileUpdated`` feeds notification; ``UserDeleted`` tells the
other domains the account is gone (character rejects later grants).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from eco2.events import Event, EventRegistry

AGGREGATE_TYPE = "profile"
registry = EventRegistry()


@registry.register
class ProfileUpdated(Event):
    event_type = "ProfileUpdated"
    user_id: str
    change: Literal["character_added", "profile_edited"]
    character_code: str | None
    owned_count: int
    updated_at: datetime


@registry.register
class UserDeleted(Event):
    event_type = "UserDeleted"
    user_id: str
    deleted_at: datetime
