"""Chat domain events (frozen, past tense, versioned), on the chat aggregate (id = chat id).

They reach Kafka as ``outbox.event.chat``; the chat index projection reads them. Payloads follow
domain.md §10.3 (``ChatClassified``, ``ChatAnswered``) and add the conversation's own.
"""

from __future__ import annotations

from typing import Any

from eco2.events import Event, EventRegistry

AGGREGATE_TYPE = "chat"
registry = EventRegistry()


@registry.register
class ChatCreated(Event):
    event_type = "ChatCreated"
    chat_id: str
    user_id: str
    title: str
    created_at: str


@registry.register
class ChatRenamed(Event):
    event_type = "ChatRenamed"
    chat_id: str
    user_id: str
    title: str


@registry.register
class ChatDeleted(Event):
    event_type = "ChatDeleted"
    chat_id: str
    user_id: str


@registry.register
class MessagePosted(Event):
    event_type = "MessagePosted"
    chat_id: str
    job_id: str
    message_id: str
    user_id: str
    content: str
    image_url: str | None
    created_at: str


@registry.register
class ChatClassified(Event):
    event_type = "ChatClassified"
    chat_id: str
    job_id: str
    intent: str
    additional_intents: list[str]
    confidence: float
    model: str


@registry.register
class ChatAnswered(Event):
    event_type = "ChatAnswered"
    chat_id: str
    job_id: str
    user_id: str
    message_id: str
    intent: str
    user_message: str
    user_image_url: str | None
    assistant_message: str
    user_created_at: str
    assistant_created_at: str
    metadata: dict[str, Any]


@registry.register
class ChatSummarised(Event):
    event_type = "ChatSummarised"
    chat_id: str
    summary: str
    upto_position: int
