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

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import httpx2
import openai
from openai import AsyncOpenAI
from openai.types import Batch
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind

from eco2 import telemetry
from eco2.settings import ModelSettings
from serve import metrics
from serve.contracts import MalformedModelOutput, ModelCallFailed

T = TypeVar("T")
_log = telemetry.get_logger(__name__)

_TRANSIENT = (
    openai.RateLimitError,
    openai.InternalServerError,
    openai.APITimeoutError,
    openai.APIConnectionError,
)


_STREAMED: Final = {"stream": True, "stream_options": {"include_usage": True}}
BATCH_ENDPOINT: Final = "/v1/chat/completions"
BATCH_TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})
BATCH_POLL_FIRST_S = 0.05
BATCH_POLL_MAX_S = 30.0


@dataclass(frozen=True)
class BatchCall:
    """One chat completion of a Batch API job; ``custom_id`` names its answer line."""

    custom_id: str
    model: str
    messages: list[dict[str, Any]]
    response_format: dict[str, Any] | None = None


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
        await metrics.close_tallies()

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
        """Call the model and parse its JSON answer; returns ``(result, elapsed_ms)``. An answer
        ``parse`` rejects is sent back once with the error for repair."""
        return await self._complete(
            kind,
            model,
            messages,
            response_format,
            parse,
            _headers(call_key, traceparent),
            traceparent,
        )

    async def complete_text(
        self,
        *,
        kind: str,
        model: str,
        messages: list[dict[str, Any]],
        call_key: str | None = None,
        traceparent: str | None = None,
    ) -> tuple[str, float]:
        """A plain-text answer (no schema); returns ``(text, elapsed_ms)``."""
        return await self._complete(
            kind, model, messages, None, str, _headers(call_key, traceparent), traceparent
        )

    async def _complete(
        self,
        kind: str,
        model: str,
        messages: list[dict[str, Any]],
        response_format: dict[str, Any] | None,
        parse: Callable[[str], T],
        headers: dict[str, str],
        traceparent: str | None,
    ) -> tuple[T, float]:
        started = time.perf_counter()
        outcome = "failed"
        try:
            with self._span(kind, model, traceparent) as span:
                result, outcome = await self._parsed(
                    kind, model, messages, response_format, parse, headers, span
                )
        finally:
            elapsed = time.perf_counter() - started
            metrics.model_calls.inc(1, tags={"kind": kind, "model": model, "outcome": outcome})
            metrics.model_seconds.observe(elapsed, tags={"kind": kind})
        return result, elapsed * 1000

    async def _parsed(
        self,
        kind: str,
        model: str,
        messages: list[dict[str, Any]],
        response_format: dict[str, Any] | None,
        parse: Callable[[str], T],
        headers: dict[str, str],
        span: Span,
    ) -> tuple[T, str]:
        """The parsed answer and how it came: ``ok``, or ``repaired`` after one repair."""
        text = await self._create(kind, model, messages, response_format, headers)
        try:
            return parse(text), "ok"
        except MalformedModelOutput as first:
            span.add_event("repair", {"error": str(first)[:200]})
            _log.warning("model output malformed, asking once more", kind=kind)
            repair = [*messages, {"role": "assistant", "content": text}, _repair_note(first)]
            text = await self._create(kind, model, repair, response_format, headers)
            try:
                return parse(text), "repaired"
            except MalformedModelOutput as second:
                raise ModelCallFailed(
                    f"{kind} model output malformed after one repair: {second}",
                    retriable=False,
                    kind=kind,
                ) from second

    @contextlib.contextmanager
    def _span(self, kind: str, model: str, traceparent: str | None) -> Iterator[Span]:
        with self._tracer.start_as_current_span(
            f"model.{kind}",
            context=telemetry.extract(traceparent),
            kind=SpanKind.CLIENT,
            attributes={
                # OpenTelemetry's GenAI conventions, and OpenInference's kind for Phoenix.
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": model,
                "openinference.span.kind": "LLM",
                "llm.model_name": model,
                "eco2.call_kind": kind,
            },
        ) as span:
            yield span

    async def stream_text(
        self,
        *,
        kind: str,
        model: str,
        messages: list[dict[str, Any]],
        call_key: str | None = None,
        traceparent: str | None = None,
    ) -> AsyncIterator[str]:
        """The answer's text as it is generated (streamed through the SDK), delta by delta.

        Opening the stream is retried by the SDK like any call (429, 5xx, timeouts); a failure
        after it opened raises :class:`ModelCallFailed` (``retriable``): the caller has already
        passed part of the answer on and decides what to do with it."""
        headers = _headers(call_key, traceparent)
        with self._span(kind, model, traceparent):
            try:
                # The hand-built route as in _create, streamed: the SDK's SSE decoding, errors and
                # retries of the opening call, chunks as plain JSON objects rather than typed
                # models (the profile is in docs/benchmarks.md).
                stream = await self._client.post(
                    "/chat/completions",
                    cast_to=object,
                    body={**_request_body(model, messages, None), **_STREAMED},
                    options={"headers": headers},
                    stream=True,
                    stream_cls=openai.AsyncStream[object],
                )
            except _TRANSIENT as exc:
                raise _failed(kind, exc, retriable=True) from exc
            except openai.APIError as exc:
                raise _failed(kind, exc, retriable=False) from exc
            try:
                async for chunk in stream:
                    delta = _delta(chunk)
                    if delta:
                        yield delta
                    else:
                        _record_usage(kind, chunk)  # the last chunk: no choices, the usage
            except Exception as exc:
                raise ModelCallFailed(
                    f"{kind} model stream broke off: {type(exc).__name__}: {exc}",
                    retriable=True,
                    kind=kind,
                ) from exc
            finally:
                await stream.close()

    async def _create(
        self,
        kind: str,
        model: str,
        messages: list[dict[str, Any]],
        response_format: dict[str, Any] | None,
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
                body=_request_body(model, messages, response_format),
                options={"headers": headers},
            )
            body = json.loads(await response.aread())
            _record_usage(kind, body)
        except _TRANSIENT as exc:
            raise _failed(kind, exc, retriable=True) from exc
        except openai.APIError as exc:
            raise _failed(kind, exc, retriable=False) from exc
        except ValueError as exc:  # not JSON at all: the endpoint is not speaking the API
            raise ModelCallFailed(
                f"{kind} model endpoint sent a body that is not JSON: {exc}",
                retriable=True,
                kind=kind,
            ) from exc
        return _content(kind, body)

    async def complete_batch(
        self, *, kind: str, calls: list[BatchCall], timeout_s: float = 24 * 3600.0
    ) -> dict[str, str | ModelCallFailed]:
        """``calls`` as one Batch API job (``/v1/files`` + ``/v1/batches``): each call's answer
        text, or the :class:`ModelCallFailed` of its line, by ``custom_id``. The job is polled
        with a growing interval (a simulator's batch is done in milliseconds, OpenAI's within
        its 24 h window); its files are deleted afterwards. Raises :class:`ModelCallFailed`
        when the batch as a whole cannot be sent or does not finish within ``timeout_s``."""
        lines = (
            json.dumps(
                {
                    "custom_id": call.custom_id,
                    "method": "POST",
                    "url": BATCH_ENDPOINT,
                    "body": _request_body(call.model, call.messages, call.response_format),
                },
                ensure_ascii=False,
            )
            for call in calls
        )
        payload = "\n".join(lines).encode()
        files: list[str] = []
        with self._span(f"{kind}.batch", calls[0].model if calls else "", None) as span:
            span.set_attribute("eco2.batch.size", len(calls))
            try:
                upload = await self._client.files.create(
                    file=(f"{kind}.jsonl", payload, "application/jsonl"), purpose="batch"
                )
                files.append(upload.id)
                batch = await self._client.batches.create(
                    input_file_id=upload.id,
                    endpoint=BATCH_ENDPOINT,
                    completion_window="24h",
                    metadata={"kind": kind},
                )
                batch = await self._wait(batch, timeout_s)
                files += [f for f in (batch.output_file_id, batch.error_file_id) if f]
                results = {
                    **await self._batch_lines(kind, batch.error_file_id),
                    **await self._batch_lines(kind, batch.output_file_id),
                }
            except _TRANSIENT as exc:
                raise _failed(kind, exc, retriable=True) from exc
            except openai.APIError as exc:
                raise _failed(kind, exc, retriable=False) from exc
            finally:
                for file_id in files:
                    with contextlib.suppress(openai.APIError):
                        await self._client.files.delete(file_id)
        unanswered = ModelCallFailed(
            f"{kind} batch {batch.id} ended {batch.status} without this line",
            retriable=True,
            kind=kind,
        )
        return {call.custom_id: results.get(call.custom_id, unanswered) for call in calls}

    async def _wait(self, batch: Batch, timeout_s: float) -> Batch:
        deadline, interval = time.monotonic() + timeout_s, BATCH_POLL_FIRST_S
        while batch.status not in BATCH_TERMINAL:
            if time.monotonic() > deadline:
                raise ModelCallFailed(
                    f"batch {batch.id} still {batch.status} after {timeout_s:g} s",
                    retriable=True,
                    kind="batch",
                )
            await asyncio.sleep(interval)
            interval = min(interval * 2, BATCH_POLL_MAX_S)
            batch = await self._client.batches.retrieve(batch.id)
        return batch

    async def _batch_lines(
        self, kind: str, file_id: str | None
    ) -> dict[str, str | ModelCallFailed]:
        """A batch's output or error file: each line's answer text or failure by custom_id."""
        if file_id is None:
            return {}
        content = await self._client.files.content(file_id)
        results: dict[str, str | ModelCallFailed] = {}
        for raw in content.text.splitlines():
            if not raw.strip():
                continue
            line = json.loads(raw)
            response, error = line.get("response") or {}, line.get("error")
            status = response.get("status_code")
            if status == 200:
                try:
                    results[line["custom_id"]] = _content(kind, response.get("body"))
                except ModelCallFailed as exc:
                    results[line["custom_id"]] = exc
                continue
            detail = error or (response.get("body") or {}).get("error") or {}
            results[line["custom_id"]] = ModelCallFailed(
                f"{kind} batch line failed ({status or detail.get('code')}): "
                f"{detail.get('message', '')}",
                # Throttled, server-side or expired lines may pass later; a 4xx will not.
                retriable=status is None or status == 429 or status >= 500,
                kind=kind,
            )
        return results


