"""Deterministic answers per call kind, and fitting them to the JSON schema that was asked for."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

from model_sim.config import CallKind

VISION_SCHEMA = "vision_result"
ANSWER_SCHEMA = "answer_result"
INTENT_SCHEMA = "chat_intent"


_SHAPES: tuple[tuple[CallKind, frozenset[str]], ...] = (
    (CallKind.VISION, frozenset({"classification", "situation_tags"})),
    (CallKind.ANSWER, frozenset({"disposal_steps", "user_answer"})),
    (CallKind.INTENT, frozenset({"intent", "confidence"})),
)


def detect_kind(
    schema_name: str | None, has_image: bool, schema_keys: Iterable[str] = ()
) -> CallKind:
    """vision (schema ``vision_result`` or an image), answer, intent, else text.

    The schema name decides; a schema under another name (the SDK's ``parse`` names it after the
    pydantic class) is recognised by its top-level property names.
    """
    if schema_name == VISION_SCHEMA or has_image:
        return CallKind.VISION
    if schema_name == ANSWER_SCHEMA:
        return CallKind.ANSWER
    if schema_name == INTENT_SCHEMA:
        return CallKind.INTENT
    keys = frozenset(schema_keys)
    return next((kind for kind, shape in _SHAPES if shape <= keys), CallKind.TEXT)


# ---- intent (domain.md §9.2); checked in this order, first hit wins ----
_INTENT_WORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("image_generation", ("그려", "그림", "이미지 생성", "인포그래픽", "draw", "generate image")),
    ("character", ("캐릭터", "character", "보상", "수집")),
    ("bulk_waste", ("대형폐기물", "대형 폐기물", "가구", "소파", "매트리스", "스티커", "bulky")),
    ("recyclable_price", ("가격", "시세", "얼마", "원/kg", "price", "고물")),
    ("collection_point", ("수거함", "의류수거", "폐건전지", "폐형광등", "collection")),
    ("location", ("근처", "주변", "가까운", "어디", "위치", "재활용센터", "nearby", "where")),
    ("weather", ("날씨", "비 오", "눈 오", "기온", "weather", "rain")),
    ("web_search", ("최신", "뉴스", "정책", "바뀐", "news", "policy", "latest")),
    ("waste", ("버려", "버리", "분리배출", "배출", "재활용", "쓰레기", "recycle", "dispose")),
)


def intent_of(text: str) -> dict[str, Any]:
    """``{"intent", "confidence", "reasoning", "additional_intents"}`` by keywords: the first
    group that matches is the intent, the next ones (up to 3) the additional intents; ``general``
    when nothing matches."""
    lowered = text.lower()
    hits = [
        (intent, hit)
        for intent, words in _INTENT_WORDS
        if (hit := next((w for w in words if w in lowered), None)) is not None
    ]
    if not hits:
        return {
            "intent": "general",
            "confidence": 0.6,
            "reasoning": "시뮬레이터: 특정 키워드가 없어 일반 대화로 판단했어요.",
            "additional_intents": [],
        }
    (intent, hit), others = hits[0], hits[1:4]
    return {
        "intent": intent,
        "confidence": 0.9,
        "reasoning": f"시뮬레이터: '{hit}' 키워드로 {intent} 의도로 판단했어요.",
        "additional_intents": [name for name, _ in others],
    }


# ---- answer (domain.md §7.2) ----
def find_context(texts: Sequence[str]) -> dict[str, Any] | None:
    """The first JSON object in the texts that has a ``classification`` key, else None."""
    decoder = json.JSONDecoder()
    for text in texts:
        for match in re.finditer(r"\{", text):
            try:
                value, _ = decoder.raw_decode(text, match.start())
            except ValueError:
                continue
            if isinstance(value, dict) and "classification" in value:
                return value
    return None


def disposal_answer(texts: Sequence[str]) -> dict[str, Any]:
    """``answer_result``: the rule's common steps, one sentence per fault tag, a short answer."""
    context = find_context(texts)
    if context is None:
        return {
            "disposal_steps": {},
            "insufficiencies": [],
            "user_answer": "사진 속 물건을 알려 주시면 분리배출 방법을 안내해 드릴게요.",
        }
    classification = context.get("classification") or {}
    middle = str(
        classification.get("middle_category") or classification.get("major_category") or ""
    )
    rule = context.get("disposal_rule") or {}
    steps = _steps(rule)
    tags = [str(t) for t in context.get("situation_tags") or []]
    faults = _insufficiencies(tags, middle)
    first = f"{middle}(으)로 분리배출해 주세요." if middle else "안내에 따라 분리배출해 주세요."
    second = (
        "배출 전에 아래 미흡한 부분을 먼저 고쳐 주세요." if faults else "단계대로 배출하면 돼요."
    )
    return {"disposal_steps": steps, "insufficiencies": faults, "user_answer": f"{first} {second}"}


