"""Contract of the Eco² model SIMULATOR against the real ``openai`` SDK (sync and async).

The simulator runs as ``python -m model_sim`` in a subprocess on a free 127.0.0.1 port;
each test installs its own configuration through ``PUT /sim/config`` and zeroes the counters.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
import httpx
import openai
import psutil  # type: ignore[import-untyped]
import pytest
from pydantic import BaseModel, ValidationError

from tests.integration.simulator_process import Sim

pytestmark = pytest.mark.integration

PET_URL = "https://cdn.example/scan/clear-pet-bottle-label.jpg"


class Classification(BaseModel):
    major_category: str
    middle_category: str
    minor_category: str | None


class Meta(BaseModel):
    user_input: str


class VisionResult(BaseModel):
    classification: Classification
    situation_tags: list[str]
    meta: Meta


class AnswerResult(BaseModel):
    disposal_steps: dict[str, str]
    insufficiencies: list[str]
    user_answer: str


@pytest.fixture(autouse=True)
def zero_config(sim: Sim) -> None:
    sim.configure(preset="zero")


def _vision_messages(url: str = PET_URL, text: str = "어떻게 버려?") -> list[Any]:
    return [
        {"role": "system", "content": "분류 목록: 종이, 캔, 비닐 (system text is not read)"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": text},
                {"type": "image_url", "image_url": {"url": url, "detail": "low"}},
            ],
        },
    ]


def _answer_context(tags: list[str]) -> str:
    context = {
        "classification": {"major_category": "재활용폐기물", "middle_category": "무색페트병"},
        "situation_tags": tags,
        "user_input": "어떻게 버려?",
        "disposal_rule": {"common_steps": ["비우기", "라벨 떼기", "헹구기"], "group_steps": {}},
    }
    return json.dumps(context, ensure_ascii=False)


def test_models_health_and_simulator_marks(sim: Sim) -> None:
    models = sim.client().models.list()
    health = sim.http.get("/healthz")

    assert {m.id for m in models.data} == {"gpt-5.2", "gpt-5.1", "gpt-4o", "gpt-4o-mini"}
    assert {m.owned_by for m in models.data} == {"eco2-simulator"}
    assert health.json()["simulator"] is True
    assert health.headers["x-eco2-simulator"] == "1"


def test_sync_chat_create(sim: Sim) -> None:
    raw = sim.client().chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": "안녕"}]
    )
    completion = raw.parse()

    assert raw.headers["x-eco2-simulator"] == "1"
    assert completion.system_fingerprint == "eco2-sim"
    assert completion.choices[0].finish_reason == "stop"
    assert "시뮬레이터" in (completion.choices[0].message.content or "")
    assert completion.usage is not None
    assert completion.usage.total_tokens > 0


async def test_async_chat_create(sim: Sim) -> None:
    async with sim.async_client() as client:
        completion = await client.chat.completions.create(
            model="gpt-5.2", messages=[{"role": "user", "content": "근처 재활용센터"}]
        )

    assert completion.object == "chat.completion"
    assert completion.choices[0].message.content


def test_chat_parse_vision(sim: Sim) -> None:
    completion = sim.client().chat.completions.parse(
        model="gpt-5.2", messages=_vision_messages(), response_format=VisionResult
    )
    parsed = completion.choices[0].message.parsed

    assert parsed is not None
    assert parsed.classification.middle_category == "무색페트병"
    assert parsed.situation_tags == ["비닐_라벨_부착"]
    assert parsed.meta.user_input == "어떻게 버려?"


def test_chat_parse_answer(sim: Sim) -> None:
    completion = sim.client().chat.completions.parse(
        model="gpt-5.2",
        messages=[
            {"role": "system", "content": "너는 이코야"},
            {"role": "user", "content": _answer_context(["비닐_라벨_부착"])},
        ],
        response_format=AnswerResult,
    )
    parsed = completion.choices[0].message.parsed

    assert parsed is not None
    assert parsed.disposal_steps == {"단계1": "비우기", "단계2": "라벨 떼기", "단계3": "헹구기"}
    assert parsed.insufficiencies == ["비닐 라벨이 붙어 있어요. 떼어 주세요."]


def test_chat_streaming_matches_the_plain_answer(sim: Sim) -> None:
    client = sim.client()
    plain = client.chat.completions.create(model="gpt-4o", messages=_vision_messages())
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o",
            messages=_vision_messages(),
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)

    assert text == plain.choices[0].message.content
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].usage is not None


def test_a_break_fault_cuts_a_stream_half_way_and_fails_a_plain_call(sim: Sim) -> None:
    client = sim.client()
    whole = client.chat.completions.create(model="gpt-4o", messages=_vision_messages())
    answer = whole.choices[0].message.content or ""
    sim.add_faults({"fault": "break"})
    received: list[str] = []
    stream = client.chat.completions.create(
        model="gpt-4o", messages=_vision_messages(), stream=True
    )
    with pytest.raises((openai.APIError, httpx.HTTPError)):
        received.extend(c.delta.content or "" for chunk in stream for c in chunk.choices)
    assert 0 < len("".join(received)) < len(answer)
    assert answer.startswith("".join(received))
    sim.add_faults({"fault": "break"})
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="gpt-4o", messages=_vision_messages())


def test_chat_stream_helper_parses(sim: Sim) -> None:
    with sim.client().chat.completions.stream(
        model="gpt-4o", messages=_vision_messages(), response_format=VisionResult
    ) as stream:
        final = stream.get_final_completion()

    parsed = final.choices[0].message.parsed
    assert parsed is not None
    assert parsed.classification.middle_category == "무색페트병"


def test_forced_tool_call(sim: Sim) -> None:
    parameters = {
        "type": "object",
        "properties": {
            "intent": {"type": "string", "enum": ["waste", "location", "general"]},
            "confidence": {"type": "number"},
            "reasoning": {"type": "string"},
        },
        "required": ["intent", "confidence", "reasoning"],
        "additionalProperties": False,
    }
    completion = sim.client().chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "근처 재활용센터 어디야?"}],
        tools=[{"type": "function", "function": {"name": "chat_intent", "parameters": parameters}}],
        tool_choice={"type": "function", "function": {"name": "chat_intent"}},
    )
    call = (completion.choices[0].message.tool_calls or [])[0]

    assert call.type == "function"
    assert call.function.name == "chat_intent"
    assert json.loads(call.function.arguments)["intent"] == "location"


def _responses_input(url: str = PET_URL) -> list[Any]:
    return [
        {
            "role": "user",
            "content": [
                {"type": "input_text", "text": "이거 어떻게 버려?"},
                {"type": "input_image", "image_url": url, "detail": "low"},
            ],
        }
    ]


def test_responses_create_and_parse(sim: Sim) -> None:
    client = sim.client()
    created = client.responses.create(model="gpt-5.2", input=_responses_input())
    parsed = client.responses.parse(
        model="gpt-5.2", input=_responses_input(), text_format=VisionResult
    )

    assert created.status == "completed"
    assert json.loads(created.output_text)["classification"]["middle_category"] == "무색페트병"
    assert parsed.output_parsed is not None
    assert parsed.output_parsed.situation_tags == ["비닐_라벨_부착"]


def test_responses_plain_string_input(sim: Sim) -> None:
    response = sim.client().responses.create(model="gpt-4o", input="안녕")

    assert "시뮬레이터" in response.output_text


def test_responses_streaming_event_sequence(sim: Sim) -> None:
    events = list(
        sim.client().responses.create(model="gpt-5.2", input=_responses_input(), stream=True)
    )
    kinds = [e.type for e in events]

    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert set(kinds[4:-4]) == {"response.output_text.delta"}
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))


async def test_responses_stream_helper_async(sim: Sim) -> None:
    async with (
        sim.async_client() as client,
        client.responses.stream(
            model="gpt-5.2", input=_responses_input(), text_format=VisionResult
        ) as stream,
    ):
        final = await stream.get_final_response()

    assert final.output_parsed is not None
    assert final.output_parsed.classification.major_category == "재활용폐기물"


def test_fault_429_carries_retry_after(sim: Sim) -> None:
    sim.configure(preset="zero", retry_after_s=7)
    sim.add_faults({"kind": "text", "fault": "429"})

    with pytest.raises(openai.RateLimitError) as caught:
        sim.client().chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "a"}]
        )

    assert caught.value.response.headers["retry-after"] == "7"
    assert caught.value.response.headers["x-eco2-simulator"] == "1"
    assert sim.stats()["kinds"]["text"]["faults"]["429"] == 1


def test_fault_500(sim: Sim) -> None:
    sim.add_faults({"fault": "500"})

    with pytest.raises(openai.InternalServerError):
        sim.client().chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "a"}]
        )


def test_fault_hang_times_out_and_is_cancelled(sim: Sim) -> None:
    sim.add_faults({"kind": "vision", "fault": "hang"})

    with pytest.raises(openai.APITimeoutError):
        sim.client(timeout=0.5).chat.completions.create(model="gpt-4o", messages=_vision_messages())

    deadline = time.monotonic() + 5
    while sim.stats()["kinds"]["vision"]["in_flight"] and time.monotonic() < deadline:
        time.sleep(0.05)
    stats = sim.stats()["kinds"]["vision"]
    assert stats["in_flight"] == 0
    assert stats["faults"]["hang"] == 1


def test_fault_malformed(sim: Sim) -> None:
    sim.add_faults({"kind": "vision", "fault": "malformed", "count": 2})
    client = sim.client()

    raw = client.chat.completions.create(model="gpt-4o", messages=_vision_messages())
    with pytest.raises((ValidationError, ValueError)):
        client.chat.completions.parse(
            model="gpt-4o", messages=_vision_messages(), response_format=VisionResult
        )

    with pytest.raises(json.JSONDecodeError):
        json.loads(raw.choices[0].message.content or "")
    assert sim.stats()["kinds"]["vision"]["faults"]["malformed"] == 2


def test_request_rate_limit(sim: Sim) -> None:
    sim.configure(preset="zero", requests_per_minute=2)
    client = sim.client()
    for _ in range(2):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "a"}])

    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "a"}])

    assert int(caught.value.response.headers["retry-after"]) >= 1


def test_token_rate_limit(sim: Sim) -> None:
    sim.configure(preset="zero", tokens_per_minute=50)

    client = sim.client()
    message = [{"role": "user", "content": "가" * 90}]  # about 30 tokens a call
    client.chat.completions.create(model="gpt-4o", messages=message)  # type: ignore[arg-type]

    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="gpt-4o", messages=message)  # type: ignore[arg-type]


def test_stats_and_calls_by_key(sim: Sim) -> None:
    client = sim.client()
    for key in ("job-1:vision", "job-1:answer", "job-2:vision"):
        client.chat.completions.create(
            model="gpt-4o",
            messages=_vision_messages(),
            extra_headers={"x-eco2-call-key": key},
        )

    stats = sim.stats()

    assert stats["simulator"] is True
    assert stats["calls_by_key"] == {"job-1:vision": 1, "job-1:answer": 1, "job-2:vision": 1}
    assert stats["kinds"]["vision"]["requests"] == 3
    assert stats["kinds"]["vision"]["completed"] == 3
    assert stats["kinds"]["vision"]["in_flight"] == 0


def test_same_request_gives_the_same_body(sim: Sim) -> None:
    sim.configure(preset="fast", seed=11)
    client = sim.client()

    first, second = (
        client.chat.completions.create(model="gpt-4o", messages=_vision_messages())
        for _ in range(2)
    )

    assert first.id == second.id
    assert first.choices[0].message.content == second.choices[0].message.content


async def test_two_thousand_concurrent_slow_requests(sim: Sim) -> None:
    sim.configure(preset="zero", kinds={"text": {"fixed_ms": 1000}})
    server = psutil.Process(sim.process.pid)
    cpu_before = sum(server.cpu_times()[:2])
    started = time.perf_counter()
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "안녕"}]}
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one() -> int:
            async with session.post(f"{sim.base}/v1/chat/completions", json=body) as response:
                await response.read()
                return response.status

        statuses = await asyncio.gather(*(one() for _ in range(2000)))

    wall = time.perf_counter() - started
    cpu = sum(server.cpu_times()[:2]) - cpu_before
    stats = sim.stats()["kinds"]["text"]
    print(f"2000 concurrent 1 s calls: wall {wall:.2f} s, simulator CPU {cpu:.2f} s")
    assert statuses == [200] * 2000
    assert stats["completed"] == 2000
    assert stats["max_in_flight"] > 1000
    assert wall < 30
