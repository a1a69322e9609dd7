"""The character domain's rules: plain Python, no I/O.

A grant (from a scan reward or from onboarding) is judged in this order:

1. the user was deleted → rejected (``user_deleted``);
2. the character code is not in the catalogue → rejected (``unknown_character``);
3. otherwise the ownership ``(user_id, character_code)`` is recorded; only a NEW row is an
   acquisition (``CharacterAcquired``). Owning it already changes nothing and emits nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from domains.character.events import CharacterAcquired, CharacterGrantRejected

DEFAULT_CHARACTER_CODE = "char-eco"
"""이코: the mascot, granted at onboarding."""

OWNERSHIP_NAMESPACE = uuid.NAMESPACE_DNS
"""The uuid5 namespace of ownership ids (the original's choice, kept for stable ids)."""


class Source(StrEnum):
    SCAN = "scan"
    ONBOARD = "default-onboard"


class RejectReason(StrEnum):
    UNKNOWN_CHARACTER = "unknown_character"
    USER_DELETED = "user_deleted"


@dataclass(frozen=True)
class Character:
    """A catalogue entry; ``code`` is also its id, ``type`` its sample items (Korean)."""

    code: str
    name: str
    match_label: str
    type: str
    dialog: str
    cdn_code: str

    @property
    def id(self) -> str:
        return self.code

    def image_url(self, cdn_base: str) -> str:
        """``{cdn_base}/character/{cdn_code}.png``; a trailing slash on ``cdn_base`` is fine."""
        return f"{cdn_base.rstrip('/')}/character/{self.cdn_code}.png"


@dataclass(frozen=True)
class Grant:
    """A request to give ``character_code`` to ``user_id``."""

    user_id: str
    character_code: str
    source: Source
    scan_id: str | None = None


@dataclass(frozen=True)
class Ownership:
    id: uuid.UUID
    user_id: str
    character: Character
    source: Source
    scan_id: str | None
    acquired_at: datetime
    status: str = "owned"


@dataclass(frozen=True)
class GrantOutcome:
    """What a grant did: ``granted`` (a new ownership), already owned, or ``rejected``.

    ``ownership`` is the new or the existing row; None only when rejected.
    """

    ownership: Ownership | None
    granted: bool
    rejected: RejectReason | None = None


def ownership_id(user_id: str, character_code: str) -> uuid.UUID:
    """uuid5 of ``ownership:{user_id}:{character_code}``: the same pair always gets the same id."""
    return uuid.uuid5(OWNERSHIP_NAMESPACE, f"ownership:{user_id}:{character_code}")


@dataclass(frozen=True)
class GrantDecision:
    """The outcome of a grant and the one event to record with it (None for an owned one)."""

    outcome: GrantOutcome
    event: CharacterAcquired | CharacterGrantRejected | None


def reject_reason(*, user_deleted: bool, character: Character | None) -> RejectReason | None:
    """Why a grant must be refused, or None if the ownership may be recorded."""
    if user_deleted:
        return RejectReason.USER_DELETED
    if character is None:
        return RejectReason.UNKNOWN_CHARACTER
    return None


def decide_grant(
    grant: Grant,
    *,
    user_deleted: bool,
    character: Character | None,
    existing: Ownership | None,
    now: datetime,
) -> GrantDecision:
    """Judge ``grant`` given what the database holds (see the module docstring for the order).

    ``existing`` is the user's current ownership of ``grant.character_code``, if any.
    """
    reason = reject_reason(user_deleted=user_deleted, character=character)
    if reason is not None:
        return GrantDecision(GrantOutcome(None, False, reason), rejected(grant, reason, now))
    if existing is not None:
        return GrantDecision(GrantOutcome(existing, False), None)
    assert character is not None
    ownership = new_ownership(grant, character, now)
    return GrantDecision(GrantOutcome(ownership, True), acquired(ownership))


def new_ownership(grant: Grant, character: Character, now: datetime) -> Ownership:
    return Ownership(
        id=ownership_id(grant.user_id, character.code),
        user_id=grant.user_id,
        character=character,
        source=grant.source,
        scan_id=grant.scan_id,
        acquired_at=now,
    )


def acquired(ownership: Ownership) -> CharacterAcquired:
    c = ownership.character
    return CharacterAcquired(
        ownership_id=str(ownership.id),
        user_id=ownership.user_id,
        character_id=c.id,
        character_code=c.code,
        character_name=c.name,
        character_type=c.type,
        character_dialog=c.dialog,
        source=ownership.source.value,
        scan_id=ownership.scan_id,
        acquired_at=ownership.acquired_at,
    )


def rejected(grant: Grant, reason: RejectReason, now: datetime) -> CharacterGrantRejected:
    return CharacterGrantRejected(
        scan_id=grant.scan_id,
        user_id=grant.user_id,
        character_code=grant.character_code,
        reason=reason.value,
        rejected_at=now,
    )
