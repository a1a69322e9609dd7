"""The scan application: a FastAPI ingress deployment composed with the AI stages by ``.bind()``.

``build_app(args)`` is the one entry point for ``serve run pipelines.scan.app:build_app`` and for
a ``serveConfigV2`` import path. The ingress accepts and stores jobs, runs each job's stages as a
task of its own through the stage handles (:class:`~pipelines.scan.runner.ScanRunner`), renews
the leases of the jobs it runs and resumes jobs whose runner died.

No ``from __future__ import annotations`` here: Serve rebuilds the ingress routes in the replica
and FastAPI must see real annotation objects there, not strings.
"""

import asyncio
import contextlib
import functools
import os
import uuid
from typing import Any

from fastapi import FastAPI, Header, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel
from ray import serve
from ray.serve.handle import DeploymentHandle

from eco2 import cache as valkey
from eco2 import telemetry
from eco2.db import create_pool
from eco2.http import install_error_handlers, require_user
from eco2.settings import Settings, load_settings
from pipelines.rules.rulebook import load_rulebook
from pipelines.scan import views
from pipelines.scan.api import ScanRequest, ScanService
from pipelines.scan.contracts import AnswerResult, JobStatus, ModelCallFailed, VisionResult
from pipelines.scan.progress import ProgressBus
from pipelines.scan.runner import RunnerConfig, ScanRunner
from pipelines.scan.store import Job, ScanStore
from serve.stages import AnswerStage, VisionStage

_log = telemetry.get_logger(__name__)
_HANDLE_ATTEMPTS = 3
_SSE_HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}

# FastAPI's own request metrics and exception logs duplicate Serve's request metrics and our
# JSON logs; its telemetry layer as a whole was ~5 % of an ingress replica's samples (py-spy,
# not measured per part). Its request spans stay on.
api = FastAPI(title="Eco² scan API", version="1", telemetry={"metrics": False, "logs": False})
install_error_handlers(api, example_body='{"image_url": "https://..."}')


class ScanAppArgs(BaseModel):
    """Arguments of :func:`build_app` (``serve run ... key=value`` or serveConfigV2 ``args``)."""

    ingress_max_ongoing_requests: int = 3000
    ingress_replicas: int = 2
    """At 900 users one replica's event loop is the bottleneck (2,151 vs 2,845 scans/min measured
    back to back, docs/benchmarks.md); at light load one replica would cost a little less CPU."""


