"""Model-output parsing: whatever follows the schema we send the model parses (tidied as each
parser documents), what a parser returns parses back to itself, and anything else is
:class:`MalformedModelOutput` (the repair, then a non-retriable :class:`ModelCallFailed`), never
another exception."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable
from typing import Any

import jsonschema  # type: ignore[import-untyped, unused-ignore]
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from pipelines.scan.stages import vision_catalog
from serve import answer, model_client, text, vision
from serve.contracts import (
    AnswerResult,
    MalformedModelOutput,
    ModelCallFailed,
    VisionResult,
    json_schema_for,
)
from tests.unit.properties.strategies import (
    PROPERTY,
    garbage_text,
    json_values,
    short_text,
    storable_text,
)

TASK = vision.VisionTask(vision_catalog())
KNOWN_TAGS = TASK.catalog.situation_tags
STEP_KEY = re.compile(r"^단계([1-9]|10)$")


def from_schema(node: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Documents valid against a (strict) JSON schema of the subset the stages send; a construct
    not covered fails the test rather than being skipped."""
    if "enum" in node:
        return st.sampled_from(node["enum"])
    if "anyOf" in node:
        return st.one_of([from_schema(option) for option in node["anyOf"]])
    kind = node.get("type")
    if kind == "object" and "properties" in node:
        return st.fixed_dictionaries({k: from_schema(v) for k, v in node["properties"].items()})
    if kind == "object":
        return st.dictionaries(step_keys, from_schema(node["additionalProperties"]), max_size=5)
    if kind == "array":
        return st.lists(from_schema(node["items"]), max_size=5)
    simple: dict[str, st.SearchStrategy[Any]] = {
        "string": labels,
        "number": st.floats(allow_nan=False, allow_infinity=False) | st.integers(),
        "integer": st.integers(),
        "boolean": st.booleans(),
        "null": st.none(),
    }
    if kind in simple:
        return simple[kind]
    raise AssertionError(f"schema construct not covered: {node}")


labels = st.sampled_from([*KNOWN_TAGS, "재활용폐기물", " 무색페트병 ", "", "  "]) | storable_text
"""Strings as a model writes them: the catalog's own labels, padded or empty ones, anything."""
step_keys = st.sampled_from([f"단계{n}" for n in range(0, 13)]) | short_text


def _docs(schema: dict[str, Any]) -> st.SearchStrategy[str]:
    return from_schema(schema).map(lambda doc: json.dumps(doc, ensure_ascii=False))


vision_docs = _docs(json_schema_for(VisionResult))
intent_docs = _docs(json_schema_for(text.IntentResult))
answer_docs = _docs(answer.response_format()["json_schema"]["schema"])
user_inputs = st.none() | storable_text


# --- what the schema allows parses, tidied as documented ------------------------------------


@PROPERTY
@given(doc=vision_docs, user_input=user_inputs)
def test_vision_output_that_follows_the_schema_parses_with_known_tags_and_the_users_text(
    doc: str, user_input: str | None
) -> None:
    raw = json.loads(doc)
    result = TASK.parse(doc, user_input)
    c = raw["classification"]
    assert result.classification.major_category == (
        c["major_category"].strip() or TASK.catalog.unclassified
    )
    assert result.classification.middle_category == c["middle_category"].strip()
    assert result.classification.minor_category == ((c["minor_category"] or "").strip() or None)
    assert result.situation_tags == list(
        dict.fromkeys(t for t in raw["situation_tags"] if t in KNOWN_TAGS)
    )
    assert result.meta.user_input == vision.user_question(user_input)


@PROPERTY
@given(doc=answer_docs)
def test_answer_output_that_follows_the_schema_parses_with_only_numbered_non_empty_steps(
    doc: str,
) -> None:
    raw = json.loads(doc)
    result = answer.parse(doc)
    steps = {k: v.strip() for k, v in raw["disposal_steps"].items() if STEP_KEY.match(k)}
    assert result.disposal_steps == {k: v for k, v in steps.items() if v}
    assert result.insufficiencies == [i.strip() for i in raw["insufficiencies"] if i.strip()]
    assert result.user_answer == raw["user_answer"].strip()


@PROPERTY
@given(doc=intent_docs)
def test_intent_output_that_follows_the_schema_parses_clamped_and_deduplicated(doc: str) -> None:
    raw = json.loads(doc)
    result = text.parse_intent(doc)
    assert result.intent == raw["intent"]
    assert 0.0 <= result.confidence <= 1.0
    if 0.0 <= raw["confidence"] <= 1.0:
        assert result.confidence == raw["confidence"]
    expected = [i for i in dict.fromkeys(raw["additional_intents"]) if i != raw["intent"]]
    assert result.additional_intents == expected[: text.MAX_ADDITIONAL_INTENTS]


# --- what a parser returns is in the schema, and parses back to itself ----------------------


@PROPERTY
@given(doc=vision_docs, user_input=user_inputs)
def test_a_parsed_vision_result_is_schema_valid_and_a_fixed_point(
    doc: str, user_input: str | None
) -> None:
    result = TASK.parse(doc, user_input)
    jsonschema.validate(result.model_dump(mode="json"), json_schema_for(VisionResult))
    assert TASK.parse(result.model_dump_json(), result.meta.user_input) == result


