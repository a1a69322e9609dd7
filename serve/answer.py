"""Answer stage logic: the 이코 prompt and the parsing of its answer.

The answer model receives four context blocks as one JSON object (classification, situation tags,
the user's text, the whole matched rule document, as the composing pipeline hands it in) and
answers ``{disposal_steps, insufficiencies, user_answer}``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from serve import contracts
from serve.contracts import AnswerResult, MalformedModelOutput, VisionResult

SCHEMA_NAME = "answer_result"
MAX_STEPS = 10
_STEP_KEY = re.compile(r"^단계([1-9]|10)$")

_SYSTEM_PROMPT = "\n".join(
    [
        "당신은 분리배출 도우미 '이코'입니다. 친구에게 말하듯 짧고 다정한 한국어로 답합니다.",
        "입력은 JSON 하나입니다: classification(분류), situation_tags(사진에서 확인된 상태), "
        "user_input(사용자 질문), disposal_rule(적용할 배출 규정 전체).",
        "해야 할 일:",
        "1) disposal_steps: 규정의 공통 배출방법과 해당 품목 그룹의 세부 방법으로 순서 있는 단계를 "
        '만듭니다. 키는 "단계1"부터 필요한 만큼(최대 "단계10").',
        "2) insufficiencies: 상황 태그에서 보이는, 규정과 어긋나는 준비 상태만 적습니다. "
        "칭찬은 넣지 않고, 잘못된 점이 없으면 빈 배열입니다.",
        "3) user_answer: 질문을 되풀이하지 말고 세 문장 이내로 답합니다. 규정과 어긋나는 말은 "
        "하지 않습니다. 분리배출과 상관없는 질문이면 분리배출 이야기로 부드럽게 돌아옵니다.",
        "설명 없이 JSON 하나만 답합니다.",
    ]
)


def build_messages(vision: VisionResult, rule_document: Mapping[str, Any]) -> list[dict[str, Any]]:
    context = {
        "classification": vision.classification.model_dump(),
        "situation_tags": vision.situation_tags,
        "user_input": vision.meta.user_input,
        "disposal_rule": dict(rule_document),
    }
    return [
        {"role": "system", "content": _SYSTEM_PROMPT},
        {"role": "user", "content": json.dumps(context, ensure_ascii=False)},
    ]


def response_format() -> dict[str, Any]:
    schema = {
        "type": "object",
        "properties": {
            "disposal_steps": {"type": "object", "additionalProperties": {"type": "string"}},
            "insufficiencies": {"type": "array", "items": {"type": "string"}},
            "user_answer": {"type": "string"},
        },
        "required": ["disposal_steps", "insufficiencies", "user_answer"],
        "additionalProperties": False,
    }
    # Not strict: an open map of 단계n keys cannot be expressed in strict mode.
    return contracts.response_format(SCHEMA_NAME, schema, strict=False)


def parse(text: str) -> AnswerResult:
    """The typed answer; step keys other than ``단계1``..``단계10`` and empty entries are dropped.

    Raises :class:`MalformedModelOutput` when the text is not a JSON object of the expected shape.
    """
    try:
        # Parsed by pydantic's own JSON reader: any text it refuses (too deeply nested, a number
        # past the int digit limit, an unpaired surrogate that could never be stored) is a
        # ValidationError, where json.loads raised RecursionError and bare ValueErrors.
        result = AnswerResult.model_validate_json(text)
    except ValidationError as exc:
        raise MalformedModelOutput(f"answer output is not a valid {SCHEMA_NAME}: {exc}") from exc
    steps = {k: v.strip() for k, v in result.disposal_steps.items() if _STEP_KEY.match(k)}
    return AnswerResult(
        disposal_steps={k: v for k, v in steps.items() if v},
        insufficiencies=[i.strip() for i in result.insufficiencies if i.strip()],
        user_answer=result.user_answer.strip(),
    )