@serve.deployment(
    name="ScanIngress",
    ray_actor_options={"num_cpus": 0.1},
    max_ongoing_requests=3000,
    max_queued_requests=1000,
    health_check_period_s=10,
)
@serve.ingress(api)
class ScanIngress:
    def __init__(
        self, vision: DeploymentHandle[Any], answer: DeploymentHandle[Any], settings: Settings
    ) -> None:
        telemetry.configure("scan-ingress", settings.telemetry)
        self._settings = settings
        self._vision = vision
        self._answer = answer
        self._owner = f"ingress-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self._rules = load_rulebook()
        self._tasks: dict[uuid.UUID, asyncio.Task[Job]] = {}
        self._ready = asyncio.Event()
        self._maintenance = asyncio.get_event_loop().create_task(self._start())
        self.service: ScanService | None = None

    async def _start(self) -> None:
        # Stage calls go replica to replica over Serve's gRPC transport instead of as Ray actor
        # tasks: 1.1 vs 2.8 CPU-ms per call, caller and stage together (measured,
        # docs/benchmarks.md). Set here, on the replica's running loop, so it holds however the
        # application was built (``eco2 up``, ``serve run`` or a serveConfigV2 import path).
        self._vision = self._vision.options(_by_reference=False)
        self._answer = self._answer.options(_by_reference=False)
        self._pool = pool = await create_pool(self._settings, "scan", min_size=2, max_size=20)
        assert self._settings.cache.url is not None, "ECO2_CACHE__URL is unset"
        # A blocking pool: a burst of new SSE streams waits a moment for a connection instead
        # of failing with "Too many connections" (seen at 900 users).
        redis_client = valkey.connect(self._settings.cache.url, wait_s=10)
        self._store = ScanStore(pool, owner=self._owner, lease_s=self._settings.scan.lease_s)
        self._bus = ProgressBus(redis_client)
        self._runner = ScanRunner(
            self._store,
            self._classify,
            self._write_answer,
            self._bus,
            self._rules,
            self._result_view,
            RunnerConfig(reward_enabled=self._settings.scan.reward_enabled),
        )
        self.service = ScanService(self._settings, self._store, self._bus, self._rules, self)
        self._ready.set()
        await self._maintain()

    def _result_view(self, job: Job) -> dict[str, Any]:
        return views.result(job, self._rules)

    def start_job(self, job: Job) -> None:
        """Run ``job`` in the background unless this replica already runs it."""
        if job.job_id not in self._tasks and job.status in (JobStatus.QUEUED, JobStatus.RUNNING):
            task = asyncio.create_task(self._runner.run(job), name=f"scan-{job.job_id}")
            self._tasks[job.job_id] = task
            task.add_done_callback(functools.partial(self._forget, job.job_id))

    def _forget(self, job_id: uuid.UUID, _task: asyncio.Task[Job]) -> None:
        self._tasks.pop(job_id, None)

    @property
    def inflight(self) -> int:
        return len(self._tasks)

    async def run_inline(self, job: Job) -> Job:
        return await self._runner.run(job)

    async def reprocess(self, job_id: uuid.UUID | None) -> list[Job]:
        jobs = await self._store.reclaim_failed(job_id)
        for job in jobs:
            self.start_job(job)
        return jobs

    async def _maintain(self) -> None:
        """Renew leases of running jobs and resume jobs whose runner died, forever."""
        every = self._settings.scan.reconcile_every_s
        while True:
            try:
                await self._store.renew_leases(list(self._tasks))
                for job in await self._store.claim_expired():
                    _log.info("resuming scan after lease expiry", job_id=str(job.job_id))
                    self.start_job(job)
            except Exception as exc:
                _log.warning("scan maintenance failed; retrying", error=str(exc))
            await asyncio.sleep(every)

    async def _call_stage(self, method: Any, **kwargs: Any) -> tuple[dict[str, Any], float]:
        for attempt in range(1, _HANDLE_ATTEMPTS + 1):
            try:
                result: tuple[dict[str, Any], float] = await method.remote(**kwargs)
                return result
            except Exception as exc:
                # A stage's own verdict arrives wrapped in Ray's task error: pass it on as is,
                # so a non-retriable failure is never retried here.
                verdict = exc if isinstance(exc, ModelCallFailed) else getattr(exc, "cause", None)
                if isinstance(verdict, ModelCallFailed):
                    raise verdict from exc
                # Otherwise the replica died or was unreachable: nothing was committed, try again.
                if attempt == _HANDLE_ATTEMPTS:
                    raise ModelCallFailed(
                        f"stage unreachable: {exc}", retriable=True, kind="handle"
                    ) from exc
                _log.warning("stage call failed; retrying", attempt=attempt, error=str(exc))
                await asyncio.sleep(0.5 * attempt)
        raise AssertionError("unreachable")

    async def _classify(self, job: Job) -> tuple[VisionResult, float]:
        raw, elapsed = await self._call_stage(
            self._vision.classify,
            job_id=str(job.job_id),
            image_url=job.image_url,
            user_input=job.user_input,
            model=job.model,
            traceparent=job.traceparent,
        )
        return VisionResult.model_validate(raw), elapsed

    async def _write_answer(
        self, job: Job, vision: VisionResult, rule_id: str
    ) -> tuple[AnswerResult, float]:
        raw, elapsed = await self._call_stage(
            self._answer.write,
            job_id=str(job.job_id),
            vision_result=vision.model_dump(mode="json"),
            rule_id=rule_id,
            model=job.model,
            traceparent=job.traceparent,
        )
        return AnswerResult.model_validate(raw), elapsed

    async def _service(self) -> ScanService:
        await self._ready.wait()
        assert self.service is not None
        return self.service

    @api.post("/api/v1/scan", status_code=202)
    async def submit(
        self,
        body: ScanRequest,
        x_user_id: str | None = Header(default=None),
        x_idempotency_key: str | None = Header(default=None),
        traceparent: str | None = Header(default=None),
    ) -> dict[str, Any]:
        service = await self._service()
        return await service.submit(require_user(x_user_id), body, x_idempotency_key, traceparent)

    @api.get("/api/v1/scan/categories")
    async def categories(self) -> list[dict[str, Any]]:
        return views.CATEGORIES

    @api.get("/api/v1/scan/{job_id}/result")
    async def result(
        self, job_id: str, x_user_id: str | None = Header(default=None)
    ) -> JSONResponse:
        service = await self._service()
        status, body = await service.result(require_user(x_user_id), job_id)
        headers = {"Retry-After": "2"} if status == 202 else None
        return JSONResponse(body, status_code=status, headers=headers)

    @api.get("/api/v1/scan/{job_id}/events")
    async def events(
        self,
        job_id: str,
        request: Request,
        x_user_id: str | None = Header(default=None),
        last_event_id: str | None = Header(default=None),
    ) -> StreamingResponse:
        service = await self._service()
        resume = last_event_id or request.query_params.get("lastEventId")
        stream = await service.open_events(require_user(x_user_id), job_id, resume)
        # The stream is SSE-encoded at the source (keep-alive comments included), so a plain
        # streaming response carries it: sse-starlette's ping task, send timeouts and
        # disconnect watcher cost ~5 % of an ingress replica at 900 users (py-spy).
        return StreamingResponse(stream, media_type="text/event-stream", headers=_SSE_HEADERS)

    @api.post("/v1/scan:classify")
    async def classify(
        self,
        body: ScanRequest,
        x_user_id: str | None = Header(default=None),
        traceparent: str | None = Header(default=None),
    ) -> dict[str, Any]:
        """Synchronous inference for internal and batch callers: the full result inline."""
        service = await self._service()
        return await service.classify_inline(x_user_id or "internal", body, traceparent)

    @api.post("/api/v1/admin/scan/reprocess")
    async def admin_reprocess(self, job_id: str | None = None) -> dict[str, Any]:
        """Re-run failed jobs (one, or all) from their last committed stage."""
        service = await self._service()
        return await service.reprocess(job_id)

    async def check_health(self) -> None:
        if self._maintenance.done():
            raise RuntimeError(f"scan maintenance stopped: {self._maintenance.exception()!r}")
        await asyncio.wait_for(self._ready.wait(), timeout=30)
        await self._store.get(uuid.UUID(int=0))

    async def __del__(self) -> None:
        """Replica shutdown: stop maintenance, flush nothing more, close the pool and Valkey."""
        self._maintenance.cancel()
        with contextlib.suppress(BaseException):
            await self._maintenance
        if self._ready.is_set():
            await self._bus.close()
            await self._pool.close()


def build_app(args: dict[str, Any] | None = None) -> serve.Application:
    """The scan application graph: ingress → (VisionStage, AnswerStage)."""
    options = ScanAppArgs.model_validate(args or {})
    settings = load_settings()
    ingress: Any = ScanIngress
    stages: tuple[Any, Any] = (VisionStage, AnswerStage)
    app: serve.Application = ingress.options(
        max_ongoing_requests=options.ingress_max_ongoing_requests,
        num_replicas=options.ingress_replicas,
    ).bind(stages[0].bind(settings), stages[1].bind(settings), settings)
    return app
