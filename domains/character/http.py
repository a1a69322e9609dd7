"""The character domain's HTTP routes.

Public (no sign-in): ``GET /api/v1/character/catalog`` [compat: ``[{name, type, dialog,
match}]``, plus ``code`` and ``image_url``]. Internal (never routed by the gateway):
``POST /internal/characters/onboard`` grants 이코 idempotently and
``GET /internal/characters/{user_id}`` lists a user's owned characters.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Header, Request
from pydantic import BaseModel, Field

from domains.character import repository
from domains.character.model import (
    DEFAULT_CHARACTER_CODE,
    Character,
    Grant,
    Ownership,
    RejectReason,
    Source,
)
from eco2.errors import NotFound, Unavailable
from eco2.events import EventMetadata
from eco2.http import MAX_USER_ID_CHARS, AppPool

ONBOARD_EXAMPLE = '{"user_id": "3f2c9a7e-..."}'

router = APIRouter()


class CatalogEntry(BaseModel):
    name: str
    type: str
    dialog: str
    match: str
    code: str
    image_url: str


class OwnedCharacter(BaseModel):
    id: str
    code: str
    name: str
    type: str
    dialog: str
    acquired_at: datetime


class OwnershipView(OwnedCharacter):
    ownership_id: str
    source: str
    scan_id: str | None


class OnboardRequest(BaseModel):
    user_id: str = Field(min_length=1, max_length=MAX_USER_ID_CHARS)


class OnboardAnswer(BaseModel):
    granted: bool
    """True when this call created the ownership (and emitted ``CharacterAcquired``)."""
    character: OwnedCharacter


Pool = AppPool


def _entry(character: Character, cdn_base: str) -> CatalogEntry:
    return CatalogEntry(
        name=character.name,
        type=character.type,
        dialog=character.dialog,
        match=character.match_label,
        code=character.code,
        image_url=character.image_url(cdn_base),
    )


def _owned(ownership: Ownership) -> OwnedCharacter:
    c = ownership.character
    return OwnedCharacter(
        id=c.id,
        code=c.code,
        name=c.name,
        type=c.type,
        dialog=c.dialog,
        acquired_at=ownership.acquired_at,
    )


def _ownership_view(ownership: Ownership) -> OwnershipView:
    return OwnershipView(
        **_owned(ownership).model_dump(),
        ownership_id=str(ownership.id),
        source=ownership.source.value,
        scan_id=ownership.scan_id,
    )


@router.get("/api/v1/character/catalog")
async def get_catalog(request: Request) -> list[CatalogEntry]:
    """The 13 characters in catalogue order (loaded once at start-up; they change by migration)."""
    characters: list[Character] = request.app.state.catalog
    cdn_base: str = request.app.state.cdn_base_url
    return [_entry(c, cdn_base) for c in characters]


@router.post("/internal/characters/onboard")
async def onboard(
    body: OnboardRequest, pool: Pool, traceparent: Annotated[str | None, Header()] = None
) -> OnboardAnswer:
    """Grant 이코 (source ``default-onboard``); calling it again answers the same ownership with
    ``granted: false``. A deleted user gets 404 (code ``user_deleted``)."""
    request = Grant(body.user_id, DEFAULT_CHARACTER_CODE, Source.ONBOARD)
    metadata = EventMetadata(
        traceparent=traceparent,
        correlation_id=f"onboard:{body.user_id}",
        user_id=body.user_id,
    )
    async with repository.transaction(pool) as conn:
        outcome = await repository.grant(conn, request, metadata)
    if outcome.rejected is RejectReason.USER_DELETED:
        raise NotFound(
            f"user {body.user_id} was deleted; a deleted account gets no characters",
            code="user_deleted",
        )
    if outcome.ownership is None:  # 이코 missing from the catalogue: the migration did not run
        raise Unavailable("the character catalogue is not seeded; run the migrations and retry")
    return OnboardAnswer(granted=outcome.granted, character=_owned(outcome.ownership))


@router.get("/internal/characters/{user_id}")
async def list_owned(user_id: str, pool: Pool) -> list[OwnershipView]:
    """The user's owned characters, oldest first (empty for a user never granted any)."""
    return [_ownership_view(o) for o in await repository.owned_by(pool, user_id)]
