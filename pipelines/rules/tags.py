"""Roles of the situation tags (domain.md section 4, "Tag roles") [proposal].

Fault tags turn into insufficiencies, which block the reward; re-routing tags change where the item
goes instead. This gives a deterministic check next to the answer model's free text.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType

CAP_CLOSED = "뚜껑_닫힘(플라스틱)"

# Short friendly sentences, one per fault tag; never praise.
_FAULT_TEXTS: Mapping[str, str] = MappingProxyType(
    {
        "내용물_있음": "안에 내용물이 남아 있어요. 먼저 비워 주세요.",
        "내용물_일부_남음": "내용물이 조금 남아 있어요. 끝까지 비워 주세요.",
        "오염_중간": "오염이 꽤 있어요. 물로 헹궈 주세요.",
        "오염_심함": "오염이 심해요. 깨끗이 씻어 주세요.",
        "음식물_오염": "음식물이 묻어 있어요. 헹궈서 내놓아 주세요.",
        "기름기_오염": "기름기가 묻어 있어요. 세제로 씻어 주세요.",
        "세제_OR화학물질_오염": "세제나 화학물질이 묻어 있어요. 깨끗이 헹궈 주세요.",
        "건조된_오염": "말라붙은 얼룩이 있어요. 불려서 씻어 주세요.",
        "음식물_잔여물_많음": "음식물 찌꺼기가 많아요. 비우고 헹궈 주세요.",
        "세척_필요": "한 번 헹궈야 해요.",
        "건조_필요": "물기가 남아 있어요. 말린 뒤 내놓아 주세요.",
        "냄새_OR_부패_의심": "상한 냄새가 날 수 있어요. 비우고 씻어 주세요.",
        "비닐_라벨_부착": "비닐 라벨이 붙어 있어요. 떼어 주세요.",
        "비닐_라벨_부분_제거됨": "라벨이 조금 남아 있어요. 마저 떼어 주세요.",
        "비닐_라벨_제거_필요": "비닐 라벨을 떼어 주세요.",
        CAP_CLOSED: "플라스틱 뚜껑이 닫혀 있어요. 분리해서 따로 내놓아 주세요.",
        "뚜껑_분리_필요": "뚜껑을 분리해 주세요.",
        "부속품_있음": "다른 재질의 부속품이 있어요. 떼어 주세요.",
        "부속품_여럿_있음": "부속품이 여러 개 붙어 있어요. 모두 떼어 주세요.",
        "부속품_분리_필요": "부속품을 분리해 주세요.",
        "이물질_부착": "이물질이 붙어 있어요. 떼어 내 주세요.",
        "압착_필요": "눌러서 부피를 줄여 주세요.",
        "펼침_필요": "납작하게 펼쳐 주세요.",
        "스티로폼_부착물_있음": "스티로폼에 다른 재질이 붙어 있어요. 떼어 주세요.",
        "스티로폼_테이프_부착": "스티로폼에 테이프가 붙어 있어요. 떼어 주세요.",
        "스티로폼_부착물_제거_필요": "스티로폼의 스티커와 테이프를 떼어 주세요.",
        "가스_잔존_의심": "가스가 남아 있을 수 있어요. 노즐을 눌러 끝까지 빼 주세요.",
        "가스제거_필요": "남은 가스를 완전히 빼 주세요.",
        "세트_묶음_필요": "짝이 있는 것은 함께 묶어 주세요.",
    }
)

FAULT_TAGS: frozenset[str] = frozenset(_FAULT_TEXTS) - {CAP_CLOSED}
"""Tags that are always a preparation fault (28). ``뚜껑_닫힘(플라스틱)`` is rule-dependent."""

# Middles whose rule says to take attachments / other materials off; a closed plastic cap is a
# fault there. 무색페트병 asks for the opposite (close the cap); other rules say nothing about caps.
_CAP_REMOVAL_MIDDLES = frozenset({"종이", "종이팩", "플라스틱류", "발포합성수지"})

REROUTE_TAGS: Mapping[str, str] = MappingProxyType(
    {
        "유리병_깨짐": "불연성종량제폐기물",
        "깨진_조명기기": "불연성종량제폐기물",
        "오염된_배달용기": "일반종량제폐기물",
        "복합재질_확정": "일반종량제폐기물",
        "대형_폐기물_의심": "대형폐기물",
        "대형가전_의심": "대형폐기물",
        "배터리_포함": "전기전자제품",
    }
)
"""Tag -> destination major (or middle, for 배터리_포함: remove it or treat as 전기전자제품)."""


def is_cap_fault(middle_category: str) -> bool:
    """Whether ``뚜껑_닫힘(플라스틱)`` counts as a fault under the rule of ``middle_category``."""
    return middle_category in _CAP_REMOVAL_MIDDLES


def fault_tags(tags: Iterable[str], middle_category: str) -> list[str]:
    """The fault tags among ``tags``, in input order and without duplicates.

    ``뚜껑_닫힘(플라스틱)`` is included only where the matched rule asks to remove attachments
    (never for 무색페트병, whose rule says to close the cap). Unknown tags are ignored.
    """
    cap_is_fault = is_cap_fault(middle_category)
    found = (t for t in tags if t in FAULT_TAGS or (t == CAP_CLOSED and cap_is_fault))
    return list(dict.fromkeys(found))


def insufficiency_text(tag: str) -> str:
    """A short friendly Korean sentence for a fault tag (including ``뚜껑_닫힘(플라스틱)``).

    Raises ``KeyError`` for any other tag.
    """
    try:
        return _FAULT_TEXTS[tag]
    except KeyError:
        raise KeyError(f"not a fault tag: {tag!r}") from None
