"""The HTTP edge shared by every FastAPI app: errors → status codes, the caller's user id.

Only entry points translate errors (style.md habit 7): handlers raise :mod:`eco2.errors` types and
:func:`install_error_handlers` turns them into ``{"error": {"code", "message"}}`` with the status
below. Services never parse tokens: the gateway (ext-authz) sets ``X-User-ID`` and a request
without it is answered 401.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Annotated, Any

import asyncpg
import redis.exceptions
from fastapi import APIRouter, Depends, FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from eco2.errors import (
    Conflict,
    Eco2Error,
    Forbidden,
    NotFound,
    Overloaded,
    TooLarge,
    Unauthenticated,
    Unavailable,
    Unprocessable,
    UnsupportedMediaType,
)
from eco2.settings import TelemetrySettings
from eco2.telemetry import fastapi_options, get_logger

log = get_logger(__name__)

MAX_USER_ID_CHARS = 128
_STATUS: tuple[tuple[type[Eco2Error], int], ...] = (
    (Unauthenticated, 401),
    (Forbidden, 403),
    (NotFound, 404),
    (Conflict, 409),
    (TooLarge, 413),
    (UnsupportedMediaType, 415),
    (Unprocessable, 422),
    (Overloaded, 429),
)


_STORE_UNREACHABLE: tuple[type[Exception], ...] = (
    ConnectionError,  # refused, reset: the server is down or restarting
    asyncpg.PostgresConnectionError,  # a pooled connection died mid-request
    asyncpg.InterfaceError,  # "connection is closed"
    asyncpg.exceptions.OperatorInterventionError,  # starting up, shutting down, crashed
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
)
"""A database or Valkey that cannot be reached: the request changed nothing it could not roll
back, so the caller may retry (503 with ``Retry-After``), not a server bug (500)."""
STORE_RETRY_AFTER_S = 1


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def status_of(exc: Eco2Error) -> int:
    for kind, status in _STATUS:
        if isinstance(exc, kind):
            return status
    if exc.code == "unauthenticated":
        return 401
    return 503 if exc.retriable else 400


def install_error_handlers(app: FastAPI, *, example_body: str | None = None) -> None:
    """Map :class:`Eco2Error` and request validation errors to JSON errors on ``app``.

    ``example_body`` is appended to validation messages (``send JSON like ...``) so the caller
    sees what a good request looks like.
    """

    async def eco2_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Eco2Error)
        headers = {}
        if isinstance(exc, Overloaded | Unavailable):
            headers["Retry-After"] = str(max(1, round(exc.retry_after_s)))
        return JSONResponse(
            error_body(exc.code, exc.message), status_code=status_of(exc), headers=headers
        )

    async def bad_request(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'] if p != 'body') or 'body'}: {e['msg']}"
            for e in exc.errors()
        )
        message = f"invalid request ({problems})"
        if example_body:
            message += f"; send JSON like {example_body}"
        return JSONResponse(error_body("invalid_request", message), status_code=422)

    async def store_unreachable(request: Request, exc: Exception) -> JSONResponse:
        log.warning("store unreachable", path=request.url.path, error=repr(exc))
        return JSONResponse(
            error_body("unavailable", "a store this service needs is unreachable; retry shortly"),
            status_code=503,
            headers={"Retry-After": str(STORE_RETRY_AFTER_S)},
        )

    app.add_exception_handler(Eco2Error, eco2_error)
    app.add_exception_handler(RequestValidationError, bad_request)
    for kind in _STORE_UNREACHABLE:
        app.add_exception_handler(kind, store_unreachable)


ReadyCheck = Callable[[FastAPI], Awaitable[None]]
"""Raises :class:`Unavailable` (with what is missing) while the app cannot serve its traffic."""

HealthDetail = Callable[[FastAPI], Awaitable[dict[str, str]]]
"""Extra fields for ``/healthz`` (say, whether a listener is connected); never fails it."""


def install_probes(
    app: FastAPI, ready: ReadyCheck | None = None, *, detail: HealthDetail | None = None
) -> None:
    """The two probes every service answers. ``GET /healthz`` (liveness): 200 while the process
    serves, with ``detail``'s fields. ``GET /readyz`` (readiness): 200 once the lifespan ran and
    ``ready`` passes, else 503 with ``Retry-After``; the launcher waits for it and a Kubernetes
    readiness probe asks it."""

    async def healthz(request: Request) -> dict[str, str]:
        extra = await detail(request.app) if detail is not None else {}
        return {"status": "ok", **extra}

    async def readyz(request: Request) -> dict[str, str]:
        if ready is not None:
            await ready(request.app)
        return {"status": "ready"}

    app.add_api_route("/healthz", healthz, methods=["GET"], include_in_schema=False)
    app.add_api_route("/readyz", readyz, methods=["GET"], include_in_schema=False)


def service_app(
    title: str,
    telemetry: TelemetrySettings,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]],
    *,
    routers: Sequence[APIRouter] = (),
    example_body: str | None = None,
    ready: ReadyCheck | None = None,
    detail: HealthDetail | None = None,
) -> FastAPI:
    """A service's app, the same way for every service: its lifespan, FastAPI's telemetry as
    :func:`eco2.telemetry.fastapi_options` says, the error taxonomy (``example_body`` shows a
    valid request in a 422), ``/healthz`` and ``/readyz`` (:func:`install_probes`), its routers."""
    app = FastAPI(title=title, version="1", lifespan=lifespan, telemetry=fastapi_options(telemetry))
    install_error_handlers(app, example_body=example_body)
    install_probes(app, ready, detail=detail)
    for router in routers:
        app.include_router(router)
    return app


def require_user(user_id: str | None) -> str:
    """The gateway-set user id, or :class:`Unauthenticated`."""
    if not user_id or len(user_id) > MAX_USER_ID_CHARS:
        raise Unauthenticated("sign in first: X-User-ID is set by the gateway after ext-authz")
    return user_id


async def _current_user(x_user_id: Annotated[str | None, Header()] = None) -> str:
    return require_user(x_user_id)


CurrentUser = Annotated[str, Depends(_current_user)]
"""FastAPI dependency alias: the authenticated caller's user id (401 without one).

Dependencies here are ``async def``: FastAPI runs a plain ``def`` dependency in a worker thread
on every request, a thread hand-off that was a quarter of the read service's profile."""


async def _app_pool(request: Request) -> asyncpg.Pool:
    pool: asyncpg.Pool = request.app.state.pool
    return pool


AppPool = Annotated[asyncpg.Pool, Depends(_app_pool)]
"""FastAPI dependency alias: the service's own database pool (``app.state.pool``, opened in
its lifespan)."""
