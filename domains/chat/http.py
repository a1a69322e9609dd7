"""The chat routes: the signed-in user's conversations (wire shapes of domain.md §11.2 [compat]).

Every route acts for :data:`eco2.http.CurrentUser` only; another user's chat is reported as
unknown (404), never shown or changed. Posting a message is the chat pipeline's (Ray Serve), and
its stream the read side's; this service keeps the conversations.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from domains.chat import repository
from domains.chat.model import DEFAULT_TITLE, Chat, checked_title
from eco2.events import EventMetadata
from eco2.http import AppPool, CurrentUser

PREFIX = "/api/v1/chat"
TITLE_EXAMPLE = '{"title": "페트병 버리는 법"}'

router = APIRouter(prefix=PREFIX, tags=["chat"])


class NewChat(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str | None = Field(default=None, max_length=1000)


class Rename(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str = Field(max_length=1000)


class ChatSummary(BaseModel):
    id: uuid.UUID
    title: str
    preview: str | None
    message_count: int
    last_message_at: datetime | None
    created_at: datetime


class ChatPage(BaseModel):
    chats: list[ChatSummary]
    next_cursor: str | None


class Created(BaseModel):
    id: uuid.UUID
    title: str
    created_at: datetime


class MessageOut(BaseModel):
    id: uuid.UUID
    role: str
    content: str
    image_url: str | None
    intent: str | None
    metadata: dict[str, Any]
    created_at: datetime


class ChatDetail(BaseModel):
    id: uuid.UUID
    title: str
    messages: list[MessageOut]
    has_more: bool
    next_cursor: str | None
    created_at: datetime


def _chat_key(chat_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(chat_id)
    except ValueError:
        raise repository.no_such_chat(chat_id) from None


def _meta(request: Request, user_id: str) -> EventMetadata:
    return EventMetadata(
        traceparent=request.headers.get("traceparent"),
        correlation_id=request.headers.get("x-request-id"),
        user_id=user_id,
    )


def _summary(chat: Chat) -> ChatSummary:
    return ChatSummary(
        id=chat.chat_id,
        title=chat.title,
        preview=chat.preview,
        message_count=chat.message_count,
        last_message_at=chat.last_message_at,
        created_at=chat.created_at,
    )


def _title_limit(request: Request) -> int:
    limit: int = request.app.state.max_title_chars
    return limit


@router.get("")
async def list_chats(
    user: CurrentUser,
    pool: AppPool,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: str | None = None,
) -> ChatPage:
    """The caller's chats, most recently active first."""
    chats, following = await repository.page_of_chats(pool, user, limit, cursor)
    return ChatPage(chats=[_summary(c) for c in chats], next_cursor=following)


@router.post("", status_code=201)
async def create_chat(
    request: Request, user: CurrentUser, pool: AppPool, body: NewChat | None = None
) -> Created:
    """A new, empty chat; without a title it is called 새 대화 until renamed."""
    title = DEFAULT_TITLE
    if body is not None and body.title is not None:
        title = checked_title(body.title, _title_limit(request))
    chat = await repository.create(pool, user, title, _meta(request, user))
    return Created(id=chat.chat_id, title=chat.title, created_at=chat.created_at)


@router.patch("/{chat_id}", status_code=204)
async def rename_chat(
    request: Request, chat_id: str, body: Rename, user: CurrentUser, pool: AppPool
) -> Response:
    title = checked_title(body.title, _title_limit(request))
    await repository.rename(pool, user, _chat_key(chat_id), title, _meta(request, user))
    return Response(status_code=204)


@router.delete("/{chat_id}", status_code=204)
async def delete_chat(request: Request, chat_id: str, user: CurrentUser, pool: AppPool) -> Response:
    """Soft delete: gone for the user; its messages stay stored."""
    await repository.delete(pool, user, _chat_key(chat_id), _meta(request, user))
    return Response(status_code=204)


@router.get("/{chat_id}")
async def chat_detail(
    chat_id: str,
    user: CurrentUser,
    pool: AppPool,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> ChatDetail:
    """The chat with its latest messages (oldest first); ``next_cursor`` pages back in time."""
    chat = await repository.owned(pool, user, _chat_key(chat_id))
    messages, following = await repository.page_of_messages(pool, chat.chat_id, limit, cursor)
    return ChatDetail(
        id=chat.chat_id,
        title=chat.title,
        messages=[
            MessageOut(
                id=m.message_id,
                role=m.role,
                content=m.content,
                image_url=m.image_url,
                intent=m.intent,
                metadata=m.metadata,
                created_at=m.created_at,
            )
            for m in messages
        ],
        has_more=following is not None,
        next_cursor=following,
        created_at=chat.created_at,
    )