def _steps(rule: Any) -> dict[str, str]:
    if not isinstance(rule, dict):
        return {}
    steps = [str(s) for s in rule.get("common_steps") or []]
    if not steps:
        for group in (rule.get("group_steps") or {}).values():
            steps.extend(str(s) for s in group)
    return {f"단계{i}": step for i, step in enumerate(steps[:10], start=1)}


def _insufficiencies(tags: list[str], middle: str) -> list[str]:
    from pipelines.rules.tags import fault_tags, insufficiency_text

    return [insufficiency_text(tag) for tag in fault_tags(tags, middle)]


# ---- chat ----
def find_chat_context(texts: Sequence[str]) -> dict[str, Any] | None:
    """The ``chat_context`` object the chat pipeline puts after the user's message, if any."""
    decoder = json.JSONDecoder()
    for text in texts:
        start = text.find('{"chat_context"')
        if start < 0:
            continue
        try:
            value, _ = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict) and isinstance(value.get("chat_context"), dict):
            return dict(value["chat_context"])
    return None


def _fact_sentences(facts: dict[str, Any]) -> list[str]:
    said: list[str] = []
    rules = facts.get("disposal_rules") or {}
    if rules.get("steps"):
        said.append(f"{rules.get('middle_category', '이 물건')}은(는) {rules['steps'][0]}")
    elif rules.get("note"):
        said.append(str(rules["note"]))
    prices = facts.get("price_context") or {}
    for quote in prices.get("quotes", [])[:3]:
        said.append(
            f"{quote['item']}은(는) {quote['region']} 기준 kg당 {quote['price']}원이에요 "
            f"({prices.get('survey_month')} 조사)"
        )
    for place in (facts.get("location_context") or {}).get("places", [])[:2]:
        said.append(f"{place['name']}이(가) {place.get('distance_km')}km 거리에 있어요")
    for box in (facts.get("collection_point_context") or {}).get("bins", [])[:1]:
        said.append(f"가까운 수거함은 {box['name']}이에요")
    bulky = facts.get("bulk_waste_context") or {}
    if bulky:
        said.append(f"{bulky.get('item')} 배출 수수료는 {bulky.get('fee_won')}원이에요")
    weather = facts.get("weather_context") or {}
    if weather:
        said.append(
            f"오늘 날씨는 {weather.get('sky')}, 강수 확률 {weather.get('rain_chance')}%예요"
        )
    character = facts.get("character_context") or {}
    if character:
        said.append(f"이 물건으로는 {character.get('name')} 캐릭터를 만날 수 있어요")
    for result in (facts.get("web_search_context") or {}).get("results", [])[:1]:
        said.append(f"검색해 보니 '{result.get('title')}'라는 안내가 있어요")
    image = facts.get("image_context") or {}
    if image:
        said.append(f"그림을 만들었어요: {image.get('image_url')}")
    return said


