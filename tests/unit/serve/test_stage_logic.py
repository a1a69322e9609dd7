import json

import pytest

from pipelines.rules.rulebook import load_rulebook
from pipelines.rules.taxonomy import load_taxonomy
from pipelines.scan.stages import rule_documents, vision_catalog
from serve import answer, vision
from serve.contracts import (
    DEFAULT_QUESTION,
    Classification,
    MalformedModelOutput,
    VisionMeta,
    VisionResult,
)

TASK = vision.VisionTask(vision_catalog())


def _vision(major: str, middle: str, tags: list[str] | None = None) -> VisionResult:
    return VisionResult(
        classification=Classification(major_category=major, middle_category=middle),
        situation_tags=tags or [],
        meta=VisionMeta(user_input=DEFAULT_QUESTION),
    )


def test_vision_prompt_lists_the_whole_taxonomy_and_every_tag() -> None:
    messages = TASK.messages("https://cdn.example/a.jpg", None)
    system = messages[0]["content"]
    taxonomy = load_taxonomy()
    for middle, items in taxonomy.recyclable_middles.items():
        assert middle in system
        assert all(item in system for item in items)
    assert all(tag in system for tag in taxonomy.situation_tags)
    user_parts = messages[1]["content"]
    assert user_parts[0] == {"type": "text", "text": DEFAULT_QUESTION}
    assert user_parts[1]["image_url"] == {"url": "https://cdn.example/a.jpg", "detail": "low"}


def test_vision_parse_keeps_known_tags_and_echoes_the_users_own_text() -> None:
    raw = {
        "classification": {
            "major_category": " 재활용폐기물 ",
            "middle_category": "무색페트병",
            "minor_category": "",
        },
        "situation_tags": ["비닐_라벨_부착", "made_up_tag", "비닐_라벨_부착"],
        "meta": {"user_input": "something the model invented"},
    }
    result = TASK.parse(json.dumps(raw, ensure_ascii=False), "라벨 떼야 해?")
    assert result.classification.major_category == "재활용폐기물"
    assert result.classification.minor_category is None
    assert result.situation_tags == ["비닐_라벨_부착"]
    assert result.meta.user_input == "라벨 떼야 해?"


@pytest.mark.parametrize(
    "text",
    ["", "not json", "[]", '{"classification": {}}', '{"classification": 1, "meta": {}}'],
)
def test_malformed_vision_output_is_reported_for_repair(text: str) -> None:
    with pytest.raises(MalformedModelOutput):
        TASK.parse(text, None)


def test_vision_schema_is_strict() -> None:
    schema = vision.response_format()["json_schema"]["schema"]
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {"classification", "situation_tags", "meta"}


def test_answer_prompt_carries_the_four_context_blocks_and_the_whole_rule() -> None:
    rule = load_rulebook().get("재활용폐기물_무색페트병")
    document = rule_documents(load_rulebook())["재활용폐기물_무색페트병"]
    messages = answer.build_messages(_vision("재활용폐기물", "무색페트병"), document)
    context = json.loads(messages[1]["content"])
    assert set(context) == {"classification", "situation_tags", "user_input", "disposal_rule"}
    assert context["disposal_rule"]["rule_id"] == "재활용폐기물_무색페트병"
    assert context["disposal_rule"]["common_steps"] == list(rule.common_steps)


def test_answer_parse_drops_unknown_step_keys_and_blank_entries() -> None:
    raw = {
        "disposal_steps": {"단계1": "비우기", "단계2": " ", "extra": "x", "단계11": "too many"},
        "insufficiencies": ["", "라벨을 떼 주세요"],
        "user_answer": " 라벨만 떼면 돼! ",
    }
    result = answer.parse(json.dumps(raw, ensure_ascii=False))
    assert result.disposal_steps == {"단계1": "비우기"}
    assert result.insufficiencies == ["라벨을 떼 주세요"]
    assert result.user_answer == "라벨만 떼면 돼!"


@pytest.mark.parametrize("text", ["{", '{"disposal_steps": []}', '"just a string"'])
def test_malformed_answer_output_is_reported_for_repair(text: str) -> None:
    with pytest.raises(MalformedModelOutput):
        answer.parse(text)


def test_an_empty_major_becomes_the_catalogs_unclassified_label() -> None:
    raw = {
        "classification": {"major_category": " ", "middle_category": "", "minor_category": None},
        "situation_tags": [],
        "meta": {"user_input": ""},
    }
    result = TASK.parse(json.dumps(raw), None)
    assert result.classification.major_category == vision_catalog().unclassified
    assert result.meta.user_input == DEFAULT_QUESTION


def test_a_model_failure_keeps_its_verdict_across_processes() -> None:
    import pickle

    from serve.contracts import ModelCallFailed

    copy = pickle.loads(pickle.dumps(ModelCallFailed("bad", retriable=False, kind="answer")))
    assert (str(copy), copy.retriable, copy.kind) == ("bad", False, "answer")
