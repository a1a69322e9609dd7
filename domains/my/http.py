"""The my domain's HTTP routes [compat: domain.md §11.3], all for the signed-in caller only.

Every route is keyed by :data:`eco2.http.CurrentUser` (the gateway's ``X-User-ID``); no route takes
a user id from the path or body, so one user can neither read nor change another's profile.
``X-Auth-Provider`` (also set by the gateway) fills ``provider`` until ``UserRegistered`` arrives.
A deleted account answers 404 (code ``user_deleted``) everywhere except a repeated DELETE (204).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Header, Request, Response
from pydantic import BaseModel

from domains.my import model, repository
from domains.my.character_api import CharacterApi, CharacterView
from domains.my.model import OwnedCharacter, Profile, ProfileEdit
from eco2.errors import InvalidInput, NotFound
from eco2.events import EventMetadata
from eco2.http import AppPool, CurrentUser

PATCH_EXAMPLE = '{"nickname": "분리왕", "phone_number": "010-1234-5678"}'
MAX_PROVIDER_CHARS = 32

router = APIRouter()


class ProfileView(BaseModel):
    display_name: str | None
    nickname: str | None
    phone_number: str | None
    provider: str | None
    last_login_at: datetime | None


class OwnershipAnswer(BaseModel):
    character_name: str
    owned: bool


async def _character_api(request: Request) -> CharacterApi:
    api: CharacterApi = request.app.state.character_api
    return api


Pool = AppPool
Characters = Annotated[CharacterApi, Depends(_character_api)]
Provider = Annotated[str | None, Header(alias="X-Auth-Provider", max_length=MAX_PROVIDER_CHARS)]
TraceParent = Annotated[str | None, Header()]


def _active(profile: Profile | None) -> Profile | None:
    """``profile`` unless the account was deleted (then :class:`NotFound`)."""
    if profile is not None and profile.deleted:
        raise NotFound(
            "this account was deleted (DELETE /api/v1/users/me); its profile and characters "
            "are gone",
            code="user_deleted",
        )
    return profile


def _view(profile: Profile, provider: str | None) -> ProfileView:
    return ProfileView(
        display_name=profile.display_name,
        nickname=profile.nickname,
        phone_number=profile.phone_number,
        provider=profile.provider or provider,
        last_login_at=profile.last_login_at,
    )


def _character_view(c: OwnedCharacter) -> CharacterView:
    return CharacterView(
        id=c.character_id,
        code=c.character_code,
        name=c.name,
        type=c.type,
        dialog=c.dialog,
        acquired_at=c.acquired_at,
    )


def _metadata(user_id: str, traceparent: str | None) -> EventMetadata:
    return EventMetadata(traceparent=traceparent, correlation_id=uuid.uuid4().hex, user_id=user_id)


@router.get("/api/v1/users/me")
async def get_me(user_id: CurrentUser, pool: Pool, provider: Provider = None) -> ProfileView:
    """The caller's profile; created empty on first access (idempotent)."""
    profile = await repository.get_or_create_profile(pool, user_id, provider)
    _active(profile)
    return _view(profile, provider)


@router.patch("/api/v1/users/me")
async def edit_me(
    user_id: CurrentUser,
    pool: Pool,
    body: Annotated[ProfileEdit | None, Body()] = None,
    provider: Provider = None,
    traceparent: TraceParent = None,
) -> ProfileView:
    """Change nickname and/or phone number; emits ``ProfileUpdated`` (``profile_edited``)."""
    changes = body.changes() if body is not None else {}
    if not changes:
        raise InvalidInput(
            f"nothing to change: send one or more of {', '.join(model.EDITABLE_FIELDS)}, "
            f"e.g. {PATCH_EXAMPLE}"
        )
    async with repository.transaction(pool) as conn:
        _active(await repository.lock_profile(conn, user_id, provider))
        profile = await repository.edit_profile(conn, user_id, changes)
        count = await repository.owned_count(conn, user_id)
        event = model.profile_edited(user_id, count, datetime.now(UTC))
        await repository.emit(conn, user_id, event, _metadata(user_id, traceparent))
    return _view(profile, provider)


@router.delete("/api/v1/users/me", status_code=204)
async def delete_me(
    user_id: CurrentUser, pool: Pool, provider: Provider = None, traceparent: TraceParent = None
) -> Response:
    """Delete the caller's account (``UserDeleted``); repeating it changes nothing."""
    async with repository.transaction(pool) as conn:
        profile = await repository.lock_profile(conn, user_id, provider)
        if not profile.deleted:
            now = datetime.now(UTC)
            await repository.mark_deleted(conn, user_id, now)
            event = model.user_deleted(user_id, now)
            await repository.emit(conn, user_id, event, _metadata(user_id, traceparent))
    return Response(status_code=204)


@router.get("/api/v1/users/me/characters")
async def my_characters(
    user_id: CurrentUser, pool: Pool, characters: Characters, traceparent: TraceParent = None
) -> list[CharacterView]:
    """The caller's characters, oldest first. None yet → onboarding: character grants 이코 and
    it is answered at once (the read model gets it through ``CharacterAcquired``). Character
    unreachable → 503 with Retry-After rather than a wrong empty list."""
    _active(await repository.find_profile(pool, user_id))
    owned = await repository.characters_of(pool, user_id)
    if owned:
        return [_character_view(c) for c in owned]
    return [await characters.onboard(user_id, traceparent)]


@router.get("/api/v1/users/me/characters/{character_name}/ownership")
async def owns_character(user_id: CurrentUser, pool: Pool, character_name: str) -> OwnershipAnswer:
    """Whether the caller owns the character named ``character_name`` (e.g. 페티)."""
    _active(await repository.find_profile(pool, user_id))
    owned = await repository.owns_named(pool, user_id, character_name)
    return OwnershipAnswer(character_name=character_name, owned=owned)
