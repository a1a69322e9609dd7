"""The pipelines' read side: job streams (SSE) and results, a regular service outside Ray Serve.

It answers from what the stages wrote — the Valkey progress history and the job rows in the
pipeline's own database — so Ray Serve only takes the commands that need a model. One route
set per job kind (scan, chat), each with the wire contracts of domain.md §11.1-11.2:

* ``GET /api/v1/<kind>/{job_id}/events`` — SSE: history or snapshot on connect, live events with
  ``id``/``seq``, ``Last-Event-ID`` (or ``?lastEventId=``) resume, ends after ``done``/``error``
  (a chat's missed tokens come back as one ``token_recovery``);
* ``GET /api/v1/<kind>/{job_id}/result`` — 200 result (stored before ``done`` is published),
  202 + ``Retry-After`` while running, 422 when dead-lettered;
* 404 for another user's job and for no job; 401 without the gateway's ``X-User-ID``.

Hosted by :mod:`runtime.domain_host` like the domain services (``streams``), its own process
locally and its own Deployment in Kubernetes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Header, Request
from fastapi.responses import JSONResponse

from cdc.consumers import ConsumerSpec
from eco2 import cache as valkey
from eco2.db import create_pool
from eco2.http import RETRY_AFTER_HEADER as RETRY_AFTER
from eco2.http import CurrentUser, EventStream, service_app
from eco2.settings import Settings
from pipelines.chat import views as chat_views
from pipelines.chat.machine import KIND as CHAT
from pipelines.chat.reads import ChatReads
from pipelines.jobs.progress import ProgressBus
from pipelines.jobs.streams import JobStreams
from pipelines.rules.rulebook import load_rulebook
from pipelines.scan import views
from pipelines.scan.machine import KIND as SCAN
from pipelines.scan.reads import ScanReads

SSE_HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
RESULT_RETRY_AFTER_S = 2
VALKEY_CONNECTIONS = 64


def create_app(settings: Settings) -> FastAPI:
    cache_url = settings.cache.require("the job stream service")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            pool = await stack.enter_async_context(await create_pool(settings, SCAN))
            chat_pool = await stack.enter_async_context(await create_pool(settings, CHAT))
            client = valkey.connect(cache_url, max_connections=VALKEY_CONNECTIONS, wait_s=10)
            bus = ProgressBus(client, SCAN)  # owns the client
            stack.push_async_callback(bus.close)
            chat_client = valkey.connect(cache_url, max_connections=VALKEY_CONNECTIONS, wait_s=10)
            chat_bus = ProgressBus(chat_client, CHAT, history_len=chat_views.HISTORY_LEN)
            stack.push_async_callback(chat_bus.close)
            app.state.job_streams = {
                SCAN: JobStreams(bus, ScanReads(pool, load_rulebook())),
                CHAT: JobStreams(
                    chat_bus,
                    ChatReads(chat_pool),
                    keepalive=chat_views.KEEPALIVE,
                    resume=chat_views.recover,
                ),
            }
            yield

    app = service_app("Eco² job streams and results", settings, lifespan)

    @app.get("/api/v1/scan/categories")
    async def categories() -> list[dict[str, Any]]:
        """The four waste categories and their short instructions (public)."""
        return views.CATEGORIES

    app.include_router(job_routes(SCAN))
    app.include_router(job_routes(CHAT))
    return app


def job_routes(kind: str) -> APIRouter:
    """``GET /api/v1/<kind>/{job_id}/events`` and ``/result`` of one job kind, answered by the
    :class:`~pipelines.jobs.streams.JobStreams` in ``app.state.job_streams[kind]``."""
    router = APIRouter(prefix=f"/api/v1/{kind}", tags=[kind])

    def streams_of(request: Request) -> JobStreams:
        streams: JobStreams = request.app.state.job_streams[kind]
        return streams

    @router.get(
        "/{job_id}/result",
        responses={
            202: {"description": "Running; ask again after Retry-After", "headers": RETRY_AFTER},
            422: {"description": "Dead-lettered: the body says why"},
        },
    )
    async def result(request: Request, job_id: str, user: CurrentUser) -> JSONResponse:
        """200 with the result; 202 + ``Retry-After`` while the job runs; 422 when it was
        dead-lettered (the body says why); 404 for another user's job."""
        status, body = await streams_of(request).result(user, job_id)
        headers = {"Retry-After": str(RESULT_RETRY_AFTER_S)} if status == 202 else None
        return JSONResponse(body, status_code=status, headers=headers)

    @router.get("/{job_id}/events", response_class=EventStream)
    async def events(
        request: Request,
        job_id: str,
        user: CurrentUser,
        last_event_id: Annotated[str | None, Header()] = None,
    ) -> EventStream:
        """SSE: the job's progress events (``id``, ``event``, ``data`` with ``seq``), ending
        after ``done`` or ``error``; resumable with ``Last-Event-ID``."""
        resume = last_event_id or request.query_params.get("lastEventId")
        stream = await streams_of(request).open(user, job_id, resume)
        # SSE-encoded at the source (keep-alive comments included): a plain streaming
        # response carries it.
        return EventStream(stream, headers=SSE_HEADERS)

    return router


def consumers(_settings: Settings) -> list[ConsumerSpec]:
    """The read service reacts to no events: it reads what the pipelines stored."""
    return []
