"""The read side's HTTP API: queries answered from the Valkey read models, never from a domain's
tables; :func:`consumers` are the projectors that build them. Eventually consistent: a read may
lag the write side by the CDC delay (milliseconds).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import redis.asyncio as redis
from fastapi import FastAPI, Query, Request
from redis.exceptions import RedisError

from cdc.consumers import ConsumerSpec
from cdc.readmodels.projections import chat_index, leaderboard, my_page, scan_history
from cdc.readmodels.store import connect
from eco2.errors import InvalidInput, Unavailable
from eco2.http import CurrentUser, service_app
from eco2.settings import Settings


def _client(request: Request) -> redis.Redis:
    client: redis.Redis = request.app.state.valkey
    return client


MAX_CURSOR_DIGITS = 15
"""A cursor is a time in epoch milliseconds (13 digits until the year 2286)."""


def _cursor(raw: str | None) -> int | None:
    if raw is None:
        return None
    # ASCII only: str.isdigit() also accepts "²", which int() refuses.
    if not (raw.isascii() and raw.isdigit()) or len(raw) > MAX_CURSOR_DIGITS:
        raise InvalidInput("cursor must be the next_cursor of a previous page", code="bad_cursor")
    return int(raw)


async def _valkey_answers(app: FastAPI) -> None:
    try:
        await app.state.valkey.ping()
    except RedisError as exc:
        raise Unavailable(f"the read models' Valkey does not answer: {exc}") from exc


def create_app(settings: Settings) -> FastAPI:
    url = settings.cache.require("the read-model API")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with connect(url) as client:
            app.state.valkey = client
            yield

    app = service_app("Eco² read models", settings, lifespan, ready=_valkey_answers)

    @app.get("/api/v1/scan/history")
    async def history(
        request: Request,
        user: CurrentUser,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        items, following = await scan_history.history(
            _client(request), user, limit, _cursor(cursor)
        )
        return {"items": items, "next_cursor": None if following is None else str(following)}

    @app.get("/api/v1/users/me/page")
    async def page(request: Request, user: CurrentUser) -> dict[str, Any]:
        return await my_page.my_page(_client(request), user)

    @app.get("/api/v1/character/leaderboard")
    async def board(
        request: Request, user: CurrentUser, limit: Annotated[int, Query(ge=1, le=50)] = 13
    ) -> dict[str, Any]:
        return await leaderboard.leaderboard(_client(request), user, limit)

    @app.get("/api/v1/chat/search")
    async def chat_search(
        request: Request,
        user: CurrentUser,
        q: Annotated[str, Query(min_length=1, max_length=200)],
        limit: Annotated[int, Query(ge=1, le=50)] = 20,
    ) -> dict[str, Any]:
        """The caller's chats whose title or messages contain every word of ``q``."""
        return {"items": await chat_index.search(_client(request), user, q, limit)}

    return app


def consumers(_settings: Settings) -> list[ConsumerSpec]:
    """The projectors that build the read models this API answers from."""
    return [module.spec() for module in (scan_history, my_page, leaderboard, chat_index)]
