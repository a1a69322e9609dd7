"""Composition root of the auth service: ``create_app(settings)`` and ``consumers(settings)``.

The lifespan opens the ``eco2_auth`` pool, a Valkey client (the access-token blacklist) and an
HTTP client (OAuth providers), then loads the signing key: the first process ever to start
generates an ES256 key pair and stores it; every other (also a concurrent one) uses that one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from cdc.consumers import ConsumerSpec
from domains.auth.blacklist import BlacklistKeeper, ValkeyBlacklist
from domains.auth.http import AuthContext, router
from domains.auth.providers import build_providers
from domains.auth.reactions import user_deleted_consumer
from domains.auth.repository import AuthRepository
from domains.auth.sessions import Sessions
from domains.auth.tokens import SigningKey, TokenService
from eco2 import cache as valkey
from eco2.db import create_pool
from eco2.http import service_app
from eco2.loop import background
from eco2.settings import Settings

DOMAIN = "auth"


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        cache_url = settings.cache.require("auth (the logout blacklist)")
        async with (
            await create_pool(settings, DOMAIN) as pool,
            valkey.connect(cache_url) as cache,
            httpx.AsyncClient(timeout=settings.services.call_timeout_s) as http,
        ):
            repository = AuthRepository(pool)
            active, keys = await repository.signing_keys(SigningKey.generate())
            tokens = TokenService(settings.auth, active, keys)
            blacklist = ValkeyBlacklist(cache)
            sessions = Sessions(repository, tokens, blacklist, settings.auth)
            providers = build_providers(settings.auth, http)
            app.state.auth = AuthContext(settings, tokens, sessions, providers)
            keeper = BlacklistKeeper(repository, blacklist, settings.auth.access_ttl_s)
            async with background(keeper.run(), name="auth-blacklist-keeper"):
                yield

    return service_app(
        "Eco² auth",
        settings,
        lifespan,
        routers=[router],
        example_body='{"nickname": "eco", "user_key": "my-device-1"}',
    )


def consumers(settings: Settings) -> list[ConsumerSpec]:
    return [user_deleted_consumer()]
