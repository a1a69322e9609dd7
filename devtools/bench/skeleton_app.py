"""The bare Ray Serve skeleton ``eco2 bench skeleton`` measures the pipeline against.

A FastAPI ingress calling two stage deployments through handles, each stage only sleeping for
its model latency: no database, no events, no model client, no sign-in. It is what
``../shared/docs/performance-notes.md`` calls the skeleton's ceiling on these machines, rebuilt
here so the same sitting can measure it beside the project (issue 18 asks for that comparison
to stay valid). It answers the same synchronous call as the scan pipeline
(``POST /v1/scan:classify``), so the load generator drives both the same way.

Not shipped: it lives with the benchmarks and is deployed only by the bench, on a Ray head of
its own. No ``from __future__ import annotations``: Serve rebuilds the routes in the replica.
"""

import asyncio
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel
from ray import serve
from ray.serve.handle import DeploymentHandle

api = FastAPI(title="Serve skeleton (benchmark only)")


class SkeletonArgs(BaseModel):
    """``build_app``'s arguments: the stages' sleeps (the original's model latencies by
    default) and how many requests each replica takes at once."""

    vision_s: float = 4.5
    answer_s: float = 6.7
    max_ongoing_requests: int = 2000


@serve.deployment(ray_actor_options={"num_cpus": 0.1})
class SleepStage:
    def __init__(self, seconds: float) -> None:
        self._seconds = seconds

    async def __call__(self, key: str) -> dict[str, str]:
        await asyncio.sleep(self._seconds)
        return {"key": key}


@serve.deployment(ray_actor_options={"num_cpus": 0.1})
@serve.ingress(api)
class SkeletonIngress:
    def __init__(self, vision: DeploymentHandle[Any], answer: DeploymentHandle[Any]) -> None:
        self._vision, self._answer = vision, answer

    @api.post("/v1/scan:classify")
    async def classify(self, body: dict[str, Any]) -> dict[str, Any]:
        key = str(body.get("image_url", ""))
        vision = await self._vision.remote(key)
        answer = await self._answer.remote(key)
        return {"vision": vision, "answer": answer}


def build_app(args: dict[str, Any] | None = None) -> serve.Application:
    options = SkeletonArgs.model_validate(args or {})
    deployments: tuple[Any, Any] = (SleepStage, SkeletonIngress)  # Serve's decorators
    stage, ingress = deployments
    limit = {"max_ongoing_requests": options.max_ongoing_requests}
    vision = stage.options(name="SkeletonVision", **limit).bind(options.vision_s)
    answer = stage.options(name="SkeletonAnswer", **limit).bind(options.answer_s)
    app: serve.Application = ingress.options(**limit).bind(vision, answer)
    return app
