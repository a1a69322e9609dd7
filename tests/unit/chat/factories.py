"""A chat job row as the store reads it, for unit tests; ``fields`` replace the defaults."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from pipelines.chat.machine import ChatJob
from pipelines.jobs.status import JobStatus


def chat_job(**fields: Any) -> ChatJob:
    values: dict[str, Any] = {
        "job_id": uuid.uuid4(),
        "chat_id": uuid.uuid4(),
        "user_id": "u",
        "message": "캔 얼마?",
        "image_url": None,
        "user_location": None,
        "model": "gpt-5.2",
        "client_model": "gpt-5.2",
        "status": JobStatus.RUNNING,
        "stage": "gathered",
        "version": 3,
        "attempt": 1,
        "classification": {"intent": "recyclable_price"},
        "vision_result": None,
        "context": {"tools": {}, "missing": []},
        "answer": None,
        "needs_input": None,
        "user_input": None,
        "metadata": {},
        "traceparent": None,
        "error": None,
        "failed_stage": None,
        "user_message_id": uuid.uuid4(),
        "created_at": datetime.now(UTC),
    }
    return ChatJob(**{**values, **fields})
