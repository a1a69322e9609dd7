"""The chat application on Ray Serve: a FastAPI ingress composed with TextStage and VisionStage by
``.bind()``, deployed beside scan under the route prefix ``/api/v1/chat`` (``ray-cluster.yaml``).

The ingress takes the commands that need a model: posting a message (``POST
/api/v1/chat/{chat_id}/messages``) and the reply to ``needs_input`` (``POST
/api/v1/chat/{job_id}/input``). The conversations are the chat domain's service; the job's
stream and result are the read side's (:mod:`pipelines.read_service`).

No ``from __future__ import annotations`` here: Serve rebuilds the ingress routes in the replica
and FastAPI must see real annotation objects there, not strings.
"""

from typing import Any

from fastapi import Header
from pydantic import BaseModel
from ray import serve
from ray.serve.handle import DeploymentHandle

from eco2 import telemetry
from eco2.http import error_responses, require_user
from eco2.settings import Settings, load_settings
from pipelines.chat.bootstrap import ChatPipeline, open_pipeline
from pipelines.chat.intake import InputRequest, MessageRequest
from pipelines.jobs.replica import ReplicaIngress, ReplicaPipeline, ingress_api
from pipelines.scan.stages import vision_catalog
from serve.stages import TextStage, VisionStage

api = ingress_api("Eco² chat API", example_body='{"message": "페트병은 어떻게 버려?"}')


class ChatAppArgs(BaseModel):
    """Arguments of :func:`build_app` (``serve run ... key=value`` or serveConfigV2 ``args``)."""

    ingress_max_ongoing_requests: int = 2000
    ingress_replicas: int = 1


@serve.deployment(
    name="ChatIngress",
    ray_actor_options={"num_cpus": 0.1},
    max_ongoing_requests=2000,
    max_queued_requests=1000,
    health_check_period_s=10,
)
@serve.ingress(api)
class ChatIngress(ReplicaIngress[ChatPipeline]):
    def __init__(
        self, text: DeploymentHandle[Any], vision: DeploymentHandle[Any], settings: Settings
    ) -> None:
        telemetry.configure("chat-ingress", settings.telemetry)
        # Unary stage calls over Serve's gRPC transport; the streamed answer needs a
        # by-reference handle (the gRPC transport does not stream). Said explicitly: where
        # RAY_SERVE_THROUGHPUT_OPTIMIZED is set, as on every node of ours, a handle is by value
        # unless told otherwise.
        self._replica = ReplicaPipeline(
            "chat",
            open_pipeline(
                settings,
                text.options(_by_reference=False),
                vision.options(_by_reference=False),
                text.options(_by_reference=True),
            ),
        )

    @api.post("/{chat_id}/messages", status_code=202, responses=error_responses(429))
    async def post_message(
        self,
        chat_id: str,
        body: MessageRequest,
        x_user_id: str | None = Header(default=None),
        x_idempotency_key: str | None = Header(default=None),
        traceparent: str | None = Header(default=None),
    ) -> dict[str, Any]:
        """Post a message: ``{job_id, stream_url, status: "submitted"}``; the answer streams
        on ``stream_url``."""
        pipeline = await self._replica.live()
        user = require_user(x_user_id)
        return await pipeline.intake.post(user, chat_id, body, x_idempotency_key, traceparent)

    @api.post("/{job_id}/input")
    async def input(
        self, job_id: str, body: InputRequest, x_user_id: str | None = Header(default=None)
    ) -> dict[str, Any]:
        """Reply to ``needs_input`` (a location, a confirmation, or cancel)."""
        pipeline = await self._replica.live()
        return await pipeline.intake.reply(require_user(x_user_id), job_id, body)

    @api.post("/-/reprocess", include_in_schema=False)
    async def admin_reprocess(self, job_id: str | None = None) -> dict[str, Any]:
        """Re-run failed chat jobs (one, or all) from their last committed step (Serve only)."""
        pipeline = await self._replica.live()
        return await pipeline.intake.reprocess(job_id)

    @api.get("/-/ready", include_in_schema=False)
    async def ready(self) -> dict[str, str]:
        """The replica's pipeline is wired (the launcher's probe; never routed by the gateway)."""
        return await self._replica.ready()


def build_app(args: dict[str, Any] | None = None) -> serve.Application:
    """The chat application graph: ingress → (TextStage, VisionStage)."""
    options = ChatAppArgs.model_validate(args or {})
    settings = load_settings()
    deployments: tuple[Any, Any, Any] = (TextStage, VisionStage, ChatIngress)
    text_stage, vision_stage, ingress = deployments
    app: serve.Application = ingress.options(
        max_ongoing_requests=options.ingress_max_ongoing_requests,
        num_replicas=options.ingress_replicas,
    ).bind(text_stage.bind(settings), vision_stage.bind(settings, vision_catalog()), settings)
    return app
