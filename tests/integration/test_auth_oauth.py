"""The OAuth flow end to end with the offline fake provider: authorize → provider → callback."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from domains.auth.service import create_app
from eco2.db import create_pool
from eco2.settings import Settings

pytestmark = pytest.mark.integration
AUTH = "/api/v1/auth"


@pytest.fixture(scope="module")
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    frontend = settings.auth.model_copy(update={"frontend_url": "/app/home"})
    auth_app = create_app(settings.model_copy(update={"auth": frontend}))
    async with auth_app.router.lifespan_context(auth_app):
        yield auth_app


def browser(app: FastAPI) -> httpx.AsyncClient:
    """A cookie-keeping client that does not follow redirects (each hop is checked)."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://auth.test")


async def sign_in(app: FastAPI, provider: str, hint: str) -> tuple[httpx.Response, str]:
    """Walk the three redirects; return the callback's response and the final access token."""
    async with browser(app) as client:
        start = await client.get(f"{AUTH}/{provider}/authorize", params={"login_hint": hint})
        assert start.status_code == 302, start.text
        provider_page = await client.get(start.headers["location"])
        assert provider_page.status_code == 302, provider_page.text
        back = urlsplit(provider_page.headers["location"])
        assert back.path == f"{AUTH}/{provider}/callback"
        assert (
            parse_qs(back.query)["state"]
            == parse_qs(urlsplit(start.headers["location"]).query)["state"]
        )
        done = await client.get(provider_page.headers["location"])
        return done, client.cookies["s_access"]


async def test_fake_oauth_signs_in_and_lands_on_the_frontend(
    app: FastAPI, settings: Settings
) -> None:
    hint = f"alice-{uuid.uuid4().hex[:8]}"
    done, access = await sign_in(app, "kakao", hint)
    assert done.status_code == 302, done.text
    assert done.headers["location"] == "/app/home"
    set_cookies = " ".join(done.headers.get_list("set-cookie"))
    assert "s_access=" in set_cookies
    assert "s_refresh=" in set_cookies
    assert "s_oauth_state=" in set_cookies  # cleared
    claims = app.state.auth.tokens.verify(access, typ="access")
    assert claims["provider"] == "kakao"

    again, access_again = await sign_in(app, "kakao", hint)
    assert again.status_code == 302
    assert app.state.auth.tokens.verify(access_again, typ="access")["sub"] == claims["sub"]
    _, on_google = await sign_in(app, "google", hint)
    assert app.state.auth.tokens.verify(on_google, typ="access")["sub"] != claims["sub"]

    pool: asyncpg.Pool = await create_pool(settings, "auth", max_size=1)
    try:
        row = await pool.fetchrow(
            "SELECT provider, provider_subject, display_name FROM users WHERE id = $1::uuid",
            claims["sub"],
        )
    finally:
        await pool.close()
    assert (row["provider"], row["provider_subject"], row["display_name"]) == (
        "kakao",
        f"fake-{hint}",
        hint,
    )


async def test_a_state_from_another_browser_is_refused(app: FastAPI) -> None:
    async with browser(app) as victim, browser(app) as attacker:
        start = await attacker.get(f"{AUTH}/naver/authorize")
        provider_page = await attacker.get(start.headers["location"])
        # The attacker makes the victim's browser finish the attacker's sign-in (login CSRF).
        forced = await victim.get(provider_page.headers["location"])
    assert forced.status_code == 401
    assert forced.json()["error"]["code"] == "invalid_state"


async def test_unknown_provider_is_404(app: FastAPI) -> None:
    async with browser(app) as client:
        response = await client.get(f"{AUTH}/facebook/callback", params={"code": "c", "state": "s"})
    assert response.status_code == 404
    assert "kakao" in response.json()["error"]["message"]
