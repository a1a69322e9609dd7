"""The chat domain on its own database (``eco2_chat``): chats, messages and their events.

Every change writes its state and its events in ONE transaction: :func:`append` bumps the chat's
``version`` in the statement that returns the versions of the new events, so concurrent writers
of one chat (a rename while an answer is stored) are serialised by the row, never conflict.
Functions that take a ``conn`` run inside the caller's transaction (the chat pipeline's commits);
the others open their own.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg

from domains.chat.events import (
    AGGREGATE_TYPE,
    ChatCreated,
    ChatDeleted,
    ChatRenamed,
    ChatSummarised,
    MessagePosted,
)
from domains.chat.model import Chat, Message, decode_cursor, encode_cursor, preview_of
from eco2 import eventstore
from eco2.errors import InvalidInput, NotFound
from eco2.events import Event, EventMetadata

_CHAT_COLUMNS = (
    "chat_id, user_id, title, preview, message_count, last_message_at, created_at, summary, "
    "summarised_upto, version"
)
_MESSAGE_COLUMNS = (
    "message_id, chat_id, position, role, content, created_at, job_id, image_url, intent, metadata"
)


def _chat(row: asyncpg.Record) -> Chat:
    return Chat(**dict(row))


def _message(row: asyncpg.Record | dict[str, Any]) -> Message:
    return Message(**dict(row))


def no_such_chat(chat_id: object) -> NotFound:
    return NotFound(f"no chat {str(chat_id)!r} of yours", code="chat_not_found")


async def append(
    conn: asyncpg.Connection, chat_id: uuid.UUID, events: Sequence[Event], meta: EventMetadata
) -> None:
    """Append ``events`` to the chat's stream, bumping its version (caller's transaction)."""
    if not events:
        return
    last = await conn.fetchval(
        "UPDATE chats SET version = version + $2, updated_at = now() WHERE chat_id = $1 "
        "RETURNING version",
        chat_id,
        len(events),
    )
    if last is None:
        raise no_such_chat(chat_id)
    first = last - len(events) + 1
    await eventstore.append_versions(conn, AGGREGATE_TYPE, str(chat_id), first, events, meta)


async def create(pool: asyncpg.Pool, user_id: str, title: str, meta: EventMetadata) -> Chat:
    chat_id, now = uuid.uuid4(), datetime.now(UTC)
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            f"INSERT INTO chats (chat_id, user_id, title, version, created_at) "
            f"VALUES ($1, $2, $3, 0, $4) RETURNING {_CHAT_COLUMNS}",
            chat_id,
            user_id,
            title,
            now,
        )
        event = ChatCreated(
            chat_id=str(chat_id), user_id=user_id, title=title, created_at=now.isoformat()
        )
        await append(conn, chat_id, [event], meta)
    return _chat(row)


async def owned(conn: asyncpg.Connection | asyncpg.Pool, user_id: str, chat_id: uuid.UUID) -> Chat:
    """The user's chat (not deleted), or :class:`NotFound` — also for another user's chat."""
    row = await conn.fetchrow(
        f"SELECT {_CHAT_COLUMNS} FROM chats "
        "WHERE chat_id = $1 AND user_id = $2 AND deleted_at IS NULL",
        chat_id,
        user_id,
    )
    if row is None:
        raise no_such_chat(chat_id)
    return _chat(row)


async def rename(
    pool: asyncpg.Pool, user_id: str, chat_id: uuid.UUID, title: str, meta: EventMetadata
) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await owned(conn, user_id, chat_id)
        await conn.execute("UPDATE chats SET title = $2 WHERE chat_id = $1", chat_id, title)
        event = ChatRenamed(chat_id=str(chat_id), user_id=user_id, title=title)
        await append(conn, chat_id, [event], meta)


async def delete(pool: asyncpg.Pool, user_id: str, chat_id: uuid.UUID, meta: EventMetadata) -> None:
    """Soft delete: the chat and its messages stay stored, the user no longer sees them."""
    async with pool.acquire() as conn, conn.transaction():
        await owned(conn, user_id, chat_id)
        await conn.execute("UPDATE chats SET deleted_at = now() WHERE chat_id = $1", chat_id)
        await append(conn, chat_id, [ChatDeleted(chat_id=str(chat_id), user_id=user_id)], meta)


async def page_of_chats(
    pool: asyncpg.Pool, user_id: str, limit: int, cursor: str | None
) -> tuple[list[Chat], str | None]:
    """The user's chats, most recently active first; the cursor continues after the last one."""
    args: list[Any] = [user_id, limit + 1]
    after = ""
    if cursor is not None:
        at, chat_id = decode_cursor(cursor, 2)
        after = "AND (coalesce(last_message_at, created_at), chat_id) < ($3, $4)"
        args += [_parse_time(at), _parse_uuid(chat_id)]
    rows = await pool.fetch(
        f"SELECT {_CHAT_COLUMNS} FROM chats WHERE user_id = $1 AND deleted_at IS NULL {after} "
        "ORDER BY coalesce(last_message_at, created_at) DESC, chat_id DESC LIMIT $2",
        *args,
    )
    chats = [_chat(r) for r in rows[:limit]]
    following = None
    if len(rows) > limit:
        last = chats[-1]
        following = encode_cursor(last.activity.isoformat(), str(last.chat_id))
    return chats, following


