"""The notification SSE stream in-process on the stack's PostgreSQL: live pushes through
``pg_notify``, ``Last-Event-ID`` resumes, user isolation and a listener that reconnects.

``httpx.ASGITransport`` collects the whole response before returning it, which an endless SSE
stream never finishes, so these tests use :class:`StreamingASGITransport`: body chunks are
handed over as the app sends them, and closing the response tells the app the client left.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from domains.notification import reactions
from domains.notification.http import Backend, StreamConfig
from domains.notification.service import create_app
from eco2.db import domain_dsn
from eco2.events import EventEnvelope
from eco2.settings import Settings
from tests.conftest import StackUrls
from tests.integration.delivery import apply_twice
from tests.unit.domains.notification import factories

pytestmark = pytest.mark.integration

STREAM = "/api/v1/notifications/stream"
DEADLINE_S = 5.0


class _Body(httpx.AsyncByteStream):
    def __init__(
        self, chunks: asyncio.Queue[bytes | None], left: asyncio.Event, task: asyncio.Task[None]
    ) -> None:
        self.chunks, self.left, self.task = chunks, left, task

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while (chunk := await self.chunks.get()) is not None:
            yield chunk

    async def aclose(self) -> None:
        self.left.set()
        try:
            await asyncio.wait_for(self.task, DEADLINE_S)
        except TimeoutError:
            self.task.cancel()


class StreamingASGITransport(httpx.AsyncBaseTransport):
    """Runs the ASGI app per request in a task and streams its response body."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": request.method,
            "headers": [(k.lower(), v) for k, v in request.headers.raw],
            "scheme": request.url.scheme,
            "path": request.url.path,
            "raw_path": request.url.raw_path.split(b"?")[0],
            "query_string": request.url.query,
            "server": (request.url.host, request.url.port),
            "client": ("127.0.0.1", 123),
            "root_path": "",
        }
        chunks: asyncio.Queue[bytes | None] = asyncio.Queue()
        started: asyncio.Future[tuple[int, list[tuple[bytes, bytes]]]] = (
            asyncio.get_running_loop().create_future()
        )
        left = asyncio.Event()
        request_sent = False

        async def receive() -> dict[str, Any]:
            nonlocal request_sent
            if not request_sent:
                request_sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await left.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                started.set_result((message["status"], message.get("headers", [])))
            elif message["type"] == "http.response.body" and message.get("body"):
                chunks.put_nowait(message["body"])

        async def run() -> None:
            try:
                await self.app(scope, receive, send)
            except Exception as exc:
                if not started.done():
                    started.set_exception(exc)
            finally:
                if not started.done():
                    started.set_exception(RuntimeError("the app sent no response"))
                chunks.put_nowait(None)

        task = asyncio.create_task(run())
        status, headers = await started
        return httpx.Response(status, headers=headers, stream=_Body(chunks, left, task))


@dataclass
class Frame:
    event: str | None = None
    id: str | None = None
    data: str = ""
    comments: list[str] = field(default_factory=list)


class SseReader:
    """Parses an SSE response into frames (comment-only frames included)."""

    def __init__(self, response: httpx.Response) -> None:
        self.lines = response.aiter_lines()

    async def frame(self) -> Frame:
        frame, seen = Frame(), False
        async with asyncio.timeout(DEADLINE_S):
            async for line in self.lines:
                if not line:
                    if seen:
                        return frame
                    continue
                seen = True
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if name == "":
                    frame.comments.append(value)
                elif name == "event":
                    frame.event = value
                elif name == "id":
                    frame.id = value
                elif name == "data":
                    frame.data += value
        raise EOFError("the stream ended")

    async def event(self) -> Frame:
        """The next frame that is an event (not a comment or keep-alive)."""
        while True:
            frame = await self.frame()
            if frame.event is not None:
                return frame

    async def connected(self) -> None:
        frame = await self.frame()
        assert frame.comments == ["connected"]


@dataclass
class Service:
    app: FastAPI
    client: httpx.AsyncClient
    pool: asyncpg.Pool

    @property
    def backend(self) -> Backend:
        backend: Backend = self.app.state.notification
        return backend

    async def deliver_twice(self, envelope: EventEnvelope) -> None:
        spec = next(
            s for s in reactions.specs() if f"outbox.event.{envelope.aggregate_type}" in s.topics
        )
        assert await apply_twice(self.pool, spec, envelope) == [1, 0]

    @contextlib.asynccontextmanager
    async def stream(self, user_id: str, **headers: str) -> AsyncIterator[SseReader]:
        sent = {"X-User-ID": user_id, "Accept": "text/event-stream", **headers}
        async with self.client.stream("GET", STREAM, headers=sent) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            reader = SseReader(response)
            await reader.connected()
            yield reader


