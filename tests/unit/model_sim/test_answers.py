from __future__ import annotations

import json
from typing import Any

import pytest

from model_sim.answers import (
    detect_kind,
    disposal_answer,
    find_context,
    fit_to_schema,
    intent_of,
    text_reply,
)
from model_sim.config import CallKind


@pytest.mark.parametrize(
    ("name", "image", "keys", "kind"),
    [
        ("vision_result", False, (), CallKind.VISION),
        (None, True, (), CallKind.VISION),
        ("answer_result", True, (), CallKind.VISION),
        ("answer_result", False, (), CallKind.ANSWER),
        ("chat_intent", False, (), CallKind.INTENT),
        (None, False, (), CallKind.TEXT),
        ("Whatever", False, ("disposal_steps", "insufficiencies", "user_answer"), CallKind.ANSWER),
        ("Whatever", False, ("classification", "situation_tags", "meta"), CallKind.VISION),
        ("Whatever", False, ("intent", "confidence", "reasoning"), CallKind.INTENT),
    ],
)
def test_detect_kind(name: str | None, image: bool, keys: tuple[str, ...], kind: CallKind) -> None:
    assert detect_kind(name, image, keys) is kind


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("페트병 어떻게 버려?", "waste"),
        ("근처 재활용센터 알려줘", "location"),
        ("소파 버리려면 스티커 사야 해?", "bulk_waste"),
        ("고철 가격 얼마야?", "recyclable_price"),
        ("폐건전지 수거함 어디 있어?", "collection_point"),
        ("오늘 날씨 어때?", "weather"),
        ("분리배출 정책 최신 뉴스", "web_search"),
        ("캐릭터 뭐 받을 수 있어?", "character"),
        ("이코 그림 그려줘", "image_generation"),
        ("안녕", "general"),
    ],
)
def test_intent_keywords(text: str, intent: str) -> None:
    result = intent_of(text)

    assert result["intent"] == intent
    assert 0 <= result["confidence"] <= 1
    assert result["reasoning"]


def _context(tags: list[str]) -> str:
    return json.dumps(
        {
            "classification": {"major_category": "재활용폐기물", "middle_category": "무색페트병"},
            "situation_tags": tags,
            "user_input": "어떻게 버려?",
            "disposal_rule": {"common_steps": [f"s{i}" for i in range(12)], "group_steps": {}},
        },
        ensure_ascii=False,
    )


def test_answer_uses_the_rule_and_the_fault_tags() -> None:
    answer = disposal_answer([f"맥락: {_context(['비닐_라벨_부착', '내용물_없음'])} 끝"])

    assert list(answer["disposal_steps"]) == [f"단계{i}" for i in range(1, 11)]
    assert answer["disposal_steps"]["단계1"] == "s0"
    assert answer["insufficiencies"] == ["비닐 라벨이 붙어 있어요. 떼어 주세요."]
    assert answer["user_answer"].count(".") <= 3


def test_answer_without_faults_has_no_insufficiencies() -> None:
    assert disposal_answer([_context(["내용물_없음"])])["insufficiencies"] == []


def test_answer_without_context_is_generic() -> None:
    answer = disposal_answer(["그냥 질문이에요 {not json}"])

    assert answer["disposal_steps"] == {}
    assert answer["user_answer"]


def test_find_context_skips_objects_without_classification() -> None:
    text = '{"a": 1} then {"classification": {"major_category": "x"}}'

    assert find_context([text]) == {"classification": {"major_category": "x"}}


def test_text_reply_is_deterministic_and_says_simulator() -> None:
    assert text_reply("안녕") == text_reply("안녕")
    assert "시뮬레이터" in text_reply("안녕")


STRICT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "classification": {"$ref": "#/$defs/Cls"},
        "situation_tags": {"type": "array", "items": {"type": "string"}},
        "score": {"type": "number"},
        "mode": {"enum": ["a", "b"]},
        "note": {"anyOf": [{"type": "string"}, {"type": "null"}]},
    },
    "required": ["classification", "situation_tags", "score", "mode", "note"],
    "additionalProperties": False,
    "$defs": {
        "Cls": {
            "type": "object",
            "properties": {"major_category": {"type": "string"}, "n": {"type": "integer"}},
            "required": ["major_category", "n"],
            "additionalProperties": False,
        }
    },
}


def test_fit_fills_required_keys_and_drops_unknown_ones() -> None:
    value = {"classification": {"major_category": "종이", "extra": 1}, "unknown": True, "mode": "z"}

    assert fit_to_schema(value, STRICT) == {
        "classification": {"major_category": "종이", "n": 0},
        "situation_tags": [],
        "score": 0.0,
        "mode": "a",
        "note": None,
    }


def test_fit_keeps_open_maps() -> None:
    schema = {"type": "object", "additionalProperties": {"type": "string"}}

    assert fit_to_schema({"단계1": "a", "단계2": 3}, schema) == {"단계1": "a", "단계2": "3"}