@PROPERTY
@given(doc=answer_docs)
def test_a_parsed_answer_is_schema_valid_and_a_fixed_point(doc: str) -> None:
    result = answer.parse(doc)
    jsonschema.validate(result.model_dump(mode="json"), json_schema_for(AnswerResult))
    assert answer.parse(result.model_dump_json()) == result


@PROPERTY
@given(doc=intent_docs)
def test_a_parsed_intent_is_schema_valid_and_a_fixed_point(doc: str) -> None:
    result = text.parse_intent(doc)
    jsonschema.validate(result.model_dump(mode="json"), json_schema_for(text.IntentResult))
    assert text.parse_intent(result.model_dump_json()) == result


# --- anything else is MalformedModelOutput ----------------------------------------------------


def _only_malformed(parse: Callable[[str], object], raw: str) -> None:
    """``parse(raw)`` returns or raises MalformedModelOutput; anything else fails the test."""
    with contextlib.suppress(MalformedModelOutput):
        parse(raw)


# Found by this property: json.loads raised RecursionError for deep nesting and a bare
# ValueError for a number past Python's int digit limit, and let an unpaired surrogate through
# to a result no database could store (fixed: serve.answer parses with model_validate_json).
@PROPERTY
@given(raw=garbage_text)
@example(raw="[" * 5000)
@example(raw='{"user_answer": ' + "1" * 5000 + "}")
@example(raw='{"user_answer": "\\ud800"}')
def test_answer_output_that_is_not_an_answer_is_malformed_output(raw: str) -> None:
    try:
        result = answer.parse(raw)
    except MalformedModelOutput:
        return
    result.model_dump_json()  # what parses can be stored


@PROPERTY
@given(raw=st.text() | json_values.map(json.dumps))
def test_vision_and_intent_output_that_is_not_json_of_the_shape_is_malformed_output(
    raw: str,
) -> None:
    _only_malformed(lambda t: TASK.parse(t, None), raw)
    _only_malformed(text.parse_intent, raw)


KNOWN_TO_ESCAPE = [
    "[" * 5000,
    '{"classification": ' + "1" * 5000 + "}",
    '{"intent": ' + "1" * 5000 + "}",
]


@pytest.mark.parametrize("raw", KNOWN_TO_ESCAPE)
def test_vision_and_intent_output_too_deep_or_too_long_is_malformed_output(raw: str) -> None:
    _only_malformed(lambda t: TASK.parse(t, None), raw)
    _only_malformed(text.parse_intent, raw)


def _with_one_change(doc: str, change: Callable[[dict[str, Any]], None]) -> str:
    raw = json.loads(doc)
    change(raw)
    return json.dumps(raw, ensure_ascii=False)


@PROPERTY
@given(
    doc=st.sampled_from(["vision", "answer", "intent"]).flatmap(
        lambda which: st.tuples(
            st.just(which),
            {"vision": vision_docs, "answer": answer_docs, "intent": intent_docs}[which],
        )
    ),
    key=short_text,
    value=json_values,
)
def test_an_answer_with_a_key_the_schema_does_not_have_is_refused(
    doc: tuple[str, str], key: str, value: Any
) -> None:
    which, body = doc
    parsers: dict[str, Callable[[str], object]] = {
        "vision": lambda t: TASK.parse(t, None),
        "answer": answer.parse,
        "intent": text.parse_intent,
    }
    if key in json.loads(body):
        return
    with pytest.raises(MalformedModelOutput):
        parsers[which](_with_one_change(body, lambda raw: raw.__setitem__(key, value)))


_WASTE = {"intent": "waste", "confidence": 1, "reasoning": "", "additional_intents": []}


@PROPERTY
@given(doc=intent_docs, label=storable_text, main=st.booleans())
@example(doc=json.dumps(_WASTE), label="Waste", main=True)
def test_an_intent_outside_the_ten_is_refused_as_main_or_additional(
    doc: str, label: str, main: bool
) -> None:
    if label in text.INTENTS:
        return

    def change(raw: dict[str, Any]) -> None:
        if main:
            raw["intent"] = label
        else:
            raw["additional_intents"] = [*raw["additional_intents"], label]

    with pytest.raises(MalformedModelOutput):
        text.parse_intent(_with_one_change(doc, change))


# --- the chat-completions body around the text --------------------------------------------------


@PROPERTY
@given(body=json_values, content=st.text())
def test_the_answer_text_of_any_response_body_is_a_string_or_a_non_retriable_failure(
    body: Any, content: str
) -> None:
    wellformed = {"choices": [{"message": {"content": content}}]}
    assert model_client._content("answer", wellformed) == content
    answered: str | ModelCallFailed
    try:
        answered = model_client._content("answer", body)
    except ModelCallFailed as exc:
        answered = exc
    assert isinstance(answered, str) or not answered.retriable


@PROPERTY
@given(chunk=json_values, content=st.text())
def test_the_delta_of_any_stream_chunk_is_a_string_or_none(chunk: Any, content: str) -> None:
    assert model_client._delta({"choices": [{"delta": {"content": content}}]}) == content
    assert model_client._delta(chunk) is None or isinstance(model_client._delta(chunk), str)
