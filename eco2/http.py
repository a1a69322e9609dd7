"""The HTTP edge shared by every FastAPI app: errors → status codes, the caller's user id.

Only entry points translate errors (style.md habit 7): handlers raise :mod:`eco2.errors` types and
:func:`install_error_handlers` turns them into ``{"error": {"code", "message"}}`` with the status
below. Services never parse tokens: the gateway (ext-authz) sets ``X-User-ID`` and a request
without it is answered 401.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Annotated, Any

import asyncpg
import redis.exceptions
from fastapi import APIRouter, Depends, FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from eco2.errors import (
    Conflict,
    Eco2Error,
    Forbidden,
    NotFound,
    Overloaded,
    RateLimited,
    TooLarge,
    Unauthenticated,
    Unavailable,
    Unprocessable,
    UnsupportedMediaType,
    body_too_large,
)
from eco2.settings import Settings
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
    (RateLimited, 429),
    (Overloaded, 503),
)
"""The first that matches wins: a caller over its own limit is told 429; the service shedding
load (:class:`~eco2.errors.Overloaded`, anyone's request) 503, both with ``Retry-After``."""


STORE_UNREACHABLE: tuple[type[Exception], ...] = (
    ConnectionError,  # refused, reset: the server is down or restarting
    asyncpg.PostgresConnectionError,  # a pooled connection died mid-request
    asyncpg.InterfaceError,  # "connection is closed"
    asyncpg.exceptions.OperatorInterventionError,  # starting up, shutting down, crashed
    # A pooled connection left mid-protocol by a server that crashed under it ("cannot switch
    # to state …; another operation is in progress"; eco2 chaos --scenario postgres).
    asyncpg.InternalClientError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
)
"""A database or Valkey that cannot be reached: the request changed nothing it could not roll
back, so the caller may retry (503 with ``Retry-After``), not a server bug (500)."""
STORE_RETRY_AFTER_S = 1
_UNSTORABLE_TEXT: tuple[type[Exception], ...] = (
    asyncpg.exceptions.CharacterNotInRepertoireError,  # U+0000 in a text value
    asyncpg.exceptions.UntranslatableCharacterError,
)
"""A text value PostgreSQL cannot store (JSON may carry ``\\u0000``, a ``text`` column never
does): the caller's input, refused as a 400 before anything was written (the statement failed)."""
_HTTP_CODES = {
    400: "invalid_request",
    404: "not_found",
    405: "method_not_allowed",
    413: TooLarge.code,
}
"""Error codes of the framework's own refusals (:class:`starlette.exceptions.HTTPException`)."""


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
            # Rounded up: a client that waits what it is told must not be refused again.
            headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after_s)))
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

    async def http_error(_request: Request, exc: Exception) -> JSONResponse:
        # FastAPI's and Starlette's own refusals (a body that is not JSON, a method the path
        # does not answer), in the same shape as ours.
        assert isinstance(exc, HTTPException)
        message = f"{exc.detail}".rstrip(".")
        if exc.status_code == 400 and example_body:
            message += f"; send JSON like {example_body}"
        return JSONResponse(
            error_body(_HTTP_CODES.get(exc.status_code, "http_error"), message),
            status_code=exc.status_code,
            headers=exc.headers,
        )

    async def unstorable_text(_request: Request, _exc: Exception) -> JSONResponse:
        message = "a text value holds a character that cannot be stored (NUL, U+0000); remove it"
        return JSONResponse(error_body("invalid_text", message), status_code=400)

    app.add_exception_handler(Eco2Error, eco2_error)
    for kind in _UNSTORABLE_TEXT:
        app.add_exception_handler(kind, unstorable_text)
    app.add_exception_handler(RequestValidationError, bad_request)
    app.add_exception_handler(HTTPException, http_error)
    for kind in STORE_UNREACHABLE:
        app.add_exception_handler(kind, store_unreachable)
    _document_errors(app)


ERROR_SCHEMA_NAME = "Error"
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": ERROR_SCHEMA_NAME,
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "description": "stable, machine-readable"},
                "message": {"type": "string", "description": "what to do next"},
            },
        }
    },
}
"""Every error answer's body: ``{"error": {"code", "message"}}`` (:func:`error_body`)."""
ERROR_DESCRIPTIONS = {
    400: "Invalid input (a body that is not JSON, a value the service refuses); nothing changed",
    401: "Not signed in",
    403: "Signed in, but not allowed to do this",
    404: "No such resource, or it is not the caller's",
    409: "A concurrent change got there first; reload and retry",
    413: "The body or a value is too large",
    415: "Unsupported content type",
    422: "The request does not match its schema; the message says what is wrong",
    429: "Too many requests; retry after Retry-After seconds",
    502: "The upstream dropped the request; retry",
    503: "A dependency is unreachable or load is shed; retry after Retry-After seconds",
}
RETRY_AFTER_HEADER = {
    "Retry-After": {"description": "seconds to wait", "schema": {"type": "integer", "minimum": 1}}
}
ERROR_REF = {"$ref": f"#/components/schemas/{ERROR_SCHEMA_NAME}"}


class EventStream(StreamingResponse):
    """A streamed ``text/event-stream`` answer; as a route's ``response_class`` it documents the
    stream's content type."""

    media_type = "text/event-stream"