@pytest.fixture
async def service(settings: Settings) -> AsyncIterator[Service]:
    app = create_app(settings, stream=StreamConfig(keepalive_s=0.2, catch_up_limit=3))
    pool = await asyncpg.create_pool(domain_dsn(settings, "notification"), min_size=1, max_size=2)
    try:
        async with app.router.lifespan_context(app):
            transport = StreamingASGITransport(app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                yield Service(app, client, pool)
    finally:
        await pool.close()


def notice_of(frame: Frame) -> dict[str, Any]:
    assert frame.event == "notification"
    body: dict[str, Any] = json.loads(frame.data)
    assert body["id"] == frame.id
    return body


async def test_a_committed_notice_reaches_an_open_stream_once(service: Service) -> None:
    user = factories.new_user()
    async with service.stream(user) as reader:
        event = factories.character_acquired(user, code="char-metally", name="메탈리")
        await service.deliver_twice(event)
        body = notice_of(await reader.event())
        assert body["id"] == str(event.event_id)
        assert body["kind"] == "character_acquired"
        assert body["body"].startswith("메탈리가 ")
        assert body["data"]["character_code"] == "char-metally"

        marker = factories.profile_updated(user, owned_count=2)
        await service.deliver_twice(marker)
        assert notice_of(await reader.event())["id"] == str(marker.event_id)  # no duplicate


async def test_an_idle_stream_gets_keep_alive_comments(service: Service) -> None:
    async with service.stream(factories.new_user()) as reader:
        assert (await reader.frame()).comments == ["keep-alive"]


async def test_a_stream_never_shows_another_users_notices(service: Service) -> None:
    me, other = factories.new_user(), factories.new_user()
    await service.deliver_twice(factories.character_acquired(other))  # stored before connecting
    async with service.stream(me) as reader:
        await service.deliver_twice(factories.character_acquired(other, code="char-plea"))
        mine = factories.character_acquired(me, code="char-foamy", name="폼이")
        await service.deliver_twice(mine)
        assert notice_of(await reader.event())["id"] == str(mine.event_id)


async def test_last_event_id_resumes_after_the_last_notice_received(service: Service) -> None:
    user = factories.new_user()
    events = [factories.profile_updated(user, owned_count=n, version=n) for n in range(1, 5)]
    for event in events:
        await service.deliver_twice(event)
    async with service.stream(user) as reader:  # the latest unread, at most 3, oldest first
        received = [notice_of(await reader.event())["id"] for _ in range(3)]
    assert received == [str(e.event_id) for e in events[1:]]

    read = f"/api/v1/notifications/{events[1].event_id}/read"
    assert (await service.client.post(read, headers={"X-User-ID": user})).status_code == 204
    async with service.stream(user, **{"Last-Event-ID": str(events[0].event_id)}) as reader:
        resumed = [notice_of(await reader.event())["id"] for _ in range(3)]
        assert resumed == [str(e.event_id) for e in events[1:]]  # read or not
        later = factories.profile_updated(user, owned_count=5, version=5)
        await service.deliver_twice(later)
        assert notice_of(await reader.event())["id"] == str(later.event_id)


async def test_a_dropped_listener_reconnects_and_open_streams_resync(
    service: Service, stack: StackUrls
) -> None:
    user = factories.new_user()
    hub = service.backend.hub
    pid = hub.backend_pid
    assert pid is not None
    async with service.stream(user) as reader:
        admin = await asyncpg.connect(stack.db_url)
        try:
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
        finally:
            await admin.close()
        resync = await reader.event()
        assert resync.event == "resync"
        assert json.loads(resync.data)["reason"] == "fell_behind"
        with pytest.raises(EOFError):
            await reader.frame()
    assert hub.backend_pid not in (None, pid)

    async with service.stream(user) as reader:
        event = factories.character_acquired(user)
        await service.deliver_twice(event)
        assert notice_of(await reader.event())["id"] == str(event.event_id)
