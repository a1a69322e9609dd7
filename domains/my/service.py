"""The my domain's composition root: its FastAPI app and its consumers.

The lifespan opens the domain's own pool (``settings.services.pool_max["my"]``) and the HTTP
client of the character service (base ``settings.services.url_of("character")``, timeout
``settings.services.call_timeout_s``), and closes both. A client passed to :func:`create_app`
(tests: an ``httpx.ASGITransport`` on the character app) is used instead and left open.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import httpx
from fastapi import FastAPI

from cdc.consumers import ConsumerSpec
from domains.my import reactions
from domains.my.character_api import CharacterApi
from domains.my.http import PATCH_EXAMPLE, router
from eco2.db import create_pool
from eco2.http import service_app
from eco2.settings import Settings

DOMAIN = "my"


def create_app(settings: Settings, *, character_client: httpx.AsyncClient | None = None) -> FastAPI:
    """The my service: ``/api/v1/users/me`` and the caller's characters."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            client = character_client
            if client is None:
                client = await stack.enter_async_context(
                    httpx.AsyncClient(
                        base_url=settings.services.url_of("character"),
                        timeout=settings.services.call_timeout_s,
                    )
                )
            app.state.pool = await stack.enter_async_context(await create_pool(settings, DOMAIN))
            app.state.character_api = CharacterApi(client)
            yield

    return service_app("Eco² my", settings, lifespan, routers=[router], example_body=PATCH_EXAMPLE)


def consumers(_settings: Settings) -> list[ConsumerSpec]:
    """``my.users`` (profiles from auth events) and ``my.characters`` (the saga's third step)."""
    return reactions.consumer_specs()
