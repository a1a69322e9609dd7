"""The chat commands Ray Serve takes: post a message, reply to ``needs_input``. No Ray here.

Validation happens before anything is stored (bad input changes nothing): the message (not empty,
at most ``chat.max_message_chars``), the image URL (the same guard as scan's), the coordinates,
the model (the web client's names, mapped by ``chat.models``; any other is a 422). Then
admission: the replica's in-flight limit, then the caller's per-user limit (``rate_limit.chat``,
shared by every replica in Valkey; its refusal, a 429 with ``Retry-After``, stores nothing). An
accepted message is stored with its job and ``MessagePosted`` in one transaction and handed to
the jobs this replica runs.
"""

from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from domains.chat.model import checked_location, checked_message
from eco2 import telemetry, url_guard
from eco2.errors import (
    Conflict,
    NotFound,
    Unprocessable,
)
from eco2.settings import ChatSettings
from pipelines.chat import views
from pipelines.chat.inputs import Inputs
from pipelines.chat.machine import KIND, ChatJob
from pipelines.chat.store import ChatStore, fetch_job, location_of
from pipelines.jobs.admission import Admission, check_idempotency_key
from pipelines.jobs.progress import ProgressBus
from pipelines.jobs.streams import job_key, not_yours
from pipelines.jobs.tasks import JobTasks


class UserLocation(BaseModel):
    model_config = ConfigDict(extra="ignore")
    latitude: float
    longitude: float


class MessageRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    message: str = Field(max_length=100_000)
    image_url: str | None = Field(default=None, max_length=url_guard.MAX_URL_LENGTH)
    user_location: UserLocation | None = None
    model: str | None = None


class InputRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["location", "confirmation", "cancel"]
    data: dict[str, Any] | None = None


class ChatIntake:
    def __init__(
        self,
        settings: ChatSettings,
        allowed_image_hosts: tuple[str, ...],
        store: ChatStore,
        progress: ProgressBus,
        jobs: JobTasks[ChatJob],
        inputs: Inputs,
        admission: Admission | None = None,
    ) -> None:
        """``admission``: the in-flight limit the jobs feed and the per-user limit on posts
        (``None``: the settings' ceiling and no per-user limit, for tests that need none)."""
        self._settings, self._hosts, self._store = settings, allowed_image_hosts, store
        self._progress, self._jobs, self._inputs = progress, jobs, inputs
        self._admission = admission or Admission.of(KIND, settings.admission)

    async def post(
        self,
        user_id: str,
        chat_id: str,
        body: MessageRequest,
        idempotency_key: str | None,
        traceparent: str | None,
    ) -> dict[str, Any]:
        """``POST /api/v1/chat/{chat_id}/messages``: ``{job_id, stream_url, status}``."""
        message = checked_message(body.message, self._settings.max_message_chars)
        client_model = body.model or self._settings.default_model
        model = self._settings.models.get(client_model)
        if model is None:
            names = ", ".join(self._settings.models)
            raise Unprocessable(
                f"unknown model {client_model!r}; use one of: {names}", code="unknown_model"
            )
        location = None
        if body.user_location is not None:
            where = checked_location(body.user_location.latitude, body.user_location.longitude)
            location = {"latitude": where.latitude, "longitude": where.longitude}
        if body.image_url is not None:
            await url_guard.check(body.image_url, self._hosts)
        check_idempotency_key(idempotency_key)
        chat_key = _chat_key(chat_id)
        replayed = await self._admission.admit_or_replay(
            user_id,
            self._jobs.inflight,
            idempotency_key,
            lambda key: self._store.by_key(user_id, key),
        )
        if replayed is not None:
            return views.submitted(replayed)
        with telemetry.tracer(__name__).start_as_current_span(
            "chat.post", context=telemetry.extract(traceparent)
        ):
            job, created = await self._store.submit(
                user_id=user_id,
                chat_id=chat_key,
                idempotency_key=idempotency_key,
                message=message,
                image_url=body.image_url,
                user_location=location,
                model=model,
                client_model=client_model,
                traceparent=telemetry.inject(),
            )
        if created:
            self._progress.publish(str(job.job_id), user_id, views.queued(job))
            self._jobs.start(job)
        return views.submitted(job)

    async def reply(self, user_id: str, job_id: str, body: InputRequest) -> dict[str, Any]:
        """``POST /api/v1/chat/{job_id}/input``: the user's answer to ``needs_input``."""
        key = job_key(KIND, job_id)
        job = await fetch_job(self._store.pool, key)
        if job is None or job.user_id != user_id:
            raise not_yours(KIND, job_id)
        answer: dict[str, Any] = {"type": body.type}
        if body.type == "location":
            where = location_of(body.data or {})
            checked_location(where["latitude"], where["longitude"])
            answer["data"] = where
        elif body.data is not None:
            answer["data"] = body.data
        if not await self._store.record_input(user_id, key, answer):
            raise Conflict(
                "this job is not waiting for input (it was answered, timed out or finished)",
                code="not_waiting",
            )
        await self._inputs.deliver(key, answer)
        return {"status": "received", "job_id": job_id}

    async def reprocess(self, job_id: str | None) -> dict[str, Any]:
        key = uuid.UUID(job_id) if job_id else None
        jobs = await self._jobs.reprocess(key)
        return {"reprocessing": [str(j.job_id) for j in jobs]}


def _chat_key(chat_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(chat_id)
    except ValueError:
        raise NotFound(f"no chat {chat_id!r} of yours", code="chat_not_found") from None