async def page_of_messages(
    pool: asyncpg.Pool, chat_id: uuid.UUID, limit: int, cursor: str | None
) -> tuple[list[Message], str | None]:
    """The latest ``limit`` messages (before the cursor's), oldest first; the cursor leads to
    the earlier ones."""
    before = _parse_position(decode_cursor(cursor, 1)[0]) if cursor else None
    rows = await pool.fetch(
        f"SELECT {_MESSAGE_COLUMNS} FROM chat_messages WHERE chat_id = $1 "
        "AND ($2::bigint IS NULL OR position < $2) ORDER BY position DESC LIMIT $3",
        chat_id,
        before,
        limit + 1,
    )
    messages = [_message(r) for r in reversed(rows[:limit])]
    following = encode_cursor(str(messages[0].position)) if len(rows) > limit else None
    return messages, following


async def messages_after(
    conn: asyncpg.Connection | asyncpg.Pool, chat_id: uuid.UUID, position: int
) -> list[Message]:
    """The chat's messages after ``position`` in order (the answer's context)."""
    rows = await conn.fetch(
        f"SELECT {_MESSAGE_COLUMNS} FROM chat_messages WHERE chat_id = $1 AND position > $2 "
        "ORDER BY position",
        chat_id,
        position,
    )
    return [_message(r) for r in rows]


async def add_message(
    conn: asyncpg.Connection,
    chat: Chat,
    *,
    job_id: uuid.UUID,
    role: str,
    content: str,
    image_url: str | None = None,
    intent: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> Message:
    """Store a job's message of one role and update the chat's counters and preview (caller's
    transaction). A job has one message per role: storing it again replaces its content (an
    answer that was cut short, then completed on reprocessing) without counting it twice."""
    row = await conn.fetchrow(
        f"""
        INSERT INTO chat_messages (message_id, chat_id, job_id, role, content, image_url, intent,
                                   metadata)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8::text::jsonb)
        ON CONFLICT (job_id, role) DO UPDATE
            SET content = EXCLUDED.content, intent = EXCLUDED.intent, metadata = EXCLUDED.metadata
        RETURNING {_MESSAGE_COLUMNS}, (xmax = 0) AS inserted
        """,
        uuid.uuid4(),
        chat.chat_id,
        job_id,
        role,
        content,
        image_url,
        intent,
        _json(metadata or {}),
    )
    counted = 1 if row["inserted"] else 0
    await conn.execute(
        "UPDATE chats SET message_count = message_count + $2, preview = $3, "
        "last_message_at = greatest(coalesce(last_message_at, $4), $4) WHERE chat_id = $1",
        chat.chat_id,
        counted,
        preview_of(content),
        row["created_at"],
    )
    return _message({k: v for k, v in row.items() if k != "inserted"})


def posted(chat: Chat, message: Message, user_id: str) -> MessagePosted:
    return MessagePosted(
        chat_id=str(chat.chat_id),
        job_id=str(message.job_id),
        message_id=str(message.message_id),
        user_id=user_id,
        content=message.content,
        image_url=message.image_url,
        created_at=message.created_at.isoformat(),
    )


async def store_summary(
    conn: asyncpg.Connection, chat_id: uuid.UUID, summary: str, upto: int, meta: EventMetadata
) -> None:
    """Keep the summary of the messages up to ``upto`` (they leave the prompt from now on)."""
    await conn.execute(
        "UPDATE chats SET summary = $2, summarised_upto = $3 WHERE chat_id = $1",
        chat_id,
        summary,
        upto,
    )
    event = ChatSummarised(chat_id=str(chat_id), summary=summary, upto_position=upto)
    await append(conn, chat_id, [event], meta)


def _json(value: dict[str, Any]) -> str:
    return json.dumps(value, ensure_ascii=False)


def _parse_time(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise decode_error() from None


def _parse_uuid(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise decode_error() from None


BIGINT_MAX = 2**63 - 1


def _parse_position(text: str) -> int:
    # ASCII digits that fit a bigint: str.isdigit() alone also accepts "²", which int() refuses.
    if not (text.isascii() and text.isdigit() and len(text) <= 19) or int(text) > BIGINT_MAX:
        raise decode_error()
    return int(text)


def decode_error() -> InvalidInput:
    return InvalidInput("cursor must be the next_cursor of a previous page", code="invalid_cursor")
