"""The wire shapes validate against the installed openai SDK's own types."""

from __future__ import annotations

import json

from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from model_sim import wire
from model_sim.request import parse_chat, parse_responses

CHAT = {
    "model": "gpt-4o",
    "messages": [
        {"role": "system", "content": "종이 캔 비닐"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "이거 뭐야"},
                {"type": "image_url", "image_url": {"url": "https://x/can.jpg", "detail": "low"}},
            ],
        },
    ],
    "stream": True,
    "stream_options": {"include_usage": True},
}


def test_chat_request_reads_user_parts_only() -> None:
    req = parse_chat(CHAT)

    assert req.user_texts == ["이거 뭐야"]
    assert req.image_urls == ["https://x/can.jpg"]
    assert req.kind.value == "vision"
    assert req.include_usage


def test_forced_tool_choice_takes_the_tool_schema() -> None:
    body = {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "hi"}],
        "tools": [
            {
                "type": "function",
                "function": {"name": "chat_intent", "parameters": {"type": "object"}},
            }
        ],
        "tool_choice": {"type": "function", "function": {"name": "chat_intent"}},
    }

    req = parse_chat(body)

    assert req.tool_name == "chat_intent"
    assert req.kind.value == "intent"


def test_chat_shapes_validate() -> None:
    req = parse_chat(CHAT)
    completion = ChatCompletion.model_validate(wire.chat_completion(req, '{"a": 1}'))
    chunks = [ChatCompletionChunk.model_validate(c) for c in wire.chat_chunks(req, "x" * 60)]

    assert completion.choices[0].message.content == '{"a": 1}'
    assert completion.system_fingerprint == "eco2-sim"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "x" * 60
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None


def test_responses_shapes_validate() -> None:
    req = parse_responses(
        {
            "model": "gpt-5.2",
            "input": [
                {
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "hi"},
                        {"type": "input_image", "image_url": "https://x/a.jpg"},
                    ],
                }
            ],
            "text": {"format": {"type": "json_schema", "name": "vision_result", "schema": {}}},
        }
    )
    response = Response.model_validate(wire.response_object(req, '{"b": 2}', 0.0))
    adapter: TypeAdapter[ResponseStreamEvent] = TypeAdapter(ResponseStreamEvent)
    events = [adapter.validate_python(e) for _, e in wire.response_events(req, "y" * 50)]

    assert json.loads(response.output_text) == {"b": 2}
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[0].type == "response.created"
    assert events[-1].type == "response.completed"


def test_plain_string_input_is_user_text() -> None:
    req = parse_responses({"model": "gpt-4o", "input": "안녕"})

    assert req.user_texts == ["안녕"]
    assert req.kind.value == "text"


def test_models_are_owned_by_the_simulator() -> None:
    assert {m["owned_by"] for m in wire.models_list()["data"]} == {"eco2-simulator"}
