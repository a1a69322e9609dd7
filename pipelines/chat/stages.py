"""The chat pipeline's side of its AI stages: calls to TextStage (intent, the answer as a token
stream, summaries) and VisionStage (an attached image), with the shared retry policy."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Any

from eco2.telemetry import get_logger
from pipelines.chat.machine import ChatJob
from pipelines.jobs.stage_calls import call_stage
from pipelines.jobs.tracing import current_or
from serve.contracts import ModelCallFailed
from serve.intent_cache import IntentCache

_log = get_logger(__name__)
ANSWER_RETRY_PAUSE_S = 0.5
"""The pause before a failed answer stream is opened again, times the attempt."""


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
        answer_attempts: int = 3,
    ) -> None:
        self._text, self._vision, self._text_stream = text, vision, text_stream
        self._idle_timeout_s, self._answer_attempts = idle_timeout_s, answer_attempts
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
        """The answer's deltas through a streaming handle. A stream that fails before its first
        delta (refused, broken, or silent for ``idle_timeout_s``: a hung call) is opened again,
        up to ``answer_attempts`` times in all: nothing of it reached the user yet. After the
        first delta a failure is the caller's to report, since part of the answer is on its way."""
        request = {
            "job_id": str(job.job_id),
            "attempt": job.attempt,
            "message": job.message,
            "context": context,
            "history": list(history),
            "summary": summary,
            "model": job.model,
            "traceparent": current_or(job.traceparent),
        }
        attempt = 1
        while True:
            started = False
            try:
                async for delta in self._streamed(request):
                    started = True
                    yield delta
                return
            except ModelCallFailed as failed:
                if started or not failed.retriable or attempt >= self._answer_attempts:
                    raise
                _log.warning(
                    "chat answer failed before its first token; opening it again",
                    job_id=str(job.job_id),
                    attempt=attempt,
                    reason=str(failed),
                )
            await asyncio.sleep(ANSWER_RETRY_PAUSE_S * attempt)
            attempt += 1

    async def _streamed(self, request: dict[str, Any]) -> AsyncGenerator[str]:
        """One streamed answer to TextStage's ``answer(**request)``; a stream left before its
        end is cancelled at the replica."""
        stream = self._text_stream.options(stream=True).answer.remote(**request)
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
