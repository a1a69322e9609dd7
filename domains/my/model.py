"""The my domain's rules: plain Python and pydantic, no I/O.

* A profile edit changes ``nickname`` (1–120 characters after trimming) and/or ``phone_number``
  (10–20 characters, digits and hyphens, starting and ending with a digit); an edit with neither
  changes nothing and is refused by the caller.
* A character is added to the read model once per ``(user, character_code)``; only a new row is a
  ``character_added`` change. A deleted profile takes no new characters.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints

from domains.my.events import ProfileUpdated, UserDeleted

EDITABLE_FIELDS = ("nickname", "phone_number")
PHONE_PATTERN = r"^[0-9][0-9-]{8,18}[0-9]$"

Nickname = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=120)]
PhoneNumber = Annotated[str, StringConstraints(strip_whitespace=True, pattern=PHONE_PATTERN)]


class ProfileEdit(BaseModel):
    """``PATCH /users/me`` body; a field left out (or null) is left unchanged."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    nickname: Nickname | None = None
    phone_number: PhoneNumber | None = None

    def changes(self) -> dict[str, str]:
        """The fields to write; empty means the edit changes nothing."""
        return {k: v for k, v in self.model_dump().items() if v is not None}


@dataclass(frozen=True)
class Profile:
    user_id: str
    display_name: str | None
    nickname: str | None
    phone_number: str | None
    provider: str | None
    last_login_at: datetime | None
    created_at: datetime
    deleted_at: datetime | None
    version: int

    @property
    def deleted(self) -> bool:
        return self.deleted_at is not None


@dataclass(frozen=True)
class OwnedCharacter:
    """One row of the owned-characters read model; ``character_id`` is character's id."""

    user_id: str
    character_code: str
    character_id: str
    name: str
    type: str
    dialog: str
    source: str
    acquired_at: datetime


def character_added(user_id: str, code: str, owned_count: int, now: datetime) -> ProfileUpdated:
    return ProfileUpdated(
        user_id=user_id,
        change="character_added",
        character_code=code,
        owned_count=owned_count,
        updated_at=now,
    )


def profile_edited(user_id: str, owned_count: int, now: datetime) -> ProfileUpdated:
    return ProfileUpdated(
        user_id=user_id,
        change="profile_edited",
        character_code=None,
        owned_count=owned_count,
        updated_at=now,
    )


def user_deleted(user_id: str, now: datetime) -> UserDeleted:
    return UserDeleted(user_id=user_id, deleted_at=now)
