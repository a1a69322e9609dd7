"""The one model path: an async ``openai`` client with explicit timeouts and connection limits.

Nothing here knows whether ``base_url`` is OpenAI or the local simulator.

Delivery contract of :meth:`ModelClient.complete_json`:

* transient failures (429, 5xx, timeouts, connection errors) are retried by the SDK up to
  ``max_retries`` times with exponential backoff and jitter, honouring ``Retry-After``;
* output that does not parse gets exactly one repair attempt (the model is told what was wrong);
* anything still failing raises :class:`ModelCallFailed` whose ``retriable`` flag says whether a
  later attempt may pass (transient: yes; malformed twice or a 4xx: no).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, TypeVar

import httpx2
import openai
from openai import AsyncOpenAI

from eco2 import telemetry
from eco2.settings import ModelSettings
from serve.contracts import MalformedModelOutput, ModelCallFailed

T = TypeVar("T")
_log = telemetry.get_logger(__name__)

_TRANSIENT = (
    openai.RateLimitError,
    openai.InternalServerError,
    openai.APITimeoutError,
    openai.APIConnectionError,
)


class ModelClient:
    """One per process (per replica); holds one connection pool to the model endpoint."""

    def __init__(self, settings: ModelSettings, base_url: str) -> None:
        limits = httpx2.Limits(
            max_connections=settings.max_connections,
            max_keepalive_connections=settings.max_connections,
            keepalive_expiry=settings.keepalive_s,
        )
        timeout = openai.Timeout(settings.request_timeout_s, connect=settings.connect_timeout_s)
        self._client = AsyncOpenAI(
            base_url=base_url,
            api_key=settings.api_key.get_secret_value(),
            max_retries=settings.max_retries,
            timeout=timeout,
            # aiohttp transport: less CPU per call than the default (docs/benchmarks.md).
            http_client=openai.DefaultAioHttpClient(limits=limits, timeout=timeout),
        )
        self._tracer = telemetry.tracer(__name__)

    async def close(self) -> None:
        await self._client.close()

    async def ping(self) -> None:
        """Raise unless the model endpoint answers (``GET /models``; costs no tokens)."""
        try:
            await self._client.models.list(timeout=5.0)
        except openai.APIError as exc:
            raise ModelCallFailed(
                f"model endpoint unhealthy: {exc}", retriable=True, kind="ping"
            ) from exc

    async def complete_json(
        self,
        *,
        kind: str,
        model: str,
        messages: list[dict[str, Any]],
        response_format: dict[str, Any],
        parse: Callable[[str], T],
        call_key: str | None = None,
        traceparent: str | None = None,
    ) -> tuple[T, float]:
        """Call the model and parse its JSON answer; returns ``(result, elapsed_ms)``."""
        headers = {"x-eco2-call-key": call_key} if call_key else {}
        if traceparent:
            headers["traceparent"] = traceparent
        started = time.perf_counter()
        with self._tracer.start_as_current_span(
            f"model.{kind}", context=telemetry.extract(traceparent)
        ) as span:
            span.set_attribute("gen_ai.request.model", model)
            text = await self._create(kind, model, messages, response_format, headers)
            try:
                result = parse(text)
            except MalformedModelOutput as first:
                span.add_event("repair", {"error": str(first)[:200]})
                _log.warning("model output malformed, asking once more", kind=kind)
                repair = [*messages, {"role": "assistant", "content": text}, _repair_note(first)]
                text = await self._create(kind, model, repair, response_format, headers)
                try:
                    result = parse(text)
                except MalformedModelOutput as second:
                    raise ModelCallFailed(
                        f"{kind} model output malformed after one repair: {second}",
                        retriable=False,
                        kind=kind,
                    ) from second
        return result, (time.perf_counter() - started) * 1000

    async def _create(
        self,
        kind: str,
        model: str,
        messages: list[dict[str, Any]],
        response_format: dict[str, Any],
        headers: dict[str, str],
    ) -> str:
        try:
            # The SDK's documented route for a request built by hand: its retries, Retry-After,
            # timeouts, auth and typed errors all apply, but not the recursive "transform" of
            # the typed parameters, which walks the whole response schema on every call (the
            # profile is in docs/benchmarks.md), nor a typed ChatCompletion for the one string
            # we read.
            response = await self._client.post(
                "/chat/completions",
                cast_to=httpx2.Response,
                body={"model": model, "messages": messages, "response_format": response_format},
                options={"headers": headers},
            )
            body = json.loads(await response.aread())
        except _TRANSIENT as exc:
            raise ModelCallFailed(
                f"{kind} model call failed after retries: {type(exc).__name__}: {exc}",
                retriable=True,
                kind=kind,
            ) from exc
        except openai.APIError as exc:
            raise ModelCallFailed(
                f"{kind} model call refused: {type(exc).__name__}: {exc}",
                retriable=False,
                kind=kind,
            ) from exc
        except ValueError as exc:  # not JSON at all: the endpoint is not speaking the API
            raise ModelCallFailed(
                f"{kind} model endpoint sent a body that is not JSON: {exc}",
                retriable=True,
                kind=kind,
            ) from exc
        try:
            content = body["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError) as exc:
            raise ModelCallFailed(
                f"{kind} model answer has no choices[0].message: {str(body)[:200]}",
                retriable=False,
                kind=kind,
            ) from exc
        return content if isinstance(content, str) else ""


def _repair_note(error: Exception) -> dict[str, str]:
    return {
        "role": "user",
        "content": (
            "방금 답은 요청한 JSON 형식이 아니었습니다. 설명 없이 스키마에 맞는 JSON 하나만 "
            f"다시 답하세요. 문제: {str(error)[:300]}"
        ),
    }
