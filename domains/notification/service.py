"""The notification service's composition root: ``create_app(settings)`` and ``consumers``.

The app's lifespan opens the domain's pool (sized by ``settings.services.pool_max``) and the one
LISTEN connection of the process (:class:`~domains.notification.live.NotificationHub`), and
closes both; nothing connects at import time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from fastapi import FastAPI

from cdc.consumers import ConsumerSpec
from domains.notification import reactions
from domains.notification.http import Backend, StreamConfig, router
from domains.notification.live import NotificationHub
from domains.notification.repository import NotificationRepository
from eco2.db import create_pool, domain_dsn
from eco2.errors import Unavailable
from eco2.http import service_app
from eco2.settings import Settings

DOMAIN = "notification"


def create_app(
    settings: Settings, *, stream: StreamConfig | None = None, queue_size: int = 64
) -> FastAPI:
    """The notification HTTP app. ``stream`` and ``queue_size`` (per SSE subscriber) tune the
    live stream; the defaults suit production."""

    async def listen_connection() -> asyncpg.Connection:
        conn: asyncpg.Connection = await asyncpg.connect(domain_dsn(settings, DOMAIN))
        return conn

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        hub = NotificationHub(listen_connection, queue_size=queue_size)
        async with await create_pool(settings, DOMAIN) as pool:
            try:
                await _start(hub)
                app.state.notification = Backend(
                    NotificationRepository(pool), hub, stream or StreamConfig()
                )
                yield
            finally:
                app.state.notification = None
                await hub.close()

    return service_app("Eco² notification", settings, lifespan, routers=[router], detail=_listener)


async def _listener(app: FastAPI) -> dict[str, str]:
    """Whether live pushes are flowing (``/healthz`` stays 200 while the listener reconnects)."""
    backend: Backend | None = getattr(app.state, "notification", None)
    listening = backend is not None and backend.hub.connected
    return {"listener": "connected" if listening else "reconnecting"}


async def _start(hub: NotificationHub) -> None:
    try:
        await hub.start()
    except (OSError, asyncpg.PostgresError) as exc:
        raise Unavailable(f"cannot listen on the notification database: {exc}") from exc


def consumers(settings: Settings) -> list[ConsumerSpec]:
    """The reactions to run for this domain (they need no settings of their own)."""
    del settings
    return reactions.specs()