def chat_answer(context: dict[str, Any]) -> str:
    """이코's answer from the gathered context: one sentence per fact, then what is missing."""
    sentences = ["안녕, 이코야!"]
    sentences += [f"{s}." for s in _fact_sentences(context.get("facts") or {})]
    missing = [str(m) for m in context.get("missing") or []]
    if missing:
        sentences.append(f"다만 지금은 {', '.join(missing)} 정보를 알 수 없어요.")
    if len(sentences) == 1:
        sentences.append("분리배출에 대해 궁금한 걸 더 물어봐 줘.")
    sentences.append("(시뮬레이터 응답)")
    return " ".join(sentences)


# ---- text ----
def text_reply(text: str) -> str:
    """A short deterministic Korean reply (the persona 이코, marked as simulated)."""
    topic = text.strip().splitlines()[0][:40] if text.strip() else "분리배출"
    return f"안녕하세요, 이코예요! '{topic}'에 대해 도와드릴게요. (시뮬레이터 응답)"


# ---- schema fitting ----
def fit_to_schema(value: Any, schema: dict[str, Any], defs: dict[str, Any] | None = None) -> Any:
    """Make ``value`` fit ``schema``: fill required keys, drop unknown keys, fix wrong types.

    Handles the subset pydantic and strict OpenAI schemas use: object/array/string/number/
    integer/boolean/null, ``enum``, ``anyOf``, ``$ref`` to ``#/$defs/...``.
    """
    defs = schema.get("$defs", {}) if defs is None else defs
    if "$ref" in schema:
        return fit_to_schema(value, defs.get(schema["$ref"].rsplit("/", 1)[-1], {}), defs)
    if "anyOf" in schema:
        return _fit_any_of(value, schema["anyOf"], defs)
    if "enum" in schema:
        return value if value in schema["enum"] else schema["enum"][0]
    kind = schema.get("type")
    if isinstance(kind, list):
        return _fit_any_of(value, [{**schema, "type": t} for t in kind], defs)
    if kind == "object":
        return _fit_object(value if isinstance(value, dict) else {}, schema, defs)
    if kind == "array":
        items = schema.get("items", {})
        return [fit_to_schema(v, items, defs) for v in value] if isinstance(value, list) else []
    return _fit_scalar(value, kind)


def _fit_object(value: dict[str, Any], schema: dict[str, Any], defs: dict[str, Any]) -> Any:
    props: dict[str, Any] = schema.get("properties", {})
    extra = schema.get("additionalProperties", not props)
    out: dict[str, Any] = {}
    for key, sub in props.items():
        if key in value or key in schema.get("required", ()):
            out[key] = fit_to_schema(value.get(key), sub, defs)
    for key, item in value.items():
        if key not in props and extra is not False:
            out[key] = fit_to_schema(item, extra, defs) if isinstance(extra, dict) else item
    return out


def _fit_any_of(value: Any, options: list[dict[str, Any]], defs: dict[str, Any]) -> Any:
    for option in options:
        if _matches(value, option, defs):
            return fit_to_schema(value, option, defs)
    if any(o.get("type") == "null" for o in options):
        return None
    return fit_to_schema(value, options[0], defs)


_PY_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}


def _matches(value: Any, schema: dict[str, Any], defs: dict[str, Any]) -> bool:
    if "$ref" in schema:
        return _matches(value, defs.get(schema["$ref"].rsplit("/", 1)[-1], {}), defs)
    kind = schema.get("type")
    if kind == "null":
        return value is None
    if kind in ("integer", "number") and isinstance(value, bool):
        return False
    return isinstance(kind, str) and isinstance(value, _PY_TYPES.get(kind, ()))


def _fit_scalar(value: Any, kind: Any) -> Any:
    if kind is None or _matches(value, {"type": kind}, {}):
        return value
    defaults: dict[str, Any] = {"string": "", "integer": 0, "number": 0.0, "boolean": False}
    if kind == "string" and value is not None:
        return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return defaults.get(kind)
