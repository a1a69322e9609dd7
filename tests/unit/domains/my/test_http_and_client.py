"""my's HTTP edge and its character client, without a database or sockets."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from domains.my.character_api import CharacterApi
from domains.my.reactions import (
    CharacterAcquiredIn,
    consumer_specs,
    on_character_event,
    on_user_event,
)
from domains.my.service import create_app
from eco2.errors import NotFound, Unavailable
from eco2.events import EventEnvelope
from eco2.settings import load_settings

ANSWER = {
    "granted": True,
    "character": {
        "id": "char-eco",
        "code": "char-eco",
        "name": "이코",
        "type": "이코에코 대표 캐릭터",
        "dialog": "사진 한 장이면 돼! 같이 제대로 버려 보자.",
        "acquired_at": "2025-03-01T09:30:00Z",
    },
}


def _api(handler: Any) -> CharacterApi:
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler), base_url="http://c")
    return CharacterApi(client)


async def test_onboard_posts_the_user_and_reads_the_character() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=ANSWER)

    character = await _api(handler).onboard("user-1", "00-abc-def-01")
    assert (character.code, character.name) == ("char-eco", "이코")
    assert seen[0].url.path == "/internal/characters/onboard"
    assert seen[0].headers["traceparent"] == "00-abc-def-01"
    assert seen[0].read() == b'{"user_id":"user-1"}'


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(500, json={"error": {"code": "internal_error", "message": "x"}}),
        httpx.Response(503, json={"error": {"code": "unavailable", "message": "x"}}),
        httpx.Response(404, text="no such route"),
        httpx.Response(200, json={"unexpected": True}),
    ],
)
async def test_a_failing_character_service_is_unavailable(response: httpx.Response) -> None:
    with pytest.raises(Unavailable):
        await _api(lambda _r: response).onboard("user-1")


async def test_an_unreachable_character_service_is_unavailable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(Unavailable):
        await _api(handler).onboard("user-1")


async def test_a_deleted_user_is_not_found() -> None:
    body = {"error": {"code": "user_deleted", "message": "gone"}}
    with pytest.raises(NotFound):
        await _api(lambda _r: httpx.Response(404, json=body)).onboard("user-1")


class _EmptyPool:
    """Stands in for asyncpg: no profile, no characters."""

    async def fetchrow(self, *_args: Any) -> None:
        return None

    async def fetch(self, *_args: Any) -> list[Any]:
        return []


def _client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


async def test_onboarding_when_character_is_down_answers_503_with_retry_after() -> None:
    app = create_app(load_settings())

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    app.state.pool = _EmptyPool()
    app.state.character_api = _api(refuse)
    async with _client(app) as client:
        response = await client.get("/api/v1/users/me/characters", headers={"X-User-ID": "u1"})
    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) >= 1
    assert response.json()["error"]["code"] == "unavailable"


async def test_onboarding_answers_ico_from_the_character_service() -> None:
    app = create_app(load_settings())
    app.state.pool = _EmptyPool()
    app.state.character_api = _api(lambda _r: httpx.Response(200, json=ANSWER))
    async with _client(app) as client:
        response = await client.get("/api/v1/users/me/characters", headers={"X-User-ID": "u1"})
    assert response.status_code == 200
    assert response.json() == [ANSWER["character"]]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/users/me"),
        ("PATCH", "/api/v1/users/me"),
        ("DELETE", "/api/v1/users/me"),
        ("GET", "/api/v1/users/me/characters"),
        ("GET", "/api/v1/users/me/characters/페티/ownership"),
    ],
)
async def test_every_route_needs_sign_in(method: str, path: str) -> None:
    app = create_app(load_settings())
    app.state.pool = _EmptyPool()
    async with _client(app) as client:
        response = await client.request(method, path, json={"nickname": "x"})
    assert response.status_code == 401


@pytest.mark.parametrize("body", [{}, None])
async def test_an_empty_patch_says_which_fields_can_change(body: dict[str, Any] | None) -> None:
    app = create_app(load_settings())
    app.state.pool = _EmptyPool()
    async with _client(app) as client:
        response = await client.patch("/api/v1/users/me", json=body, headers={"X-User-ID": "u1"})
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert "nickname" in message
    assert "phone_number" in message


async def test_an_invalid_patch_is_refused_with_an_example() -> None:
    app = create_app(load_settings())
    app.state.pool = _EmptyPool()
    async with _client(app) as client:
        response = await client.patch(
            "/api/v1/users/me", json={"phone_number": "abc"}, headers={"X-User-ID": "u1"}
        )
    assert response.status_code == 422
    assert "phone_number" in response.json()["error"]["message"]


def test_character_acquired_reads_the_agreed_payload() -> None:
    parsed = CharacterAcquiredIn.model_validate(
        {
            "ownership_id": str(uuid.uuid4()),
            "user_id": "u",
            "character_id": "char-petty",
            "character_code": "char-petty",
            "character_name": "페티",
            "character_type": "생수·음료 투명 페트병",
            "character_dialog": "...",
            "source": "scan",
            "scan_id": "s",
            "acquired_at": "2025-03-01T09:30:00Z",
        }
    )
    assert parsed.character_code == "char-petty"


async def test_unhandled_event_types_are_ignored() -> None:
    def envelope(event_type: str) -> EventEnvelope:
        return EventEnvelope(
            event_type=event_type,
            aggregate_type="x",
            aggregate_id="u",
            aggregate_version=1,
            payload={},
        )

    await on_character_event(envelope("CharacterGrantRejected"), None)
    await on_user_event(envelope("UserSignedOut"), None)


def test_consumers_follow_the_topic_convention() -> None:
    specs = {s.name: s for s in consumer_specs()}
    assert specs["my.users"].topics == ("outbox.event.user",)
    assert specs["my.characters"].topics == ("outbox.event.character",)
    assert {s.database for s in specs.values()} == {"my"}
