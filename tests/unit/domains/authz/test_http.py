from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx
import pytest

from domains.authz.service import consumers, create_app
from eco2.errors import Unavailable
from eco2.settings import Settings
from tests.unit.domains.authz.fakes import MemoryRevocations
from tests.unit.domains.authz.tokens import KeyPair, claims, sign

KEY = KeyPair()


class StaticSource:
    async def fetch(self) -> Mapping[str, Any]:
        return {"keys": [KEY.jwk]}


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Settings(), jwks_source=StaticSource(), revocations=MemoryRevocations())
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c,
    ):
        yield c


async def test_bearer_token_is_allowed_with_identity_headers(client: httpx.AsyncClient) -> None:
    payload = claims(provider="google")
    response = await client.get(
        "/check/api/v1/users/me", headers={"Authorization": f"Bearer {sign(KEY, payload)}"}
    )
    assert response.status_code == 200
    assert response.headers["x-user-id"] == payload["sub"]
    assert response.headers["x-auth-provider"] == "google"


async def test_cookie_only_request_is_allowed(client: httpx.AsyncClient) -> None:
    payload = claims()
    response = await client.get(
        "/check/api/v1/scan/job-1/events", headers={"Cookie": f"s_access={sign(KEY, payload)}"}
    )
    assert response.status_code == 200
    assert response.headers["x-user-id"] == payload["sub"]


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"])
async def test_every_method_and_the_bare_prefix_are_checked(
    client: httpx.AsyncClient, method: str
) -> None:
    token = sign(KEY, claims())
    for path in ("/check", "/check/api/v1/chat/1"):
        response = await client.request(method, path, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200, (method, path)


async def test_missing_token_is_401_with_a_bearer_challenge(client: httpx.AsyncClient) -> None:
    response = await client.get("/check/api/v1/users/me")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert response.json()["error"]["code"] == "missing_token"


async def test_non_bearer_authorization_is_401(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/check/x", headers={"Authorization": "Basic dXNlcjpwYXNz", "Cookie": "s_access=zzz"}
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "malformed_token"


async def test_refresh_token_is_403_without_challenge(client: httpx.AsyncClient) -> None:
    token = sign(KEY, claims(typ="refresh"))
    response = await client.get("/check/x", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 403
    assert "www-authenticate" not in response.headers
    assert response.json()["error"]["code"] == "wrong_token_type"


async def test_healthz(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).status_code == 200


async def test_ready_once_the_keys_are_loaded(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200, response.text


class DownSource:
    async def fetch(self) -> Mapping[str, Any]:
        raise Unavailable("auth is not up yet")


async def test_not_ready_and_fail_closed_with_retry_after_while_no_key_was_loaded() -> None:
    app = create_app(Settings(), jwks_source=DownSource(), revocations=MemoryRevocations())
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://t") as client,
    ):
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert ready.headers["retry-after"] == "1"
        token = sign(KEY, claims())
        check = await client.get("/check/x", headers={"Authorization": f"Bearer {token}"})
        assert check.status_code == 503
        assert check.headers["retry-after"] == "1"
        assert "signing keys" in check.json()["error"]["message"]


def test_authz_consumes_no_events() -> None:
    assert consumers(Settings()) == []
