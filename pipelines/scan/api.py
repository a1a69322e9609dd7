"""HTTP handling of the scan API: validation, submit, result, SSE — no Ray here.

Errors are translated at this edge only: :class:`~eco2.errors.InvalidInput` → 4xx with
``{"error": {"code", "message"}}``; :class:`~eco2.errors.Overloaded` → 429 with ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field
from redis.exceptions import RedisError

from eco2 import telemetry
from eco2.errors import InvalidInput, NotFound, Overloaded
from eco2.settings import Settings
from pipelines.rules.rulebook import RuleBook
from pipelines.scan import url_guard, views
from pipelines.scan.contracts import JobStatus, Stage
from pipelines.scan.progress import ProgressBus, ProgressEvent, make_event
from pipelines.scan.store import Job, ScanStore

KEEPALIVE_S = 15
FIRST_EVENT_WAIT_S = 1.0


class ScanRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    image_url: str = Field(min_length=1, max_length=url_guard.MAX_URL_LENGTH)
    user_input: str | None = None
    model: str | None = None


class Runner(Protocol):
    @property
    def inflight(self) -> int: ...
    def start_job(self, job: Job) -> None: ...
    async def run_inline(self, job: Job) -> Job: ...
    async def reprocess(self, job_id: uuid.UUID | None) -> list[Job]: ...


class ScanService:
    def __init__(
        self,
        settings: Settings,
        store: ScanStore,
        bus: ProgressBus,
        rules: RuleBook,
        runner: Runner,
    ) -> None:
        self._settings = settings
        self._store = store
        self._bus = bus
        self._rules = rules
        self._runner = runner

    async def _validated(self, body: ScanRequest) -> str:
        limits = self._settings.scan
        if body.user_input and len(body.user_input) > limits.max_user_input_chars:
            raise InvalidInput(
                f"user_input is longer than {limits.max_user_input_chars} characters; shorten it",
                code="user_input_too_long",
            )
        model = body.model or self._settings.model.vision_model
        if model not in self._settings.model.supported_models:
            supported = ", ".join(self._settings.model.supported_models)
            raise InvalidInput(
                f"unknown model {model!r}; use one of: {supported}", code="unknown_model"
            )
        await url_guard.check(body.image_url, limits.allowed_image_hosts)
        return model

    async def _accept(
        self, user_id: str, body: ScanRequest, idempotency_key: str | None, traceparent: str | None
    ) -> tuple[Job, bool]:
        model = await self._validated(body)
        if idempotency_key is not None and not 0 < len(idempotency_key) <= 128:
            raise InvalidInput(
                "X-Idempotency-Key must be 1-128 characters", code="bad_idempotency_key"
            )
        if self._runner.inflight >= self._settings.scan.max_inflight_jobs:
            raise Overloaded("too many scans in progress; retry shortly", retry_after_s=2)
        with telemetry.tracer(__name__).start_as_current_span(
            "scan.submit", context=telemetry.extract(traceparent)
        ):
            return await self._store.submit(
                user_id=user_id,
                idempotency_key=idempotency_key,
                image_url=body.image_url,
                user_input=body.user_input,
                model=model,
                traceparent=telemetry.inject(),
            )

    async def submit(
        self, user_id: str, body: ScanRequest, idempotency_key: str | None, traceparent: str | None
    ) -> dict[str, Any]:
        job, created = await self._accept(user_id, body, idempotency_key, traceparent)
        if created:
            await self._bus.publish(job, Stage.QUEUED, "completed")
            self._runner.start_job(job)
        return views.submitted(job)

    async def classify_inline(
        self, user_id: str, body: ScanRequest, traceparent: str | None
    ) -> dict[str, Any]:
        job, _ = await self._accept(user_id, body, None, traceparent)
        job = await self._runner.run_inline(job)
        return self._final_view(job)

    async def owned_job(self, user_id: str, job_id: str) -> Job:
        job = await self._store.get(_job_key(job_id))
        if job is None or job.user_id != user_id:
            raise _not_yours(job_id)
        return job

    def _final_view(self, job: Job) -> dict[str, Any]:
        if job.status is JobStatus.COMPLETED:
            return views.result(job, self._rules)
        if job.status is JobStatus.FAILED:
            return views.failed(job)
        return views.processing(job)

    async def result(self, user_id: str, job_id: str) -> tuple[int, dict[str, Any]]:
        job = await self.owned_job(user_id, job_id)
        # A failed (dead-lettered) job is not a result: the web client treats anything but 200 as
        # an error, which is what it should show; the body says why and that it can be re-run.
        status = {JobStatus.COMPLETED: 200, JobStatus.FAILED: 422}.get(job.status, 202)
        return status, self._final_view(job)

    async def open_events(
        self, user_id: str, job_id: str, last_event_id: str | None
    ) -> AsyncIterator[bytes]:
        """The SSE stream of ``user_id``'s job, or :class:`NotFound` before anything is sent.

        Ownership comes from the job's progress history (written with its user id), so a
        stream costs no database read; only a job whose history expired is looked up.
        """
        key = str(_job_key(job_id))
        try:
            owner = await self._bus.owner(key)
        except (RedisError, OSError):  # history unreachable: the row decides
            owner = None
        if owner is None:
            await self.owned_job(user_id, key)
        elif owner != user_id:
            raise _not_yours(job_id)
        return self.events(key, user_id, last_event_id)

    async def events(
        self, key: str, user_id: str, last_event_id: str | None
    ) -> AsyncIterator[bytes]:
        """The SSE stream: history (or a snapshot) first, then live events until done/error.

        Events that are ready together go out in one write.
        """
        async with self._bus.subscription(key) as live:
            pending = await self._bus.history(key, last_event_id)
            if not pending and last_event_id is None:
                pending = [await self._first_event(key, user_id, live)]
            last: ProgressEvent | None = None
            while True:
                fresh = [e for e in pending if last is None or e.key > last.key]
                done = next((i for i, e in enumerate(fresh) if e.terminal), None)
                if done is not None:
                    fresh = fresh[: done + 1]
                if fresh:
                    yield "".join(e.encode() for e in fresh).encode()
                    last = fresh[-1]
                if done is not None:
                    return
                try:
                    pending = [await asyncio.wait_for(live.get(), timeout=KEEPALIVE_S)]
                except TimeoutError:
                    yield b": keep-alive\n\n"
                    # A live event lost on the way (a Valkey reconnect) is in the history.
                    pending = await self._bus.history(key, last.id if last else last_event_id)
                while not live.empty():
                    pending.append(live.get_nowait())

    async def _first_event(
        self, key: str, user_id: str, live: asyncio.Queue[ProgressEvent]
    ) -> ProgressEvent:
        """The first live event, or a snapshot from the job row when none comes soon.

        Progress is published a moment after the commit, so a fresh job usually has its
        ``queued`` event in flight; the row is read only when history expired or was lost.
        """
        try:
            return await asyncio.wait_for(live.get(), timeout=FIRST_EVENT_WAIT_S)
        except TimeoutError:
            return self._snapshot(await self.owned_job(user_id, key))

    def _snapshot(self, job: Job) -> ProgressEvent:
        if job.status is JobStatus.COMPLETED:
            return make_event(job, Stage.DONE, "completed", result=views.result(job, self._rules))
        if job.status is JobStatus.FAILED:
            return make_event(job, Stage(job.failed_stage or "vision"), "failed", error=job.error)
        stage = {"queued": Stage.QUEUED, "vision": Stage.VISION, "answer": Stage.ANSWER}[job.stage]
        return make_event(job, stage, "completed")

    async def reprocess(self, job_id: str | None) -> dict[str, Any]:
        key = uuid.UUID(job_id) if job_id else None
        jobs = await self._runner.reprocess(key)
        return {"reprocessing": [str(j.job_id) for j in jobs]}


def _job_key(job_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(job_id)
    except ValueError:
        raise NotFound(f"no scan job {job_id!r}", code="not_found") from None


def _not_yours(job_id: str) -> NotFound:
    return NotFound(f"no scan job {job_id!r} for this user", code="not_found")
