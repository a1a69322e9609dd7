"""Ray Serve deployments of the AI stages: thin shells around the Ray-free stage logic.

Sizing (2-core machines, model calls are I/O-bound): a replica's share of an AI node is one unit
of the ``ai_worker`` custom resource and no CPU. AI nodes offer a few units sized to their cores
and no CPU to anything else, so the stages land only there and, when replicas pend for want of
units, the cluster autoscaler adds an AI node. One replica holds thousands of concurrent model
calls, so autoscaling targets many ongoing requests per replica. ``max_queued_requests`` bounds
what callers may queue: beyond it Serve refuses at once instead of queueing without bound.

What a stage may answer (the vision catalog, the rule documents) is handed in by the composing
pipeline when the application is built; nothing here imports a pipeline.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from ray import serve

from eco2 import cache as valkey
from eco2 import telemetry
from eco2.safe_fetch import ImageFetcher
from eco2.settings import Settings
from serve import answer, text
from serve.contracts import ModelCallFailed, VisionResult
from serve.intent_cache import IntentCache
from serve.lifecycle import ClosedOnStop
from serve.model_client import ModelClient
from serve.vision import ImageGate, VisionCatalog, VisionTask, response_format

_log = telemetry.get_logger(__name__)

STAGE_OPTIONS: dict[str, Any] = {
    "ray_actor_options": {"num_cpus": 0, "resources": {"ai_worker": 1}},
    "autoscaling_config": {
        "min_replicas": 1,
        "max_replicas": 4,
        "target_ongoing_requests": 400,
        # Serve averages the ongoing requests over the look-back window (30 s by default, with
        # metrics every 10 s): a surge then took half a minute to show, and an average over any
        # window lags a surge by half the window. A stage's requests are model calls lasting
        # seconds, so its count of ongoing requests moves slowly and has no blips to smooth:
        # the window's peak, held for a second, is the signal. Scaling down still waits a
        # minute past the window, so the count cannot flap. (Serve marks metrics_interval_s
        # deprecated in favour of environment variables it does not read yet.)
        "look_back_period_s": 5,
        "aggregation_function": "max",
        "metrics_interval_s": 1,
        "upscale_delay_s": 1,
        "downscale_delay_s": 60,
    },
    "max_ongoing_requests": 2000,
    "max_queued_requests": 4000,
    "health_check_period_s": 10,
    "health_check_timeout_s": 10,
    # A stage call has no HTTP request of its own to log (the caller logs and traces it); one
    # access-log line per call was a visible share of a stage replica's CPU.
    "logging_config": {"enable_access_log": False},
}


class _ModelStage(ClosedOnStop):
    kind = "stage"

    def __init__(self, settings: Settings) -> None:
        telemetry.configure(f"stage-{self.kind}", settings.telemetry)
        if settings.model.base_url is None:
            raise RuntimeError("ECO2_MODEL__BASE_URL is unset: start the stack with `eco2 up`")
        self._client = ModelClient(settings.model, settings.model.base_url)

    async def check_health(self) -> None:
        """The model endpoint answers (``GET /models``, no tokens spent)."""
        await self._client.ping()

    async def aclose(self) -> None:
        """Serve stops the replica: its connections are closed, not left to the collector."""
        await self._client.close()


@serve.deployment(name="VisionStage", **STAGE_OPTIONS)
class VisionStage(_ModelStage):
    kind = "vision"

    def __init__(self, settings: Settings, catalog: VisionCatalog) -> None:
        super().__init__(settings)
        self._task = VisionTask(catalog)
        # Our CDN's URLs go to the model as they are; any other image is fetched here through
        # the guard and inlined (serve.vision.ImageGate). The pool opens on the first fetch.
        self._fetcher = ImageFetcher(limits=settings.scan.image_fetch)
        self._images = ImageGate(settings.scan.allowed_image_hosts, self._fetcher.data_url)

    async def classify(
        self,
        *,
        job_id: str,
        image_url: str,
        user_input: str | None,
        model: str,
        traceparent: str | None,
    ) -> tuple[dict[str, Any], float]:
        """Raises :class:`ModelCallFailed` (``kind="image"``) before any model call when the
        image is refused at fetch time (not retriable) or its fetch failed for now (retriable:
        timeouts, 5xx); see :class:`~serve.vision.ImageGate`."""
        try:
            image = await self._images.for_model(image_url)
        except ModelCallFailed as exc:
            _log.warning("image refused", job_id=job_id, reason=str(exc), retriable=exc.retriable)
            raise
        result, elapsed_ms = await self._client.complete_json(
            kind="vision",
            model=model,
            messages=self._task.messages(image, user_input),
            response_format=response_format(),
            parse=lambda text: self._task.parse(text, user_input),
            call_key=f"{job_id}:vision",
            traceparent=traceparent,
        )
        return result.model_dump(mode="json"), elapsed_ms

    async def aclose(self) -> None:
        await self._fetcher.close()
        await super().aclose()


@serve.deployment(name="AnswerStage", **STAGE_OPTIONS)
class AnswerStage(_ModelStage):
    kind = "answer"

    def __init__(self, settings: Settings, rules: Mapping[str, Mapping[str, Any]]) -> None:
        super().__init__(settings)
        self._rules = dict(rules)

    async def write(
        self,
        *,
        job_id: str,
        vision_result: dict[str, Any],
        rule_id: str,
        model: str,
        traceparent: str | None,
    ) -> tuple[dict[str, Any], float]:
        rule = self._rules.get(rule_id)
        if rule is None:
            raise ModelCallFailed(
                f"no disposal rule {rule_id!r} was given to this stage",
                retriable=False,
                kind="answer",
            )
        result, elapsed_ms = await self._client.complete_json(
            kind="answer",
            model=model,
            messages=answer.build_messages(VisionResult.model_validate(vision_result), rule),
            response_format=answer.response_format(),
            parse=answer.parse,
            call_key=f"{job_id}:answer",
            traceparent=traceparent,
        )
        return result.model_dump(mode="json"), elapsed_ms


@serve.deployment(name="TextStage", **STAGE_OPTIONS)
class TextStage(_ModelStage):
    """Chat's text model: intent classification (cached by normalised message), the answer as
    a token stream (consume with ``handle.options(stream=True)``), summaries of old turns."""

    kind = "text"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self._flush_s = settings.chat.token_flush_ms / 1000
        client = None
        if settings.cache.url and settings.chat.intent_cache_s:
            client = valkey.connect(settings.cache.url, max_connections=16, wait_s=1)
        self._cache = IntentCache(client, settings.chat.intent_cache_s)

    async def classify_intent(
        self, *, job_id: str, message: str, model: str, traceparent: str | None
    ) -> tuple[dict[str, Any], float, bool]:
        """``(classification, model ms, from the cache)``."""
        cached = await self._cache.get(message, model)
        if cached is not None:
            return cached, 0.0, True
        result, elapsed_ms = await self._client.complete_json(
            kind="intent",
            model=model,
            messages=text.intent_messages(message),
            response_format=text.intent_format(),
            parse=text.parse_intent,
            call_key=f"{job_id}:intent",
            traceparent=traceparent,
        )
        classification = result.model_dump(mode="json")
        await self._cache.put(message, model, classification)
        return classification, elapsed_ms, False

    async def answer(
        self,
        *,
        job_id: str,
        attempt: int,
        message: str,
        context: dict[str, Any],
        history: Sequence[Mapping[str, str]],
        summary: str | None,
        model: str,
        traceparent: str | None,
    ) -> AsyncIterator[str]:
        """The answer's text as the model writes it, in chunks (``chat.token_flush_ms``)."""
        messages = text.answer_messages(message, context, history, summary)
        deltas = self._client.stream_text(
            kind="text",
            model=model,
            messages=messages,
            call_key=f"{job_id}:answer:{attempt}",
            traceparent=traceparent,
        )
        async for chunk in text.coalesce(deltas, self._flush_s):
            yield chunk

    async def summarise(
        self,
        *,
        job_id: str,
        turns: Sequence[Mapping[str, str]],
        previous: str | None,
        model: str,
        traceparent: str | None,
    ) -> tuple[str, float]:
        summary, elapsed_ms = await self._client.complete_text(
            kind="summary",
            model=model,
            messages=text.summary_messages(turns, previous),
            call_key=f"{job_id}:summary",
            traceparent=traceparent,
        )
        return summary.strip(), elapsed_ms
