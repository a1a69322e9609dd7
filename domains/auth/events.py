"""Events of the ``user`` aggregate (aggregate id = user id), published as ``outbox.event.user``.

Both cross domains, so their payloads are a contract (other domains keep their own models of
them): ``UserRegistered`` once per account, on its first sign-in; ``UserSignedIn`` on every
sign-in, the first included (so a new account yields both, in that order).
"""

from __future__ import annotations

from datetime import datetime

from eco2.events import Event, EventRegistry

AGGREGATE_TYPE = "user"
registry = EventRegistry()


@registry.register
class UserRegistered(Event):
    event_type = "UserRegistered"
    user_id: str
    provider: str
    display_name: str
    registered_at: datetime


@registry.register
class UserSignedIn(Event):
    event_type = "UserSignedIn"
    user_id: str
    provider: str
    signed_in_at: datetime
