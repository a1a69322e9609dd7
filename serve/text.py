"""Text stage logic for chat: intent classification, the streamed answer's prompt, summaries.

Plain Python (no Ray, no HTTP): the Serve deployment and the unit tests share it. The intents are
domain.md §9.2's ten; the answer speaks as 이코 from the context blocks the pipeline gathered.
"""

from __future__ import annotations

import hashlib
import json
import time
import unicodedata
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any, Literal, get_args

from pydantic import Field, ValidationError

from serve.contracts import Frozen, MalformedModelOutput, json_schema_for, response_format

Intent = Literal[
    "waste",
    "character",
    "location",
    "bulk_waste",
    "recyclable_price",
    "collection_point",
    "weather",
    "web_search",
    "image_generation",
    "general",
]
INTENTS: tuple[str, ...] = get_args(Intent)
INTENT_SCHEMA = "chat_intent"
MAX_ADDITIONAL_INTENTS = 3


class IntentResult(Frozen):
    """``{intent, confidence, reasoning}`` plus the other intents the message also carries."""

    intent: Intent
    confidence: float
    """0-1 (clamped when read: strict schemas carry no numeric bounds)."""
    reasoning: str
    additional_intents: list[Intent] = Field(default_factory=list)


_INTENT_PROMPT = "".join(
    (
        "당신은 분리배출 도우미 앱의 질문 분류기입니다. ",
        "사용자의 메시지가 무엇을 원하는지 고릅니다.\n",
        "의도는 다음 열 가지 중 하나입니다: ",
        "waste(물건을 어떻게 버리는지), character(어떤 캐릭터를 받는지), ",
        "location(가까운 재활용센터·제로웨이스트 가게), ",
        "bulk_waste(대형폐기물 신고와 수수료), recyclable_price(재활용품 시세), ",
        "collection_point(의류·폐건전지·폐형광등·폐휴대폰 수거함), ",
        "weather(날씨에 맞춘 배출 요령), web_search(최신 뉴스·정책), ",
        "image_generation(그림·인포그래픽 생성), general(그 밖의 대화).\n",
        "intent 에 가장 중요한 의도 하나, additional_intents 에 메시지에 함께 들어 있는 ",
        "다른 의도(최대 3개, 없으면 빈 배열)를 적습니다.\n",
        "confidence 는 0에서 1 사이 확신도, reasoning 은 한 문장 근거입니다. ",
        "설명 없이 JSON 하나만 답합니다.",
    )
)


def normalise(message: str) -> str:
    """The message as the intent cache keys it: NFKC, case-folded, whitespace collapsed."""
    return " ".join(unicodedata.normalize("NFKC", message).casefold().split())


def intent_cache_key(message: str, model: str) -> str:
    digest = hashlib.sha256(f"{model}\n{normalise(message)}".encode()).hexdigest()
    return f"chat:intent:{digest}"


def intent_messages(message: str) -> list[dict[str, Any]]:
    return [
        {"role": "system", "content": _INTENT_PROMPT},
        {"role": "user", "content": message},
    ]


def intent_format() -> dict[str, Any]:
    return response_format(INTENT_SCHEMA, json_schema_for(IntentResult))


def parse_intent(text: str) -> IntentResult:
    """The typed classification; the main intent is dropped from the additional ones, which are
    de-duplicated and capped. Raises :class:`MalformedModelOutput` for anything else."""
    try:
        result = IntentResult.model_validate_json(text)  # raises only ValidationError
    except ValidationError as exc:
        raise MalformedModelOutput(f"intent output is not a valid {INTENT_SCHEMA}: {exc}") from exc
    extra = [i for i in dict.fromkeys(result.additional_intents) if i != result.intent]
    confidence = min(1.0, max(0.0, result.confidence))
    return result.model_copy(
        update={"additional_intents": extra[:MAX_ADDITIONAL_INTENTS], "confidence": confidence}
    )


_ANSWER_PROMPT = "".join(
    (
        "당신은 분리배출 도우미 '이코'입니다. 친구에게 말하듯 짧고 다정한 한국어로 답합니다.\n",
        "마지막 사용자 메시지에 답하세요. 함께 주어지는 JSON 의 chat_context 는 ",
        "도구들이 모은 사실입니다. 사실은 거기 있는 것만 쓰고, missing 에 적힌 정보는 ",
        "지금 알 수 없다고 솔직히 말합니다. 가격에는 조사 시점을 함께 말합니다.\n",
        "분리배출과 상관없는 질문이면 부드럽게 분리배출 이야기로 돌아옵니다. ",
        "다섯 문장을 넘기지 않습니다.",
    )
)


def answer_messages(
    message: str,
    context: Mapping[str, Any],
    history: Sequence[Mapping[str, str]] = (),
    summary: str | None = None,
) -> list[dict[str, Any]]:
    """The answer call: persona, the conversation so far (its summary, then the recent turns),
    and the user's message with the gathered context as one JSON block."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": _ANSWER_PROMPT}]
    if summary:
        messages.append({"role": "system", "content": f"지금까지의 대화 요약: {summary}"})
    messages += [{"role": t["role"], "content": t["content"]} for t in history]
    block = json.dumps({"chat_context": dict(context)}, ensure_ascii=False)
    messages.append({"role": "user", "content": f"{message}\n\n{block}"})
    return messages


_SUMMARY_PROMPT = (
    "다음 대화를 나중에 이어서 답할 수 있도록 세 문장 이내의 한국어로 요약하세요. 사용자가 물어본 "
    "물건, 지역, 아직 답하지 못한 것을 남기고 인사말은 뺍니다."
)


def summary_messages(
    turns: Sequence[Mapping[str, str]], previous: str | None
) -> list[dict[str, Any]]:
    lines = [f"{t['role']}: {t['content']}" for t in turns]
    if previous:
        lines.insert(0, f"(이전 요약) {previous}")
    return [
        {"role": "system", "content": _SUMMARY_PROMPT},
        {"role": "user", "content": "\n".join(lines)},
    ]


async def coalesce(
    deltas: AsyncIterator[str], every_s: float, clock: Callable[[], float] = time.monotonic
) -> AsyncIterator[str]:
    """``deltas`` regrouped: the first at once, then what arrived since the last chunk whenever
    ``every_s`` has passed (checked as each delta arrives), and the rest at the end. Never
    waits for more than the stream itself does; the text is unchanged."""
    held: list[str] = []
    last: float | None = None
    async for delta in deltas:
        held.append(delta)
        now = clock()
        if last is None or now - last >= every_s:
            yield "".join(held)
            held.clear()
            last = now
    if held:
        yield "".join(held)
