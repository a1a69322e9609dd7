"""Auth on the real stack: dev-login, cookies, refresh rotation with reuse detection, logout's
blacklist in Valkey, the user events, and the signing key every process agrees on."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI

from domains.auth.repository import AuthRepository
from domains.auth.service import create_app
from domains.auth.tokens import SigningKey
from eco2.db import create_pool
from eco2.settings import Settings

pytestmark = pytest.mark.integration
AUTH = "/api/v1/auth"


def with_auth(settings: Settings, **auth: Any) -> Settings:
    return settings.model_copy(update={"auth": settings.auth.model_copy(update=auth)})


async def client_of(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://auth.test")


@pytest.fixture(scope="module")
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    auth_app = create_app(settings)
    async with auth_app.router.lifespan_context(auth_app):
        yield auth_app


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with await client_of(app) as c:
        yield c


@pytest.fixture(scope="module")
async def db(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(settings, "auth", max_size=2)
    yield pool
    await pool.close()


@pytest.fixture(scope="module")
async def valkey(settings: Settings) -> AsyncIterator[aioredis.Redis]:
    assert settings.cache.url
    client = aioredis.Redis.from_url(settings.cache.url)
    yield client
    await client.aclose()


def cookies_of(response: httpx.Response) -> dict[str, str]:
    """Set-Cookie header by cookie name."""
    return {h.split("=", 1)[0]: h for h in response.headers.get_list("set-cookie")}


async def dev_login(client: httpx.AsyncClient, **body: str) -> dict[str, Any]:
    response = await client.post(f"{AUTH}/dev-login", json=body)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


async def test_dev_login_sets_both_cookies_with_the_configured_flags(settings: Settings) -> None:
    strict = with_auth(
        settings, cookie_secure=True, cookie_samesite="strict", cookie_domain="eco2.example"
    )
    app = create_app(strict)
    async with app.router.lifespan_context(app), await client_of(app) as client:
        response = await client.post(f"{AUTH}/dev-login", json={"nickname": "에코"})
    assert response.status_code == 200
    body = response.json()
    assert body["provider"] == "dev"
    assert body["display_name"] == "에코"
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == settings.auth.access_ttl_s
    assert response.headers["cache-control"] == "no-store"
    uuid.UUID(body["user_id"])
    cookies = cookies_of(response)
    access, refresh = cookies["s_access"].lower(), cookies["s_refresh"].lower()
    assert cookies["s_access"].startswith(f"s_access={body['access_token']};")
    assert cookies["s_refresh"].startswith(f"s_refresh={body['refresh_token']};")
    for cookie in (access, refresh):
        for flag in ("httponly", "secure", "samesite=strict", "domain=eco2.example"):
            assert flag in cookie, (flag, cookie)
    assert "path=/;" in access
    assert f"max-age={settings.auth.access_ttl_s}" in access
    assert f"path={AUTH};" in refresh
    assert f"max-age={settings.auth.refresh_ttl_s}" in refresh


async def test_the_same_user_key_signs_in_the_same_user(client: httpx.AsyncClient) -> None:
    key = f"device-{uuid.uuid4().hex}"
    first = await dev_login(client, user_key=key, nickname="Eco")
    second = await dev_login(client, user_key=key)
    other = await dev_login(client)
    assert first["user_id"] == second["user_id"] != other["user_id"]
    assert second["display_name"] == "Eco"
    assert first["refresh_token"] != second["refresh_token"]


async def test_registered_once_then_only_signed_in(
    client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    key = f"device-{uuid.uuid4().hex}"
    user_id = (await dev_login(client, user_key=key, nickname="Eco"))["user_id"]
    await dev_login(client, user_key=key)
    rows = await db.fetch(
        "SELECT event_type, aggregate_type, aggregate_version, payload, metadata"
        " FROM event_store WHERE aggregate_id = $1 ORDER BY aggregate_version",
        user_id,
    )
    assert [(r["event_type"], r["aggregate_version"]) for r in rows] == [
        ("UserRegistered", 1),
        ("UserSignedIn", 2),
        ("UserSignedIn", 3),
    ]
    assert {r["aggregate_type"] for r in rows} == {"user"}
    registered = rows[0]["payload"]
    assert set(registered) == {"user_id", "provider", "display_name", "registered_at"}
    assert (registered["user_id"], registered["provider"], registered["display_name"]) == (
        user_id,
        "dev",
        "Eco",
    )
    assert set(rows[1]["payload"]) == {"user_id", "provider", "signed_in_at"}
    assert rows[0]["metadata"]["user_id"] == user_id
    assert rows[0]["metadata"]["correlation_id"]
    assert await db.fetchval("SELECT version FROM users WHERE id = $1::uuid", user_id) == 3


async def test_refresh_rotates_and_a_reused_token_revokes_the_family(
    client: httpx.AsyncClient,
) -> None:
    login = await dev_login(client)
    first = login["refresh_token"]
    # The browser way: the cookie the login set (path /api/v1/auth) is sent back.
    rotated = await client.post(f"{AUTH}/refresh")
    assert rotated.status_code == 200, rotated.text
    second = rotated.json()
    assert second["user_id"] == login["user_id"]
    assert second["display_name"]
    assert second["refresh_token"] != first
    assert second["access_token"] != login["access_token"]
    assert set(cookies_of(rotated)) == {"s_access", "s_refresh"}
    # The API-client way: the token in the body.
    third = await client.post(f"{AUTH}/refresh", json={"refresh_token": second["refresh_token"]})
    assert third.status_code == 200

    reused = await client.post(f"{AUTH}/refresh", json={"refresh_token": first})
    assert reused.status_code == 401
    assert reused.json()["error"]["code"] == "refresh_reused"
    assert "sign in again" in reused.json()["error"]["message"]
    assert "max-age=0" in cookies_of(reused)["s_refresh"].lower()
    latest = third.json()["refresh_token"]
    revoked = await client.post(f"{AUTH}/refresh", json={"refresh_token": latest})
    assert revoked.status_code == 401
    assert revoked.json()["error"]["code"] == "refresh_revoked"


async def test_refresh_without_a_valid_token_says_sign_in_again(client: httpx.AsyncClient) -> None:
    for body in (None, {"refresh_token": "garbage"}):
        response = await client.post(f"{AUTH}/refresh", json=body)
        assert response.status_code == 401
        assert "sign in again" in response.json()["error"]["message"]
    access = (await dev_login(client))["access_token"]
    wrong_type = await client.post(f"{AUTH}/refresh", json={"refresh_token": access})
    assert wrong_type.status_code == 401


async def test_logout_blacklists_the_session_and_ends_it(
    client: httpx.AsyncClient, valkey: aioredis.Redis, app: FastAPI, settings: Settings
) -> None:
    login = await dev_login(client)
    sid = app.state.auth.tokens.verify(login["access_token"], typ="access")["sid"]
    response = await client.post(f"{AUTH}/logout")  # cookies only
    assert response.status_code == 204
    cleared = cookies_of(response)
    assert "max-age=0" in cleared["s_access"].lower()
    assert "max-age=0" in cleared["s_refresh"].lower()
    ttl = await valkey.ttl(f"authz:revoked:session:{sid}")
    assert 0 < ttl <= settings.auth.access_ttl_s + 5
    refreshed = await client.post(f"{AUTH}/refresh", json={"refresh_token": login["refresh_token"]})
    assert refreshed.status_code == 401


async def test_logout_with_only_a_bearer_token_ends_its_session(
    app: FastAPI, valkey: aioredis.Redis
) -> None:
    async with await client_of(app) as api:
        login = await dev_login(api)
    async with await client_of(app) as api:  # no cookies: an API client
        response = await api.post(
            f"{AUTH}/logout", headers={"Authorization": f"Bearer {login['access_token']}"}
        )
        assert response.status_code == 204
        refreshed = await api.post(
            f"{AUTH}/refresh", json={"refresh_token": login["refresh_token"]}
        )
        assert refreshed.status_code == 401
        assert (await api.post(f"{AUTH}/logout")).status_code == 204  # nothing to end: still 204


async def test_dev_login_is_refused_when_disabled(settings: Settings) -> None:
    app = create_app(with_auth(settings, dev_login=False))
    async with app.router.lifespan_context(app), await client_of(app) as client:
        response = await client.post(f"{AUTH}/dev-login", json={"user_key": "k"})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "dev_login_disabled"


async def test_jwks_and_healthz(client: httpx.AsyncClient, app: FastAPI) -> None:
    assert (await client.get("/healthz")).status_code == 200
    jwks = (await client.get(f"{AUTH}/.well-known/jwks.json")).json()
    active = app.state.auth.tokens.active_kid
    assert active in {key["kid"] for key in jwks["keys"]}
    assert all(
        key["alg"] == "ES256" and key["use"] == "sig" and "d" not in key for key in jwks["keys"]
    )


async def test_starters_agree_on_one_signing_key(db: asyncpg.Pool, settings: Settings) -> None:
    repository = AuthRepository(db)
    before, _ = await repository.signing_keys(SigningKey.generate())
    # A fresh database: no active key; concurrent starters race to insert theirs.
    await db.execute("UPDATE signing_keys SET active = false WHERE active")
    results = await asyncio.gather(
        *(repository.signing_keys(SigningKey.generate()) for _ in range(4))
    )
    kids = {active.kid for active, _ in results}
    assert len(kids) == 1
    assert before.kid not in kids
    # The retired key stays published, so tokens it signed still verify.
    assert all(before.kid in {key.kid for key in keys} for _, keys in results)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        assert app.state.auth.tokens.active_kid in kids