def _record_usage(kind: str, body: Any) -> None:
    """The answer's token counts: on the current model span and in the token counter."""
    usage = body.get("usage") if isinstance(body, dict) else None
    if not isinstance(usage, dict):
        return
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    if not isinstance(prompt, int) or not isinstance(completion, int):
        return
    metrics.model_tokens.inc(prompt, tags={"kind": kind, "direction": "input"})
    metrics.model_tokens.inc(completion, tags={"kind": kind, "direction": "output"})
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attributes(
            {
                "gen_ai.usage.input_tokens": prompt,
                "gen_ai.usage.output_tokens": completion,
                "llm.token_count.prompt": prompt,
                "llm.token_count.completion": completion,
            }
        )


def _request_body(
    model: str, messages: list[dict[str, Any]], response_format: dict[str, Any] | None
) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "messages": messages}
    if response_format is not None:
        body["response_format"] = response_format
    return body


def _content(kind: str, body: Any) -> str:
    """The answer text of a chat completion's JSON body."""
    try:
        content = body["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError) as exc:
        raise ModelCallFailed(
            f"{kind} model answer has no choices[0].message: {str(body)[:200]}",
            retriable=False,
            kind=kind,
        ) from exc
    return content if isinstance(content, str) else ""


def _delta(chunk: Any) -> str | None:
    """The text a streamed chunk adds (``choices[0].delta.content``), if any."""
    try:
        content = chunk["choices"][0]["delta"].get("content")
    except (KeyError, IndexError, TypeError, AttributeError):
        return None
    return content if isinstance(content, str) else None


def _headers(call_key: str | None, traceparent: str | None) -> dict[str, str]:
    headers = {"x-eco2-call-key": call_key} if call_key else {}
    if traceparent:
        headers["traceparent"] = traceparent
    return headers


def _failed(kind: str, exc: Exception, *, retriable: bool) -> ModelCallFailed:
    verb = "failed after retries" if retriable else "refused"
    return ModelCallFailed(
        f"{kind} model call {verb}: {type(exc).__name__}: {exc}", retriable=retriable, kind=kind
    )


def _repair_note(error: Exception) -> dict[str, str]:
    return {
        "role": "user",
        "content": (
            "방금 답은 요청한 JSON 형식이 아니었습니다. 설명 없이 스키마에 맞는 JSON 하나만 "
            f"다시 답하세요. 문제: {str(error)[:300]}"
        ),
    }
