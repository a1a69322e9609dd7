"""The scan application on Ray Serve: a FastAPI ingress composed with the AI stages by ``.bind()``.

``build_app(args)`` is the one entry point for ``serve run pipelines.scan.app:build_app`` and for
a ``serveConfigV2`` import path. The ingress takes the commands that need a model — submit
(``POST /api/v1/scan``), the synchronous ``POST /v1/scan:classify`` and the admin reprocess —
and runs each job as a task of its own; job streams and result reads are served by the read
side (:mod:`pipelines.read_service`), outside Ray Serve. Everything a replica runs is wired in
one place, :func:`pipelines.scan.bootstrap.open_pipeline`.

No ``from __future__ import annotations`` here: Serve rebuilds the ingress routes in the replica
and FastAPI must see real annotation objects there, not strings.
"""

import uuid
from typing import Any

from fastapi import Header
from pydantic import BaseModel
from ray import serve
from ray.serve.handle import DeploymentHandle

from eco2 import telemetry
from eco2.http import error_responses, require_user
from eco2.settings import Settings, load_settings
from pipelines.jobs.replica import ReplicaIngress, ReplicaPipeline, ingress_api
from pipelines.rules.rulebook import load_rulebook
from pipelines.scan.bootstrap import ScanPipeline, open_pipeline
from pipelines.scan.intake import INTERNAL_CALLER, ScanRequest
from pipelines.scan.stages import rule_documents, vision_catalog
from serve.stages import AnswerStage, VisionStage

api = ingress_api("Eco² scan API", example_body='{"image_url": "https://..."}')


class ScanAppArgs(BaseModel):
    """Arguments of :func:`build_app` (``serve run ... key=value`` or serveConfigV2 ``args``)."""

    ingress_max_ongoing_requests: int = 3000
    ingress_replicas: int = 2
    """At 900 users one replica's event loop is the bottleneck (docs/benchmarks.md)."""


@serve.deployment(
    name="ScanIngress",
    ray_actor_options={"num_cpus": 0.1},
    max_ongoing_requests=3000,
    max_queued_requests=1000,
    health_check_period_s=10,
)
@serve.ingress(api)
class ScanIngress(ReplicaIngress[ScanPipeline]):
    def __init__(
        self, vision: DeploymentHandle[Any], answer: DeploymentHandle[Any], settings: Settings
    ) -> None:
        telemetry.configure("scan-ingress", settings.telemetry)
        # Stage calls go replica to replica over Serve's gRPC transport instead of as Ray actor
        # tasks (less CPU per call, docs/benchmarks.md). Set here, on the replica's running
        # loop, so it holds however the application was built.
        self._replica = ReplicaPipeline(
            "scan",
            open_pipeline(
                settings, vision.options(_by_reference=False), answer.options(_by_reference=False)
            ),
        )

    @api.post("/api/v1/scan", status_code=202, responses=error_responses(429))
    async def submit(
        self,
        body: ScanRequest,
        x_user_id: str | None = Header(default=None),
        x_idempotency_key: str | None = Header(default=None),
        traceparent: str | None = Header(default=None),
    ) -> dict[str, Any]:
        """Accept a scan: ``{job_id, stream_url, result_url, status: "queued"}``."""
        pipeline = await self._replica.live()
        user = require_user(x_user_id)
        return await pipeline.intake.submit(user, body, x_idempotency_key, traceparent)

    @api.post("/v1/scan:classify")
    async def classify(
        self,
        body: ScanRequest,
        x_user_id: str | None = Header(default=None),
        traceparent: str | None = Header(default=None),
    ) -> dict[str, Any]:
        """Synchronous inference for internal and batch callers: the full result inline."""
        pipeline = await self._replica.live()
        return await pipeline.intake.classify_inline(
            x_user_id or INTERNAL_CALLER, body, traceparent
        )

    @api.post("/api/v1/admin/scan/reprocess")
    async def admin_reprocess(self, job_id: uuid.UUID | None = None) -> dict[str, Any]:
        """Re-run failed jobs (one, or all) from their last committed stage; a ``job_id`` that
        is not a UUID is a 422."""
        pipeline = await self._replica.live()
        return await pipeline.intake.reprocess(str(job_id) if job_id else None)

    @api.get("/internal/scan/ready", include_in_schema=False)
    async def ready(self) -> dict[str, str]:
        """The replica's pipeline is wired (the launcher's probe; never routed by the gateway)."""
        return await self._replica.ready()


def build_app(args: dict[str, Any] | None = None) -> serve.Application:
    """The scan application graph: ingress → (VisionStage, AnswerStage)."""
    options = ScanAppArgs.model_validate(args or {})
    settings = load_settings()
    stages: tuple[Any, Any, Any] = (VisionStage, AnswerStage, ScanIngress)  # Serve's decorators
    vision_stage, answer_stage, ingress = stages
    vision = vision_stage.bind(settings, vision_catalog())
    answer = answer_stage.bind(settings, rule_documents(load_rulebook()))
    app: serve.Application = ingress.options(
        max_ongoing_requests=options.ingress_max_ongoing_requests,
        num_replicas=options.ingress_replicas,
    ).bind(vision, answer, settings)
    return app
