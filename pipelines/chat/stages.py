"""The chat pipeline's side of its AI stages: calls to TextStage (intent, the answer as a token
stream, summaries) and VisionStage (an attached image), with the shared retry policy."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Any

from pipelines.chat.machine import ChatJob
from pipelines.jobs.stage_calls import call_stage
from pipelines.jobs.tracing import current_or
from serve.contracts import ModelCallFailed
from serve.intent_cache import IntentCache


class ChatStages:
    """``text``/``vision``: handles for unary calls (Serve's gRPC transport); ``text_stream``:
    TextStage's handle for the streamed answer, which that transport does not carry (a
    streaming call over it fails with ``Unexpected error (StatusCode.OK)``)."""

    def __init__(
        self,
        text: Any,
        vision: Any,
        text_stream: Any,
        idle_timeout_s: float = 30.0,
        intents: IntentCache | None = None,
    ) -> None:
        self._text, self._vision, self._text_stream = text, vision, text_stream
        self._idle_timeout_s = idle_timeout_s
        self._intents = intents or IntentCache(None, 0)

    async def classify(self, job: ChatJob) -> tuple[dict[str, Any], float, bool]:
        """``(classification, model ms, from the cache)``: a message classified before is read
        from TextStage's cache here, without a call to the stage."""
        cached = await self._intents.get(job.message, job.model)
        if cached is not None:
            return cached, 0.0, True
        found: tuple[dict[str, Any], float, bool] = await call_stage(
            self._text.classify_intent,
            job_id=str(job.job_id),
            message=job.message,
            model=job.model,
            traceparent=current_or(job.traceparent),
        )
        return found

    async def see(self, job: ChatJob) -> tuple[dict[str, Any], float]:
        """What the attached image shows (VisionStage, as for a scan)."""
        seen: tuple[dict[str, Any], float] = await call_stage(
            self._vision.classify,
            job_id=f"{job.job_id}:chat",
            image_url=job.image_url,
            user_input=job.message,
            model=job.model,
            traceparent=current_or(job.traceparent),
        )
        return seen

    async def summarise(
        self, job: ChatJob, turns: Sequence[Mapping[str, str]], previous: str | None
    ) -> tuple[str, float]:
        summary: tuple[str, float] = await call_stage(
            self._text.summarise,
            job_id=str(job.job_id),
            turns=list(turns),
            previous=previous,
            model=job.model,
            traceparent=current_or(job.traceparent),
        )
        return summary

    async def answer(
        self,
        job: ChatJob,
        context: dict[str, Any],
        history: Sequence[Mapping[str, str]],
        summary: str | None,
    ) -> AsyncGenerator[str]:
        """The answer's deltas through a streaming handle. Not retried here: part of it may
        already be on its way to the user; a failure is the caller's to report. A stream that
        stays silent for ``idle_timeout_s`` counts as failed (a hung replica); one left before
        its end is cancelled at the replica."""
        stream = self._text_stream.options(stream=True).answer.remote(
            job_id=str(job.job_id),
            attempt=job.attempt,
            message=job.message,
            context=context,
            history=list(history),
            summary=summary,
            model=job.model,
            traceparent=current_or(job.traceparent),
        )
        deltas = stream.__aiter__()
        finished = False
        try:
            while True:
                try:
                    delta = await asyncio.wait_for(deltas.__anext__(), self._idle_timeout_s)
                except StopAsyncIteration:
                    finished = True
                    return
                yield delta
        except ModelCallFailed:
            raise
        except TimeoutError as exc:
            raise ModelCallFailed(
                f"answer stream silent for {self._idle_timeout_s:g} s", retriable=True, kind="text"
            ) from exc
        except Exception as exc:
            verdict = getattr(exc, "cause", None)
            if isinstance(verdict, ModelCallFailed):
                raise verdict from exc
            raise ModelCallFailed(
                f"answer stream broke off: {type(exc).__name__}: {exc}", retriable=True, kind="text"
            ) from exc
        finally:
            if not finished:  # silent, failed, or closed early by the caller
                stream.cancel()