SSE_EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "one server-sent event; ``data`` is JSON",
    "properties": {
        "event": {"type": "string"},
        "data": {"type": "string"},
        "id": {"type": "string"},
        "retry": {"type": "integer"},
    },
}
"""What a ``text/event-stream`` answer is made of, event by event."""


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI responses of an operation's own error answers, for a route's ``responses=``
    (those every operation may give are added by :func:`install_error_handlers`)."""
    return {status: error_response(status) for status in statuses}


def error_response(status: int) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": ERROR_DESCRIPTIONS.get(status, "Error"),
        "content": {"application/json": {"schema": ERROR_REF}},
    }
    if status in (429, 503):
        response["headers"] = RETRY_AFTER_HEADER
    return response


def common_error_statuses(operation: dict[str, Any]) -> tuple[int, ...]:
    """What any operation of a service may answer: 503 (a store unreachable); with any input,
    400 (a body that is not JSON, an :class:`~eco2.errors.InvalidInput`) and 422 (schema); 401
    when it reads the caller (``X-User-ID``); 404 when it names a resource in its path."""
    parameters = operation.get("parameters", [])
    caller = [p for p in parameters if p.get("in") == "header" and _is_user_header(p)]
    statuses = [503]
    if len(parameters) > len(caller) or "requestBody" in operation:
        statuses += [400, 422]
    if caller:
        statuses.append(401)
    if any(p.get("in") == "path" for p in parameters):
        statuses.append(404)
    return tuple(sorted(statuses))


def _is_user_header(parameter: dict[str, Any]) -> bool:
    return str(parameter.get("name", "")).lower() == "x-user-id"


_OPENAPI_METHODS = ("get", "put", "post", "delete", "patch")
_FASTAPI_422_SCHEMAS = ("HTTPValidationError", "ValidationError")


def with_error_responses(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` (a FastAPI OpenAPI document, changed in place) with the error answers as
    they are sent: the :data:`ERROR_SCHEMA` body for 422 instead of FastAPI's ``{"detail"}``,
    and :func:`common_error_statuses` on every operation that does not document them itself."""
    for item in document.get("paths", {}).values():
        for method in _OPENAPI_METHODS:
            operation = item.get(method)
            if not isinstance(operation, dict):
                continue
            responses = operation.setdefault("responses", {})
            if "HTTPValidationError" in str(responses.get("422")):
                del responses["422"]  # FastAPI's {"detail": [...]}, never sent
            for status in common_error_statuses(operation):
                responses.setdefault(str(status), error_response(status))
            for response in responses.values():
                stream = response.get("content", {}).get(EventStream.media_type)
                if stream is not None:
                    stream["schema"] = SSE_EVENT_SCHEMA  # FastAPI's says "a string"
            operation["responses"] = dict(sorted(responses.items()))
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for name in _FASTAPI_422_SCHEMAS:
        schemas.pop(name, None)
    schemas[ERROR_SCHEMA_NAME] = ERROR_SCHEMA
    return document


def _document_errors(app: FastAPI) -> None:
    """Make ``app``'s ``/openapi.json`` say what its errors look like
    (:func:`with_error_responses`)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = with_error_responses(build())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


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


class BodyLimit:
    """ASGI middleware: a request body past ``max_bytes`` (``api.max_body_bytes``, what the
    gateway passes on) is refused with 413 ``too_large`` in the error shape, so a caller that
    reaches a service past the gateway cannot make it read and parse more. A declared
    ``Content-Length`` is refused before any byte is read; a chunked body is counted as it
    arrives and refused once past the limit, while the route reads it.
    Paths under ``own_limit`` are left to their routes, which count their bodies themselves
    (the signed image upload, up to ``image.max_bytes``)."""

    def __init__(self, app: ASGIApp, max_bytes: int, own_limit: Sequence[str] = ()) -> None:
        self._app, self._max_bytes, self._own_limit = app, max_bytes, tuple(own_limit)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self._own_limit):
            await self._app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self._max_bytes:
            refusal = body_too_large(self._max_bytes)
            response = JSONResponse(error_body(refusal.code, refusal.message), status_code=413)
            await response(scope, receive, send)
            return
        size = 0

        async def counted() -> Message:
            nonlocal size
            message = await receive()
            size += len(message.get("body", b""))
            if size > self._max_bytes:
                # FastAPI passes an HTTPException from reading the body on as it is (anything
                # else there becomes a 400); the handlers answer it in the error shape.
                raise HTTPException(413, body_too_large(self._max_bytes).message)
            return message

        await self._app(scope, counted, send)


def service_app(
    title: str,
    settings: Settings,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]],
    *,
    routers: Sequence[APIRouter] = (),
    example_body: str | None = None,
    ready: ReadyCheck | None = None,
    detail: HealthDetail | None = None,
    own_body_limit: Sequence[str] = (),
) -> FastAPI:
    """A service's app, the same way for every service: its lifespan, FastAPI's telemetry as
    :func:`eco2.telemetry.fastapi_options` says, the gateway's body limit (:class:`BodyLimit`;
    not under the path prefixes ``own_body_limit``), the error taxonomy (``example_body`` shows
    a valid request in a 422), ``/healthz`` and ``/readyz`` (:func:`install_probes`), its
    routers."""
    app = FastAPI(
        title=title, version="1", lifespan=lifespan, telemetry=fastapi_options(settings.telemetry)
    )
    app.add_middleware(BodyLimit, max_bytes=settings.api.max_body_bytes, own_limit=own_body_limit)
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
