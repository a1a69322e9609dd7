"""Text stage logic: intent parsing, the cache key, the answer's prompt."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from serve import text
from serve.contracts import MalformedModelOutput


def test_an_intent_answer_is_parsed_and_tidied() -> None:
    raw = {
        "intent": "waste",
        "confidence": 1.7,
        "reasoning": "버리는 법",
        "additional_intents": ["waste", "weather", "weather", "location", "character", "general"],
    }
    result = text.parse_intent(json.dumps(raw))
    assert result.intent == "waste"
    assert result.confidence == 1.0
    assert result.additional_intents == ["weather", "location", "character"]


@pytest.mark.parametrize(
    "raw", ["", "{}", '{"intent": "dance", "confidence": 1, "reasoning": "x"}', "[]"]
)
def test_anything_but_one_of_the_ten_intents_is_malformed(raw: str) -> None:
    with pytest.raises(MalformedModelOutput):
        text.parse_intent(raw)


def test_the_cache_key_ignores_case_width_and_spacing_but_not_the_model() -> None:
    a = text.intent_cache_key("  페트병   어떻게 버려? ", "gpt-5.2")
    assert a == text.intent_cache_key("페트병 어떻게 버려?", "gpt-5.2")
    assert text.intent_cache_key("PET", "m") == text.intent_cache_key("ｐｅｔ", "m")
    assert a != text.intent_cache_key("페트병 어떻게 버려?", "gpt-4o-mini")


def test_the_answer_prompt_carries_summary_history_and_the_context_block() -> None:
    messages = text.answer_messages(
        "캔 얼마?",
        {"facts": {"price_context": {"survey_month": "2025-01"}}, "missing": []},
        [{"role": "user", "content": "안녕"}, {"role": "assistant", "content": "안녕!"}],
        "사용자는 캔을 팔고 싶어 한다",
    )
    assert [m["role"] for m in messages] == ["system", "system", "user", "assistant", "user"]
    assert "사용자는 캔을" in messages[1]["content"]
    last = messages[-1]["content"]
    assert last.startswith("캔 얼마?")
    block = json.loads(last[last.index("{") :])
    assert block["chat_context"]["facts"]["price_context"]["survey_month"] == "2025-01"


def test_the_intent_schema_is_strict_and_lists_the_ten_intents() -> None:
    schema = text.intent_format()["json_schema"]["schema"]
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]["intent"]["enum"]) == set(text.INTENTS)


async def _timed(deltas: list[tuple[float, str]], every_s: float) -> list[str]:
    """Run :func:`text.coalesce` over deltas arriving at the given (fake) times."""
    now = [0.0]

    async def source() -> AsyncIterator[str]:
        for at, delta in deltas:
            now[0] = at
            yield delta

    return [chunk async for chunk in text.coalesce(source(), every_s, clock=lambda: now[0])]


async def test_coalesce_passes_the_first_delta_at_once_then_chunks_by_interval() -> None:
    arrivals = [(0.00, "안"), (0.01, "녕"), (0.02, ","), (0.05, " 이"), (0.06, "코"), (0.07, "야")]
    chunks = await _timed(arrivals, every_s=0.05)
    assert chunks == ["안", "녕, 이", "코야"]
    assert "".join(chunks) == "안녕, 이코야"


async def test_coalesce_with_no_interval_passes_every_delta_on_its_own() -> None:
    arrivals = [(0.0, "a"), (0.0, "b"), (0.0, "c")]
    assert await _timed(arrivals, every_s=0.0) == ["a", "b", "c"]


async def test_coalesce_of_an_empty_stream_yields_nothing() -> None:
    assert await _timed([], every_s=0.05) == []
