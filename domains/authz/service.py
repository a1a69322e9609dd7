"""Composition root of ext-authz: ``create_app(settings)`` and ``consumers(settings)`` (none).

No database: the lifespan opens an HTTP client for auth's JWKS (``services.auth_url``, kept fresh
in the background, see :mod:`domains.authz.jwks`) and a Valkey client for the blacklist. Tests
inject either one. ``/readyz`` passes only once the keys are loaded and the blacklist answers:
then a signed-in request would pass the check, which is what the launcher waits for and what the
Kubernetes readiness probe asks.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import httpx
from fastapi import FastAPI

from cdc.consumers import ConsumerSpec
from domains.authz.http import router
from domains.authz.jwks import JWKS_PATH, HttpJwksSource, JwksCache, JwksSource
from domains.authz.verifier import (
    AccessCheck,
    RevocationList,
    TokenVerifier,
    ValkeyRevocationList,
)
from eco2 import cache as valkey
from eco2.errors import Unavailable
from eco2.http import service_app
from eco2.settings import Settings


def create_app(
    settings: Settings,
    *,
    jwks_source: JwksSource | None = None,
    revocations: RevocationList | None = None,
) -> FastAPI:
    """The check service; ``jwks_source``/``revocations`` replace the HTTP JWKS and Valkey."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            source = jwks_source
            if source is None:
                client = httpx.AsyncClient(timeout=settings.services.call_timeout_s)
                stack.push_async_callback(client.aclose)
                source = HttpJwksSource(client, settings.services.url_of("auth") + JWKS_PATH)
            blacklist = revocations
            if blacklist is None:
                cache = valkey.connect(settings.cache.require("ext-authz"))
                stack.push_async_callback(cache.aclose)
                blacklist = ValkeyRevocationList(cache)
            keys = JwksCache(source, ttl_s=settings.auth.jwks_cache_s)
            await keys.start()
            stack.push_async_callback(keys.stop)
            app.state.keys, app.state.revocations = keys, blacklist
            verifier = TokenVerifier(
                keys, issuer=settings.auth.issuer, audience=settings.auth.audience
            )
            app.state.access = AccessCheck(verifier, blacklist)
            app.state.access_cookie = settings.auth.access_cookie
            yield

    return service_app("Eco² ext-authz", settings, lifespan, routers=[router], ready=_ready)


async def _ready(app: FastAPI) -> None:
    keys: JwksCache = app.state.keys
    if not keys.ready:
        raise Unavailable("auth's signing keys are not loaded yet", retry_after_s=1)
    revocations: RevocationList = app.state.revocations
    await revocations.ping()


def consumers(settings: Settings) -> list[ConsumerSpec]:
    """ext-authz reacts to no events (logout reaches it through the Valkey blacklist)."""
    return []
