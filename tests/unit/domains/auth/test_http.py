"""Routes that need no database: refusals, redirects and the OAuth state checks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import cast
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import FastAPI

from domains.auth.http import STATE_COOKIE, AuthContext, router
from domains.auth.providers import build_providers
from domains.auth.sessions import Sessions
from domains.auth.tokens import SigningKey, TokenService
from eco2.http import install_error_handlers
from eco2.settings import Settings

KEY = SigningKey.generate()


def app_for(settings: Settings, client: httpx.AsyncClient) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(router)
    tokens = TokenService(settings.auth, KEY)
    # No route under test reaches the sessions (they need the database).
    sessions = cast(Sessions, None)
    app.state.auth = AuthContext(settings, tokens, sessions, build_providers(settings.auth, client))
    return app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as outbound:
        app = app_for(Settings(environment="test"), outbound)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            yield c


async def test_dev_login_refused_when_disabled() -> None:
    base = Settings(environment="test")
    settings = base.model_copy(update={"auth": base.auth.model_copy(update={"dev_login": False})})
    async with httpx.AsyncClient() as outbound:
        transport = httpx.ASGITransport(app=app_for(settings, outbound))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            response = await c.post("/api/v1/auth/dev-login", json={})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "dev_login_disabled"


async def test_dev_login_validates_its_body(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/auth/dev-login", json={"nickname": "x" * 41})
    assert response.status_code == 422
    assert "nickname" in response.json()["error"]["message"]


async def test_unknown_provider_is_404_with_the_list(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/auth/github/authorize")
    assert response.status_code == 404
    assert "kakao, google, naver" in response.json()["error"]["message"]


async def test_authorize_redirects_to_the_fake_page_with_a_state_cookie(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/api/v1/auth/kakao/authorize", params={"login_hint": "alice"})
    assert response.status_code == 302
    target = urlsplit(response.headers["location"])
    params = {k: v[0] for k, v in parse_qs(target.query).items()}
    assert target.path == "/api/v1/auth/fake/authorize"
    assert params["redirect_uri"] == "http://t/api/v1/auth/kakao/callback"
    assert params["state"] == response.cookies[STATE_COOKIE]
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie
    assert "path=/api/v1/auth" in cookie
    assert "samesite=lax" in cookie


async def test_callback_url_follows_forwarded_headers(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/api/v1/auth/google/authorize",
        headers={"X-Forwarded-Proto": "https", "X-Forwarded-Host": "eco2.example"},
    )
    params = parse_qs(urlsplit(response.headers["location"]).query)
    assert params["redirect_uri"] == ["https://eco2.example/api/v1/auth/google/callback"]


async def test_fake_authorize_only_returns_to_our_callback(client: httpx.AsyncClient) -> None:
    good = await client.get(
        "/api/v1/auth/fake/authorize",
        params={"state": "st", "redirect_uri": "https://evil.example/api/v1/auth/naver/callback"},
    )
    assert good.status_code == 302
    assert good.headers["location"].startswith("/api/v1/auth/naver/callback?code=fake.")
    bad = await client.get(
        "/api/v1/auth/fake/authorize",
        params={"state": "st", "redirect_uri": "https://evil.example/"},
    )
    assert bad.status_code == 400


async def test_callback_refuses_a_state_that_is_not_this_browsers(
    client: httpx.AsyncClient,
) -> None:
    state = TokenService(Settings().auth, KEY).issue_state("kakao")
    no_cookie = await client.get(
        "/api/v1/auth/kakao/callback", params={"code": "fake.x", "state": state}
    )
    assert no_cookie.status_code == 401
    assert no_cookie.json()["error"]["code"] == "invalid_state"
    client.cookies.set(STATE_COOKIE, state)
    wrong_provider = await client.get(
        "/api/v1/auth/google/callback", params={"code": "fake.x", "state": state}
    )
    assert wrong_provider.status_code == 401
    assert "another provider" in wrong_provider.json()["error"]["message"]
    denied = await client.get("/api/v1/auth/kakao/callback", params={"error": "access_denied"})
    assert denied.json()["error"]["code"] == "oauth_failed"


async def test_jwks_serves_the_public_key(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/auth/.well-known/jwks.json")
    assert response.json() == {"keys": [KEY.public_jwk]}
