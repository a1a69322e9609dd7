"""The chat domain's composition root: its FastAPI app (conversations) and its consumers (none:
the chat index is a read-model projection)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from cdc.consumers import ConsumerSpec
from domains.chat.http import TITLE_EXAMPLE, router
from eco2.db import create_pool
from eco2.http import service_app
from eco2.settings import Settings

DOMAIN = "chat"


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with await create_pool(settings, DOMAIN) as pool:
            app.state.pool = pool
            app.state.max_title_chars = settings.chat.max_title_chars
            yield

    return service_app(
        "Eco² chat", settings, lifespan, routers=[router], example_body=TITLE_EXAMPLE
    )


def consumers(_settings: Settings) -> list[ConsumerSpec]:
    """The chat domain reacts to no other domain's events."""
    return []
