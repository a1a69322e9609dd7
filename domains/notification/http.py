"""The notification routes: the signed-in user's feed, read marks and a live SSE stream.

Every route acts for :data:`eco2.http.CurrentUser` only; another user's notice is reported as
unknown (404), never shown. The SSE stream works for a browser ``EventSource`` (the gateway turns
its cookie into ``X-User-ID``): ``event: notification`` frames whose ``id`` is the notice id, so a
reconnect's ``Last-Event-ID`` resumes right after the last notice received.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, cast

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from pydantic import BaseModel, ConfigDict
from sse_starlette import EventSourceResponse, ServerSentEvent

from domains.notification.live import NotificationHub
from domains.notification.model import (
    FeedPosition,
    StoredNotice,
    decode_cursor,
    encode_cursor,
)
from domains.notification.repository import NotificationRepository
from eco2.errors import NotFound, Unavailable
from eco2.http import CurrentUser, EventStream

PREFIX = "/api/v1/notifications"
MAX_PAGE = 100


@dataclass(frozen=True)
class StreamConfig:
    """Tuning of the SSE stream."""

    keepalive_s: float = 15.0
    """A comment line is sent this often so proxies keep an idle stream open."""
    catch_up_limit: int = 50
    """At most this many stored notices are sent on connect."""
    retry_ms: int = 3000
    """How long a browser waits before reconnecting after the stream ends."""


@dataclass(frozen=True)
class Backend:
    """What the routes use; built in the app's lifespan and kept on ``app.state.notification``."""

    repository: NotificationRepository
    hub: NotificationHub
    stream: StreamConfig


async def _backend(request: Request) -> Backend:
    backend = getattr(request.app.state, "notification", None)
    if backend is None:
        raise Unavailable("the notification service is starting; retry in a moment")
    return cast(Backend, backend)


BackendDep = Annotated[Backend, Depends(_backend)]


class NotificationOut(BaseModel):
    """One notice as clients see it (list items and SSE ``data``)."""

    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    kind: str
    title: str
    body: str
    data: dict[str, Any]
    created_at: datetime
    read_at: datetime | None


class NotificationPage(BaseModel):
    notifications: list[NotificationOut]
    next_cursor: str | None
    """Pass it as ``cursor`` for the next (older) page; null on the last page."""


router = APIRouter()


@router.get(PREFIX)
async def list_notifications(
    user: CurrentUser,
    backend: BackendDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 20,
    cursor: str | None = None,
) -> NotificationPage:
    """The caller's notices, newest first; an invalid ``cursor`` is answered 400."""
    after = decode_cursor(cursor) if cursor else None
    rows = await backend.repository.page(user, limit + 1, after)
    page = rows[:limit]
    next_cursor = encode_cursor(page[-1].position) if len(rows) > limit else None
    return NotificationPage(
        notifications=[NotificationOut.model_validate(n) for n in page], next_cursor=next_cursor
    )


@router.post(f"{PREFIX}/{{notice_id}}/read", status_code=204)
async def mark_read(notice_id: str, user: CurrentUser, backend: BackendDep) -> Response:
    """Mark one of the caller's notices read (again is harmless); 404 if it is not theirs."""
    parsed = _uuid_or_none(notice_id)
    if parsed is None or not await backend.repository.mark_read(user, parsed):
        raise NotFound(
            "no such notification of yours: use an id from GET /api/v1/notifications",
            code="notification_not_found",
        )
    return Response(status_code=204)


@router.get(f"{PREFIX}/stream", response_class=EventStream)
async def stream(
    request: Request,
    user: CurrentUser,
    backend: BackendDep,
    last_event_id: Annotated[str | None, Header()] = None,
) -> EventSourceResponse:
    """SSE: stored notices first (after ``Last-Event-ID``, else the latest unread), then live
    ones as ``event: notification``. ``event: resync`` (``data: {reason, reload}``) means "some
    notices may be missing here: reload the list"; for any reason but ``missed_too_many`` the
    stream then ends and the browser reconnects on its own."""
    resume = last_event_id or request.query_params.get("lastEventId")
    return EventSourceResponse(
        notice_events(backend, user, resume),
        ping=backend.stream.keepalive_s,
        ping_message_factory=lambda: ServerSentEvent(comment="keep-alive"),
    )


async def notice_events(
    backend: Backend, user_id: str, last_event_id: str | None
) -> AsyncGenerator[ServerSentEvent, None]:
    """The frames of one stream (see :func:`stream`).

    It subscribes before reading the backlog, so a notice committed in between is not lost; one
    that arrives both ways is sent once. It ends after a ``resync`` caused by falling behind (or
    by the database being unreachable): the browser reconnects after ``retry_ms`` with
    ``Last-Event-ID`` and the backlog fills the gap from the database.
    """
    with backend.hub.subscribe(user_id) as live:
        yield ServerSentEvent(comment="connected", retry=backend.stream.retry_ms)
        try:
            backlog, truncated = await _backlog(backend, user_id, last_event_id)
            if truncated:
                yield _resync("missed_too_many")
            sent = {notice.id for notice in backlog}
            for notice in backlog:
                yield _frame(notice)
            while (notice_id := await live.queue.get()) is not None and not live.lagging:
                if notice_id in sent:
                    sent.discard(notice_id)
                elif fresh := await backend.repository.get(user_id, notice_id):
                    yield _frame(fresh)
            yield _resync("fell_behind")
        except Unavailable:
            yield _resync("unavailable")


async def _backlog(
    backend: Backend, user_id: str, last_event_id: str | None
) -> tuple[list[StoredNotice], bool]:
    """The stored notices to send on connect, oldest first, and whether some were left out."""
    limit = backend.stream.catch_up_limit
    position = await _position_of(backend.repository, user_id, last_event_id)
    if position is None:
        return await backend.repository.latest_unread(user_id, limit), False
    return await backend.repository.newer_than(user_id, position, limit)


async def _position_of(
    repository: NotificationRepository, user_id: str, last_event_id: str | None
) -> FeedPosition | None:
    """Where ``last_event_id`` (one of the user's notice ids) is in the feed; None if it is not
    one (then the stream starts from the latest unread notices)."""
    notice_id = _uuid_or_none(last_event_id)
    notice = await repository.get(user_id, notice_id) if notice_id else None
    return notice.position if notice else None


def _frame(notice: StoredNotice) -> ServerSentEvent:
    data = NotificationOut.model_validate(notice).model_dump_json()
    return ServerSentEvent(data, event="notification", id=str(notice.id))


def _resync(reason: str) -> ServerSentEvent:
    data = f'{{"reason":"{reason}","reload":"{PREFIX}"}}'
    return ServerSentEvent(data, event="resync")


def _uuid_or_none(text: str | None) -> uuid.UUID | None:
    if not text or len(text) > 64:
        return None
    try:
        return uuid.UUID(text)
    except ValueError:
        return None
