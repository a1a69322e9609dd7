"""The my domain on the real ``eco2_my``: profiles from auth events, /users/me, the owned-
characters read model (each event delivered twice), onboarding through the character service,
and user isolation."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest

from domains.character.service import consumers as character_consumers
from domains.character.service import create_app as create_character_app
from domains.my.service import consumers, create_app
from eco2 import eventstore
from eco2.db import create_pool
from eco2.events import EventEnvelope
from eco2.settings import Settings
from tests.integration.delivery import apply_twice, reward_granted

pytestmark = pytest.mark.integration

PROFILE_KEYS = {"display_name", "nickname", "phone_number", "provider", "last_login_at"}
CHARACTER_KEYS = {"id", "code", "name", "type", "dialog", "acquired_at"}


@dataclass
class Stack:
    my: httpx.AsyncClient
    my_pool: asyncpg.Pool
    character_pool: asyncpg.Pool
    settings: Settings

    async def deliver_twice(self, name: str, envelope: EventEnvelope) -> list[int]:
        specs = {
            s.name: s for s in [*consumers(self.settings), *character_consumers(self.settings)]
        }
        spec = specs[name]
        pool = self.my_pool if spec.database == "my" else self.character_pool
        return await apply_twice(pool, spec, envelope)

    async def my_events(self, user_id: str) -> list[EventEnvelope]:
        async with self.my_pool.acquire() as conn:
            return await eventstore.load(conn, user_id)

    async def character_events(self, user_id: str) -> list[EventEnvelope]:
        async with self.character_pool.acquire() as conn:
            return await eventstore.load(conn, user_id)


@pytest.fixture
async def stack_(settings: Settings) -> AsyncIterator[Stack]:
    """my wired to an in-process character app (httpx.ASGITransport), both with their pools."""
    character_app = create_character_app(settings)
    async with character_app.router.lifespan_context(character_app):
        to_character = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=character_app), base_url="http://character"
        )
        my_app = create_app(settings, character_client=to_character)
        async with (
            to_character,
            my_app.router.lifespan_context(my_app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=my_app), base_url="http://t") as my,
        ):
            my_pool = await create_pool(settings, "my", min_size=1, max_size=2)
            character_pool = await create_pool(settings, "character", min_size=1, max_size=2)
            try:
                yield Stack(my, my_pool, character_pool, settings)
            finally:
                await my_pool.close()
                await character_pool.close()


def _as(user_id: str, provider: str = "kakao") -> dict[str, str]:
    return {"X-User-ID": user_id, "X-Auth-Provider": provider}


def _user() -> str:
    return f"user-{uuid.uuid4()}"


def _event(
    event_type: str, aggregate_type: str, user_id: str, payload: dict[str, Any]
) -> EventEnvelope:
    return EventEnvelope(
        event_type=event_type,
        aggregate_type=aggregate_type,
        aggregate_id=user_id,
        aggregate_version=1,
        payload=payload,
    )


def acquired(user_id: str, code: str, name: str) -> EventEnvelope:
    return _event(
        "CharacterAcquired",
        "character",
        user_id,
        {
            "ownership_id": str(uuid.uuid4()),
            "user_id": user_id,
            "character_id": code,
            "character_code": code,
            "character_name": name,
            "character_type": f"{name}의 품목",
            "character_dialog": f"{name} 대사",
            "source": "scan",
            "scan_id": str(uuid.uuid4()),
            "acquired_at": "2025-03-01T09:30:00+00:00",
        },
    )


async def test_profile_comes_from_registration_and_sign_in_events(stack_: Stack) -> None:
    user = _user()
    registered = _event(
        "UserRegistered",
        "user",
        user,
        {
            "user_id": user,
            "provider": "google",
            "display_name": "김이코",
            "registered_at": "2025-03-01T09:00:00+00:00",
        },
    )
    signed_in = _event(
        "UserSignedIn",
        "user",
        user,
        {"user_id": user, "provider": "google", "signed_in_at": "2025-03-02T10:00:00+00:00"},
    )
    # Out of order on purpose: the latest login wins, the name arrives whenever it does.
    assert await stack_.deliver_twice("my.users", signed_in) == [1, 0]
    assert await stack_.deliver_twice("my.users", registered) == [1, 0]

    response = await stack_.my.get("/api/v1/users/me", headers=_as(user, "kakao"))

    assert response.status_code == 200
    assert response.json() == {
        "display_name": "김이코",
        "nickname": None,
        "phone_number": None,
        "provider": "google",
        "last_login_at": "2025-03-02T10:00:00Z",
    }


async def test_first_access_creates_the_profile_once(stack_: Stack) -> None:
    user = _user()
    first = await stack_.my.get("/api/v1/users/me", headers=_as(user))
    second = await stack_.my.get("/api/v1/users/me", headers=_as(user))

    assert first.status_code == second.status_code == 200
    assert set(first.json()) == PROFILE_KEYS
    assert first.json() == second.json()
    assert first.json()["provider"] == "kakao"
    assert (
        await stack_.my_pool.fetchval("SELECT count(*) FROM profiles WHERE user_id = $1", user) == 1
    )


async def test_patch_edits_the_profile_and_emits_profile_updated(stack_: Stack) -> None:
    user = _user()
    body = {"nickname": "분리왕", "phone_number": "010-1234-5678"}
    response = await stack_.my.patch("/api/v1/users/me", json=body, headers=_as(user))

    assert response.status_code == 200
    assert set(response.json()) == PROFILE_KEYS
    assert response.json()["nickname"] == "분리왕"
    assert response.json()["phone_number"] == "010-1234-5678"

    partial = await stack_.my.patch(
        "/api/v1/users/me", json={"nickname": "이코팬"}, headers=_as(user)
    )
    assert partial.json()["phone_number"] == "010-1234-5678"
    assert (await stack_.my.get("/api/v1/users/me", headers=_as(user))).json() == partial.json()

    events = await stack_.my_events(user)
    assert [(e.event_type, e.payload["change"], e.aggregate_version) for e in events] == [
        ("ProfileUpdated", "profile_edited", 1),
        ("ProfileUpdated", "profile_edited", 2),
    ]
    assert events[0].payload["owned_count"] == 0


async def test_bad_patches_change_nothing(stack_: Stack) -> None:
    user = _user()
    empty = await stack_.my.patch("/api/v1/users/me", json={}, headers=_as(user))
    invalid = await stack_.my.patch(
        "/api/v1/users/me", json={"phone_number": "12"}, headers=_as(user)
    )

    assert empty.status_code == 400
    assert "nickname" in empty.json()["error"]["message"]
    assert invalid.status_code == 422
    assert await stack_.my_events(user) == []


async def test_delete_removes_the_account_and_tells_the_others(stack_: Stack) -> None:
    user = _user()
    await stack_.my.patch("/api/v1/users/me", json={"nickname": "곧 탈퇴"}, headers=_as(user))

    deleted = await stack_.my.delete("/api/v1/users/me", headers=_as(user))
    again = await stack_.my.delete("/api/v1/users/me", headers=_as(user))

    assert deleted.status_code == again.status_code == 204
    events = await stack_.my_events(user)
    assert [e.event_type for e in events] == ["ProfileUpdated", "UserDeleted"]
    for method in ("GET", "PATCH"):
        gone = await stack_.my.request(
            method, "/api/v1/users/me", json={"nickname": "x"}, headers=_as(user)
        )
        assert gone.status_code == 404
        assert "deleted" in gone.json()["error"]["message"]
    gone = await stack_.my.get("/api/v1/users/me/characters", headers=_as(user))
    assert gone.status_code == 404

    # The saga's other side: character hears UserDeleted and refuses later grants.
    await stack_.deliver_twice("character.profiles", events[1])
    await stack_.deliver_twice("character.rewards", reward_granted(user, "char-petty"))
    [rejected] = await stack_.character_events(user)
    assert rejected.payload["reason"] == "user_deleted"


async def test_character_acquired_twice_adds_one_row_and_one_event(stack_: Stack) -> None:
    user = _user()
    petty = acquired(user, "char-petty", "페티")
    assert await stack_.deliver_twice("my.characters", petty) == [1, 0]
    # The same acquisition under a new event id (e.g. a replay) adds nothing either.
    await stack_.deliver_twice("my.characters", acquired(user, "char-petty", "페티"))
    await stack_.deliver_twice("my.characters", acquired(user, "char-bini", "비니"))

    rows = await stack_.my_pool.fetch(
        "SELECT character_code FROM user_characters WHERE user_id = $1 ORDER BY character_code",
        user,
    )
    assert [r["character_code"] for r in rows] == ["char-bini", "char-petty"]
    events = await stack_.my_events(user)
    assert [
        (e.payload["change"], e.payload["character_code"], e.payload["owned_count"]) for e in events
    ] == [
        ("character_added", "char-petty", 1),
        ("character_added", "char-bini", 2),
    ]
    assert events[0].metadata.causation_id == str(petty.event_id)

    listed = (await stack_.my.get("/api/v1/users/me/characters", headers=_as(user))).json()
    assert all(set(c) == CHARACTER_KEYS for c in listed)
    assert {c["name"] for c in listed} == {"페티", "비니"}
    owns = await stack_.my.get("/api/v1/users/me/characters/페티/ownership", headers=_as(user))
    assert owns.json() == {"character_name": "페티", "owned": True}
    not_owned = await stack_.my.get(
        "/api/v1/users/me/characters/글래시/ownership", headers=_as(user)
    )
    assert not_owned.json() == {"character_name": "글래시", "owned": False}


async def test_onboarding_through_character_and_back_by_events(stack_: Stack) -> None:
    user = _user()
    first = await stack_.my.get("/api/v1/users/me/characters", headers=_as(user))
    again = await stack_.my.get("/api/v1/users/me/characters", headers=_as(user))

    assert first.status_code == again.status_code == 200
    [ico] = first.json()
    assert set(ico) == CHARACTER_KEYS
    assert (ico["id"], ico["code"], ico["name"]) == ("char-eco", "char-eco", "이코")
    assert again.json() == first.json()

    # character recorded one ownership and one CharacterAcquired; my learns it from that event.
    [acquired_event] = await stack_.character_events(user)
    assert acquired_event.payload["source"] == "default-onboard"
    assert await stack_.deliver_twice("my.characters", acquired_event) == [1, 0]

    listed = await stack_.my.get("/api/v1/users/me/characters", headers=_as(user))
    assert listed.json() == first.json()
    [updated] = await stack_.my_events(user)
    assert (updated.payload["character_code"], updated.payload["owned_count"]) == ("char-eco", 1)


async def test_the_whole_reward_saga_from_scan_to_profile(stack_: Stack) -> None:
    user = _user()
    granted = reward_granted(user, "char-glassy")
    await stack_.deliver_twice("character.rewards", granted)
    [acquired_event] = await stack_.character_events(user)
    await stack_.deliver_twice("my.characters", acquired_event)

    [updated] = await stack_.my_events(user)
    assert updated.event_type == "ProfileUpdated"
    assert updated.payload["character_code"] == "char-glassy"
    assert updated.metadata.causation_id == str(acquired_event.event_id)
    listed = (await stack_.my.get("/api/v1/users/me/characters", headers=_as(user))).json()
    assert [(c["code"], c["name"], c["type"]) for c in listed] == [
        ("char-glassy", "글래시", "유리병·소주병·맥주병")
    ]


async def test_onboarding_answers_503_while_character_is_unreachable(settings: Settings) -> None:
    unreachable = settings.model_copy(
        update={
            "services": settings.services.model_copy(
                update={"character_url": "http://127.0.0.1:9", "call_timeout_s": 2.0}
            )
        }
    )
    app = create_app(unreachable)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        response = await client.get("/api/v1/users/me/characters", headers=_as(_user()))
    assert response.status_code == 503
    assert response.headers["Retry-After"]
    assert response.json()["error"]["code"] == "unavailable"


async def test_one_user_never_sees_or_changes_another(stack_: Stack) -> None:
    alice, bob = _user(), _user()
    await stack_.my.patch("/api/v1/users/me", json={"nickname": "앨리스"}, headers=_as(alice))
    await stack_.deliver_twice("my.characters", acquired(alice, "char-petty", "페티"))

    bob_me = await stack_.my.get("/api/v1/users/me", headers=_as(bob))
    bob_patch = await stack_.my.patch("/api/v1/users/me", json={"nickname": "밥"}, headers=_as(bob))
    bob_owns = await stack_.my.get("/api/v1/users/me/characters/페티/ownership", headers=_as(bob))
    await stack_.my.delete("/api/v1/users/me", headers=_as(bob))

    assert bob_me.json()["nickname"] is None
    assert bob_patch.json()["nickname"] == "밥"
    assert bob_owns.json()["owned"] is False
    alice_me = await stack_.my.get("/api/v1/users/me", headers=_as(alice))
    assert alice_me.status_code == 200
    assert alice_me.json()["nickname"] == "앨리스"
    alice_chars = await stack_.my.get("/api/v1/users/me/characters", headers=_as(alice))
    assert [c["code"] for c in alice_chars.json()] == ["char-petty"]
    assert [e.event_type for e in await stack_.my_events(alice)] == [
        "ProfileUpdated",
        "ProfileUpdated",
    ]


async def test_healthz(stack_: Stack) -> None:
    assert (await stack_.my.get("/healthz")).status_code == 200
