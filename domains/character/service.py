"""The character domain's composition root: its FastAPI app and its consumers.

The lifespan opens the domain's own pool (``settings.services.pool_max["character"]``), loads the
catalogue once (it changes only by migration) and closes the pool on shutdown.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from cdc.consumers import ConsumerSpec
from domains.character import reactions, repository
from domains.character.http import ONBOARD_EXAMPLE, router
from eco2.db import create_pool
from eco2.http import service_app
from eco2.settings import Settings

DOMAIN = "character"


def create_app(settings: Settings) -> FastAPI:
    """The character service: public catalogue, internal onboarding and ownership list."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with await create_pool(settings, DOMAIN) as pool:
            app.state.pool = pool
            app.state.catalog = await repository.catalog(pool)
            app.state.cdn_base_url = settings.image.cdn_base_url
            yield

    return service_app(
        "Eco² character",
        settings,
        lifespan,
        routers=[router],
        example_body=ONBOARD_EXAMPLE,
    )


def consumers(_settings: Settings) -> list[ConsumerSpec]:
    """``character.rewards`` (scan → ownership) and ``character.profiles`` (deleted users)."""
    return reactions.consumer_specs()
