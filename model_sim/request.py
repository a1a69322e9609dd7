"""Reading an OpenAI request (chat completions or responses) into one plain :class:`CallRequest`."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any, Literal

from model_sim.answers import detect_kind
from model_sim.config import CallKind

Api = Literal["chat", "responses"]
IMAGE_TOKENS = 85  # one image at detail "low"
# An inline image's payload is an image, counted as IMAGE_TOKENS, not as text.
_INLINE_PAYLOAD = re.compile(r'(data:[^,"\s]*,)[^"\s]*')


class BadRequest(ValueError):
    """The request body is not a usable OpenAI request; answered with 400."""


@dataclass(frozen=True, eq=False)
class CallRequest:
    """What the simulator needs from a request. Only user-role text is read for keywords."""

    api: Api
    model: str
    user_texts: list[str]
    image_urls: list[str]
    schema_name: str | None = None
    schema: dict[str, Any] | None = None
    json_object: bool = False
    tool_name: str | None = None
    stream: bool = False
    include_usage: bool = False
    prompt_tokens: int = 0
    digest: str = ""

    @property
    def kind(self) -> CallKind:
        keys = (self.schema or {}).get("properties") or {}
        return detect_kind(self.schema_name or self.tool_name, bool(self.image_urls), keys)


def _digest(body: dict[str, Any]) -> str:
    canonical = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:24]


def _tokens(text: str) -> int:
    return max(1, len(text) // 3)


def _all_text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return _INLINE_PAYLOAD.sub(r"\1", text) if "data:" in text else text


def _require_dict(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        raise BadRequest("the body must be a JSON object with a string 'model'")
    return body


def parse_chat(raw: Any) -> CallRequest:
    """A ``POST /v1/chat/completions`` body."""
    body = _require_dict(raw)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' must be a non-empty list")
    texts: list[str] = []
    images: list[str] = []
    for message in messages:
        if not isinstance(message, dict) or message.get("role") != "user":
            continue
        content = message.get("content")
        parts = [{"type": "text", "text": content}] if isinstance(content, str) else content or []
        for part in parts:
            if part.get("type") == "text":
                texts.append(str(part.get("text", "")))
            elif part.get("type") == "image_url":
                image = part.get("image_url")
                images.append(str(image.get("url", "") if isinstance(image, dict) else image))
    fmt = body.get("response_format") or {}
    spec = fmt.get("json_schema") or {} if fmt.get("type") == "json_schema" else {}
    tool_name, tool_schema = _forced_tool(body)
    stream_options = body.get("stream_options") or {}
    return CallRequest(
        api="chat",
        model=body["model"],
        user_texts=texts,
        image_urls=images,
        schema_name=spec.get("name"),
        schema=spec.get("schema") if spec else tool_schema,
        json_object=fmt.get("type") == "json_object",
        tool_name=tool_name,
        stream=bool(body.get("stream")),
        include_usage=bool(stream_options.get("include_usage")),
        prompt_tokens=_tokens(_all_text(messages)) + IMAGE_TOKENS * len(images),
        digest=_digest(body),
    )


def _forced_tool(body: dict[str, Any]) -> tuple[str | None, dict[str, Any] | None]:
    choice = body.get("tool_choice")
    if not isinstance(choice, dict) or choice.get("type") != "function":
        return None, None
    name = (choice.get("function") or {}).get("name")
    for tool in body.get("tools") or []:
        function = tool.get("function") or {}
        if function.get("name") == name:
            return name, function.get("parameters") or {"type": "object"}
    raise BadRequest(f"tool_choice names function {name!r}, which is not in 'tools'")


def parse_responses(raw: Any) -> CallRequest:
    """A ``POST /v1/responses`` body (string input or input items with content parts)."""
    body = _require_dict(raw)
    items = body.get("input")
    if isinstance(items, str):
        items = [{"role": "user", "content": items}]
    if not isinstance(items, list):
        raise BadRequest("'input' must be a string or a list of input items")
    texts: list[str] = []
    images: list[str] = []
    for item in items:
        if not isinstance(item, dict) or item.get("role") != "user":
            continue
        content = item.get("content")
        parts = [{"type": "input_text", "text": content}] if isinstance(content, str) else content
        for part in parts or []:
            if part.get("type") == "input_text":
                texts.append(str(part.get("text", "")))
            elif part.get("type") == "input_image":
                images.append(str(part.get("image_url") or part.get("file_id") or ""))
    fmt = (body.get("text") or {}).get("format") or {}
    is_schema = fmt.get("type") == "json_schema"
    instructions = body.get("instructions") or ""
    return CallRequest(
        api="responses",
        model=body["model"],
        user_texts=texts,
        image_urls=images,
        schema_name=fmt.get("name") if is_schema else None,
        schema=fmt.get("schema") if is_schema else None,
        json_object=fmt.get("type") == "json_object",
        stream=bool(body.get("stream")),
        prompt_tokens=_tokens(_all_text(items) + _all_text(instructions))
        + IMAGE_TOKENS * len(images),
        digest=_digest(body),
    )
