"""Character domain events, appended to ``eco2_character``'s event store.

Aggregate type ``character``, aggregate id = the user id: every event of one user's collection has
the next version of that user's ``character_users.version``. Both events cross domains:
``CharacterAcquired`` feeds the my domain's owned-characters read model, ``CharacterGrantRejected``
is the compensation signal for the scan domain (it revokes the reward).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from eco2.events import Event, EventRegistry

AGGREGATE_TYPE = "character"
registry = EventRegistry()


@registry.register
class CharacterAcquired(Event):
    """A NEW ownership row was written (a repeated grant emits nothing)."""

    event_type = "CharacterAcquired"
    ownership_id: str
    user_id: str
    character_id: str
    character_code: str
    character_name: str
    character_type: str
    character_dialog: str
    source: Literal["scan", "default-onboard"]
    scan_id: str | None
    acquired_at: datetime


@registry.register
class CharacterGrantRejected(Event):
    """A grant that cannot be honoured; ``scan_id`` is None for an onboarding grant."""

    event_type = "CharacterGrantRejected"
    scan_id: str | None
    user_id: str
    character_code: str
    reason: Literal["unknown_character", "user_deleted"]
    rejected_at: datetime
