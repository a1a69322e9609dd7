"""The chat domain's composition root: its FastAPI app (conversations) and its consumers (none:
the chat index is a read-model projection)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from cdc.consumers import ConsumerSpec
from domains.chat.http import TITLE_EXAMPLE, router
from eco2.db import create_pool
from eco2.http import install_error_handlers, install_probes
from eco2.settings import Settings
from eco2.telemetry import fastapi_options

DOMAIN = "chat"


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await create_pool(settings, DOMAIN)
        try:
            app.state.pool = pool
            app.state.max_title_chars = settings.chat.max_title_chars
            yield
        finally:
            await pool.close()

    app = FastAPI(
        title="Eco² chat",
        version="1",
        lifespan=lifespan,
        telemetry=fastapi_options(settings.telemetry),
    )
    install_error_handlers(app, example_body=TITLE_EXAMPLE)
    install_probes(app)
    app.include_router(router)

    return app


def consumers(_settings: Settings) -> list[ConsumerSpec]:
    """The chat domain reacts to no other domain's events."""
    return []
