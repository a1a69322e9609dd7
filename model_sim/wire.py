"""OpenAI wire shapes: chat completions (+ chunks) and responses (+ stream events), as dicts.

Checked against the installed ``openai`` SDK types: ``ChatCompletion``, ``ChatCompletionChunk``,
``Response`` and the ``response.*`` stream events. Ids derive from the request digest, so the same
request gives the same body apart from the ``created``/``created_at`` clock.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

from model_sim.request import CallRequest

FINGERPRINT = "eco2-sim"
OWNER = "eco2-simulator"
MODELS = ("gpt-5.2", "gpt-5.1", "gpt-4o", "gpt-4o-mini")


def count_tokens(text: str) -> int:
    return max(1, len(text) // 3)


def pieces(text: str, size: int = 24) -> list[str]:
    """The stream deltas of ``text`` (fixed-size slices, so streaming is deterministic too)."""
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def error_body(message: str, kind: str, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def malformed(content: str) -> str:
    """``content`` spoiled: half of a JSON text is never valid JSON; plain text gets an
    unclosed object."""
    return content[: len(content) // 2] if content.startswith("{") else '{"' + content[:20]


def models_list() -> dict[str, Any]:
    created = 1_700_000_000
    data = [{"id": m, "object": "model", "created": created, "owned_by": OWNER} for m in MODELS]
    return {"object": "list", "data": data}


# ---- chat completions ----
def _chat_usage(req: CallRequest, content: str) -> dict[str, int]:
    out = count_tokens(content)
    return {
        "prompt_tokens": req.prompt_tokens,
        "completion_tokens": out,
        "total_tokens": req.prompt_tokens + out,
    }


def _tool_call(req: CallRequest, arguments: str) -> dict[str, Any]:
    return {
        "id": f"call_sim{req.digest[:16]}",
        "type": "function",
        "function": {"name": req.tool_name, "arguments": arguments},
    }


def chat_completion(req: CallRequest, content: str) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "refusal": None, "annotations": []}
    if req.tool_name:
        message.update(content=None, tool_calls=[_tool_call(req, content)])
    else:
        message["content"] = content
    return {
        "id": f"chatcmpl-sim{req.digest}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": req.model,
        "system_fingerprint": FINGERPRINT,
        "service_tier": "default",
        # A forced tool_choice ends with "stop" on the real API too, not "tool_calls".
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}],
        "usage": _chat_usage(req, content),
    }


def chat_chunks(req: CallRequest, content: str) -> Iterator[dict[str, Any]]:
    """The chunk sequence of a streamed chat completion (the caller adds ``data: [DONE]``)."""
    base = {
        "id": f"chatcmpl-sim{req.digest}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": req.model,
        "system_fingerprint": FINGERPRINT,
    }
    if req.include_usage:
        base["usage"] = None

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return {**base, "choices": [choice]}

    if req.tool_name:
        call = _tool_call(req, "")
        yield chunk({"role": "assistant", "content": None, "tool_calls": [{"index": 0, **call}]})
        for piece in pieces(content):
            yield chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
    else:
        yield chunk({"role": "assistant", "content": "", "refusal": None})
        for piece in pieces(content):
            yield chunk({"content": piece})
    yield chunk({}, "stop")
    if req.include_usage:
        yield {**base, "choices": [], "usage": _chat_usage(req, content)}


def sse_data(payload: dict[str, Any] | str, event: str | None = None) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {data}\n\n".encode()


# ---- responses ----
def _output_text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _message(req: CallRequest, text: str | None) -> dict[str, Any]:
    done = text is not None
    return {
        "id": f"msg_sim{req.digest}",
        "type": "message",
        "role": "assistant",
        "status": "completed" if done else "in_progress",
        "content": [_output_text(text)] if text is not None else [],
    }


def response_object(req: CallRequest, text: str | None, created_at: float) -> dict[str, Any]:
    """A ``Response``; ``text=None`` gives the in-progress shell that opens a stream."""
    out = count_tokens(text or "")
    usage = {
        "input_tokens": req.prompt_tokens,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": out,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": req.prompt_tokens + out,
    }
    fmt: dict[str, Any] = {"type": "text"}
    if req.schema_name:
        fmt = {"type": "json_schema", "name": req.schema_name, "schema": req.schema, "strict": True}
    return {
        "id": f"resp_sim{req.digest}",
        "object": "response",
        "created_at": created_at,
        "status": "completed" if text is not None else "in_progress",
        "completed_at": time.time() if text is not None else None,
        "model": req.model,
        "output": [_message(req, text)] if text is not None else [],
        "error": None,
        "incomplete_details": None,
        "instructions": None,
        "metadata": {},
        "parallel_tool_calls": True,
        "temperature": 1.0,
        "top_p": 1.0,
        "tool_choice": "auto",
        "tools": [],
        "text": {"format": fmt},
        "usage": usage if text is not None else None,
    }


def response_events(req: CallRequest, text: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """The Responses streaming event sequence, each with its ``sequence_number``."""
    created_at = time.time()
    ids = {"item_id": f"msg_sim{req.digest}", "output_index": 0, "content_index": 0}
    events: list[tuple[str, dict[str, Any]]] = [
        ("response.created", {"response": response_object(req, None, created_at)}),
        ("response.in_progress", {"response": response_object(req, None, created_at)}),
        ("response.output_item.added", {"output_index": 0, "item": _message(req, None)}),
        ("response.content_part.added", {**ids, "part": _output_text("")}),
    ]
    events += [
        ("response.output_text.delta", {**ids, "delta": p, "logprobs": []}) for p in pieces(text)
    ]
    events += [
        ("response.output_text.done", {**ids, "text": text, "logprobs": []}),
        ("response.content_part.done", {**ids, "part": _output_text(text)}),
        ("response.output_item.done", {"output_index": 0, "item": _message(req, text)}),
        ("response.completed", {"response": response_object(req, text, created_at)}),
    ]
    for number, (kind, payload) in enumerate(events):
        yield kind, {"type": kind, "sequence_number": number, **payload}
