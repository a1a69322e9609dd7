"""The scan commands Ray Serve takes: submit, synchronous classify, reprocess. No Ray here.

Validation happens before anything is stored (bad input changes nothing); then admission
(:mod:`pipelines.jobs.admission`): the replica's in-flight limit, learnt from its jobs' latency,
then the caller's per-user limit (``rate_limit.scan``, shared by every replica in Valkey; a
refusal stores nothing and does not count against the caller). An accepted job is stored with
``ScanRequested`` in one statement, announced (``queued``) and handed to the jobs this process
runs. Errors are :mod:`eco2.errors` types, translated to HTTP at the ingress:
:class:`~eco2.errors.InvalidInput` → 4xx, :class:`~eco2.errors.Overloaded` → 503 and its
:class:`~eco2.errors.RateLimited` → 429, both with ``Retry-After``.
"""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from eco2 import telemetry, url_guard
from eco2.errors import InvalidInput
from eco2.settings import Settings
from pipelines.jobs.admission import Admission, check_idempotency_key
from pipelines.jobs.progress import ProgressBus
from pipelines.jobs.tasks import JobTasks
from pipelines.scan import views
from pipelines.scan.machine import SUBMITTED, Job, Policy
from pipelines.scan.store import ScanStore

INTERNAL_CALLER = "internal"
"""The user of a synchronous classify sent without ``X-User-ID`` (an internal or batch caller,
never routed by the gateway): bounded by the in-flight limit only, not by a per-user one."""


class ScanRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    image_url: str = Field(min_length=1, max_length=url_guard.MAX_URL_LENGTH)
    user_input: str | None = None
    model: str | None = None


class ScanIntake:
    def __init__(
        self,
        settings: Settings,
        store: ScanStore,
        progress: ProgressBus,
        jobs: JobTasks[Job],
        policy: Policy,
        admission: Admission | None = None,
    ) -> None:
        """``admission``: the in-flight limit the jobs feed and the per-user limit on submits
        (``None``: the settings' ceiling and no per-user limit, for tests that need none)."""
        self._settings, self._store, self._progress = settings, store, progress
        self._jobs, self._policy = jobs, policy
        self._admission = admission or Admission.of("scan", settings.scan.admission)

    async def submit(
        self, user_id: str, body: ScanRequest, idempotency_key: str | None, traceparent: str | None
    ) -> dict[str, Any]:
        """``POST /api/v1/scan``: the 202 body; the same idempotency key returns the same job."""
        job, created = await self._accept(user_id, body, idempotency_key, traceparent)
        if created:
            self._progress.publish(
                str(job.job_id), job.user_id, views.progress_event(job, SUBMITTED)
            )
            self._jobs.start(job)
        return views.submitted(job)

    async def classify_inline(
        self, user_id: str, body: ScanRequest, traceparent: str | None
    ) -> dict[str, Any]:
        """``POST /v1/scan:classify``: run the whole job in this request, answer its result."""
        job, _ = await self._accept(user_id, body, None, traceparent)
        job = await self._jobs.run_inline(job)
        return views.final(job, self._policy.rules)

    async def reprocess(self, job_id: str | None) -> dict[str, Any]:
        key = uuid.UUID(job_id) if job_id else None
        jobs = await self._jobs.reprocess(key)
        return {"reprocessing": [str(j.job_id) for j in jobs]}

    async def _accept(
        self, user_id: str, body: ScanRequest, idempotency_key: str | None, traceparent: str | None
    ) -> tuple[Job, bool]:
        model = await self._validated(body)
        check_idempotency_key(idempotency_key)
        caller = None if user_id == INTERNAL_CALLER else user_id
        replayed = await self._admission.admit_or_replay(
            caller,
            self._jobs.inflight,
            idempotency_key,
            lambda key: self._store.by_key(user_id, key),
        )
        if replayed is not None:
            return replayed, False
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
