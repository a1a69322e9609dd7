"""ext-authz against the real auth service (in-process, JWKS over ASGI) and the stack's Valkey:
the security cases that depend on what auth really issues and revokes."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import FastAPI
from jwt.algorithms import ECAlgorithm

import domains.auth.service as auth_service
import domains.authz.service as authz_service
from domains.authz.jwks import JWKS_PATH, HttpJwksSource
from eco2.settings import Settings
from tests.unit.domains.authz.tokens import KeyPair, hs256_with_public_key, sign, unsigned

pytestmark = pytest.mark.integration
AUTH = "/api/v1/auth"
CHECK = "/check/api/v1/users/me"


class Services:
    def __init__(self, auth: FastAPI, auth_client: httpx.AsyncClient, authz: httpx.AsyncClient):
        self.auth_app, self.auth, self.authz = auth, auth_client, authz

    async def login(self) -> dict[str, Any]:
        response = await self.auth.post(f"{AUTH}/dev-login", json={})
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()
        return data

    async def check(self, token: str | None = None, **headers: str) -> httpx.Response:
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return await self.authz.get(CHECK, headers=headers)

    def claims(self, token: str) -> dict[str, Any]:
        return dict(jwt.decode(token, options={"verify_signature": False}))


def asgi_client(app: FastAPI, base_url: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url)


@pytest.fixture(scope="module")
async def services(settings: Settings) -> AsyncIterator[Services]:
    auth = auth_service.create_app(settings)
    async with (
        auth.router.lifespan_context(auth),
        asgi_client(auth, "http://auth.test") as jwks_client,
        asgi_client(auth, "http://auth.test") as auth_client,
    ):
        source = HttpJwksSource(jwks_client, f"http://auth.test{JWKS_PATH}")
        authz = authz_service.create_app(settings, jwks_source=source)  # real Valkey
        async with (
            authz.router.lifespan_context(authz),
            asgi_client(authz, "http://authz.test") as authz_client,
        ):
            yield Services(auth, auth_client, authz_client)


async def test_a_fresh_access_token_is_allowed(services: Services) -> None:
    login = await services.login()
    response = await services.check(login["access_token"])
    assert response.status_code == 200
    assert response.headers["x-user-id"] == login["user_id"]
    assert response.headers["x-auth-provider"] == "dev"


async def test_cookie_only_request_is_allowed(services: Services) -> None:
    login = await services.login()
    response = await services.check(Cookie=f"s_access={login['access_token']}; other=1")
    assert response.status_code == 200
    assert response.headers["x-user-id"] == login["user_id"]


async def test_blacklisted_after_logout(services: Services) -> None:
    login = await services.login()
    assert (await services.check(login["access_token"])).status_code == 200
    logout = await services.auth.post(
        f"{AUTH}/logout", headers={"Authorization": f"Bearer {login['access_token']}"}
    )
    assert logout.status_code == 204
    refused = await services.check(login["access_token"])
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert refused.json()["error"]["code"] == "token_revoked"


async def test_refresh_token_used_as_access_is_403(services: Services) -> None:
    login = await services.login()
    response = await services.check(login["refresh_token"])
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "wrong_token_type"


async def test_forged_token_with_auths_kid_is_401(services: Services) -> None:
    login = await services.login()
    kid = jwt.get_unverified_header(login["access_token"])["kid"]
    forged = sign(KeyPair(kid=kid), services.claims(login["access_token"]))
    response = await services.check(forged)
    assert response.status_code == 401
    assert "signature" in response.json()["error"]["message"]


async def test_expired_token_is_401(services: Services) -> None:
    login = await services.login()
    tokens = services.auth_app.state.auth.tokens
    expired = tokens.issue(
        user_id=login["user_id"],
        provider="dev",
        typ="access",
        family_id="f",
        now=time.time() - 3600,
    ).token
    response = await services.check(expired)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "token_expired"


async def test_alg_none_and_hs256_with_auths_public_key_are_401(services: Services) -> None:
    login = await services.login()
    claims = services.claims(login["access_token"])
    kid = jwt.get_unverified_header(login["access_token"])["kid"]
    assert (await services.check(unsigned(claims, kid=kid))).status_code == 401

    jwks = (await services.auth.get(f"{AUTH}/.well-known/jwks.json")).json()
    public = ECAlgorithm(ECAlgorithm.SHA256).from_jwk(
        next(k for k in jwks["keys"] if k["kid"] == kid)
    )
    assert isinstance(public, ec.EllipticCurvePublicKey)
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert (await services.check(hs256_with_public_key(pem, claims, kid=kid))).status_code == 401


async def test_wrong_audience_from_a_genuine_auth_key_is_403(
    services: Services, settings: Settings
) -> None:
    other = settings.model_copy(
        update={"auth": settings.auth.model_copy(update={"audience": "another-api"})}
    )
    foreign_auth = auth_service.create_app(other)  # loads the same stored signing key
    async with (
        foreign_auth.router.lifespan_context(foreign_auth),
        asgi_client(foreign_auth, "http://auth2.test") as client,
    ):
        login = (await client.post(f"{AUTH}/dev-login", json={})).json()
    response = await services.check(login["access_token"])
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "wrong_audience"


async def test_missing_token_is_401(services: Services) -> None:
    response = await services.check()
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "missing_token"
