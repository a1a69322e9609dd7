"""Keyword lexicon for simulated vision answers: image URL / file name + user text → class and tags.

Rules (README.md has examples): the text is percent-decoded and lower-cased. English keywords
match whole ASCII words (so ``scan`` never matches ``can``); Korean keywords match as substrings
with spaces removed. The longest matching keyword decides the class; nothing matched gives
``미분류`` with tag ``미분류_전체``. Tags come from their own keywords; a longer tag match hides
shorter ones inside it (``label removed`` does not also give ``label``). Only tags of the taxonomy
are emitted.

An image sent inline (a ``data:`` URL, as the vision stage sends an image it fetched itself) has
no words: its payload is never read for keywords. When the text names no class, the class is
picked from the taxonomy's labels by the SHA-256 of the image's bytes, so the same image always
gets the same answer.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache, cached_property
from typing import Any, Protocol
from urllib.parse import unquote, unquote_to_bytes

RECYCLABLE = "재활용폐기물"
UNCLASSIFIED = "미분류"
UNCLASSIFIED_TAG = "미분류_전체"


class TaxonomyLike(Protocol):
    @property
    def recyclable_middles(self) -> Mapping[str, Sequence[str]]: ...
    @property
    def flat_items(self) -> Mapping[str, Sequence[str]]: ...
    @property
    def situation_tags(self) -> Sequence[str]: ...


@dataclass(frozen=True)
class Label:
    major: str
    middle: str
    minor: str | None = None


# English / romanised words → recyclable middle class or flat major class.
_EN_CLASSES: dict[str, tuple[str, ...]] = {
    "무색페트병": ("pet", "bottle", "pet bottle", "water bottle", "clear pet", "plastic bottle"),
    "금속류": ("can", "cans", "aluminum", "aluminium", "tin", "steel", "metal", "pot", "butane"),
    "종이": ("paper", "box", "cardboard", "newspaper", "book", "paper cup"),
    "종이팩": ("milk carton", "carton", "tetrapak", "tetra pak", "juice box"),
    "플라스틱류": ("plastic", "container", "tray", "plastic container", "food container"),
    "비닐류": ("vinyl", "bag", "film", "plastic bag", "wrap", "plastic film"),
    "발포합성수지": ("styrofoam", "foam", "eps", "styrofoam box", "foam tray"),
    "유리병": ("glass", "soju", "glass bottle", "beer bottle", "wine bottle", "soju bottle"),
    "의류및원단": ("clothes", "clothing", "shirt", "tshirt", "t shirt", "jacket", "pants", "jeans"),
    "전지": ("battery", "batteries"),
    "조명제품": ("fluorescent", "led", "lamp", "bulb", "light bulb"),
    "전기전자제품": ("tv", "phone", "smartphone", "fridge", "refrigerator", "computer", "laptop"),
    "일반종량제폐기물": ("tissue", "trash", "receipt", "rubber glove", "pen"),
    "불연성종량제폐기물": ("ceramic", "brick", "tile", "mirror", "pottery"),
    "음식물류폐기물": ("food", "leftover", "leftovers", "peel", "fruit peel", "vegetable"),
    "대형폐기물": ("furniture", "sofa", "mattress", "desk", "chair", "bed"),
    "공사장생활폐기물": ("construction", "debris", "wallpaper"),
    "생활계유해폐기물": ("paint", "medicine", "pesticide", "pills", "thermometer"),
}
# Extra Korean words (≥ 2 syllables; single syllables such as 캔 hide in ordinary words).
_KO_CLASSES: dict[str, tuple[str, ...]] = {
    "무색페트병": ("페트병", "생수병", "물병"),
    "금속류": ("캔류", "알루미늄", "고철", "부탄가스"),
    "종이": ("종이", "박스", "상자"),
    "종이팩": ("종이팩", "우유팩"),
    "플라스틱류": ("플라스틱",),
    "비닐류": ("비닐",),
    "발포합성수지": ("스티로폼",),
    "유리병": ("유리병", "소주병", "맥주병"),
    "의류및원단": ("의류", "티셔츠"),
    "전지": ("건전지", "배터리"),
    "조명제품": ("형광등",),
    "전기전자제품": ("가전", "휴대폰"),
    "일반종량제폐기물": ("휴지",),
    "음식물류폐기물": ("음식물",),
    "대형폐기물": ("소파", "가구"),
    "생활계유해폐기물": ("의약품", "페인트"),
}
# Situation-tag keywords; the tag names themselves (with and without ``_``) are added too.
_EN_TAGS: dict[str, tuple[str, ...]] = {
    "비닐_라벨_부착": ("label", "labeled", "labelled", "with label"),
    "비닐_라벨_완전_제거됨": ("nolabel", "no label", "label removed", "without label", "unlabeled"),
    "비닐_라벨_부분_제거됨": ("label partly removed", "half label"),
    "오염_심함": ("dirty", "very dirty"),
    "오염_경미": ("slightly dirty",),
    "음식물_오염": ("food stain", "food stained", "stained"),
    "기름기_오염": ("oily", "greasy"),
    "내용물_있음": ("full", "contents", "with contents"),
    "내용물_일부_남음": ("half full", "leftover liquid"),
    "내용물_없음": ("clean", "empty", "rinsed"),
    "뚜껑_닫힘(플라스틱)": ("cap", "capped", "lid"),
    "뚜껑_열림": ("open", "uncapped", "no cap"),
    "찌그러짐": ("crushed", "dented"),
    "깨짐": ("broken", "cracked"),
    "찢어짐": ("torn",),
    "스티로폼_테이프_부착": ("tape", "taped"),
    "가스_잔존_의심": ("gas",),
    "배터리_포함": ("with battery",),
    "전원선_있음": ("cable", "cord"),
    "다수_품목_혼합": ("mixed", "several"),
}
_KO_TAGS: dict[str, tuple[str, ...]] = {
    "비닐_라벨_부착": ("라벨",),
    "비닐_라벨_완전_제거됨": ("라벨제거", "라벨없음", "라벨뗀"),
    "내용물_있음": ("내용물",),
    "내용물_없음": ("헹군", "깨끗한", "비운"),
    "뚜껑_닫힘(플라스틱)": ("뚜껑",),
    "찌그러짐": ("찌그러", "압착"),
    "깨짐": ("깨진", "깨짐"),
    "기름기_오염": ("기름",),
    "음식물_오염": ("음식물묻은", "양념"),
    "스티로폼_테이프_부착": ("테이프",),
}
# Tags whose meaning depends on the class: (tag, middle) → tag for that class.
_TAG_BY_CLASS: dict[tuple[str, str], str] = {
    ("깨짐", "유리병"): "유리병_깨짐",
    ("깨짐", "조명제품"): "깨진_조명기기",
}
_FOAM_ONLY = {"스티로폼_테이프_부착": "이물질_부착"}

_WORD = re.compile(r"[a-z0-9]+")
_DATA_URL = re.compile(r"data:[^,\s]*,\S*")


@dataclass(frozen=True)
class _Text:
    words: tuple[str, ...]
    compact: str


def _prepare(parts: Iterable[str]) -> _Text:
    text = " ".join(_DATA_URL.sub(" ", unquote(p)) for p in parts).lower()
    return _Text(tuple(_WORD.findall(text)), re.sub(r"\s+", "", text))


@dataclass(frozen=True)
class _Match:
    payload: str
    length: int
    span: tuple[int, int, int]  # (space, start, end): space 0 = English words, 1 = Korean chars


def _find(text: _Text, keywords: Mapping[str, str]) -> list[_Match]:
    found: list[_Match] = []
    for keyword, payload in keywords.items():
        if keyword.isascii():
            words = tuple(_WORD.findall(keyword))
            n = len(words)
            for i in range(len(text.words) - n + 1):
                if text.words[i : i + n] == words:
                    found.append(_Match(payload, len(keyword), (0, i, i + n)))
        else:
            start = text.compact.find(keyword)
            while start >= 0:
                found.append(_Match(payload, len(keyword), (1, start, start + len(keyword))))
                start = text.compact.find(keyword, start + 1)
    return sorted(found, key=lambda m: (-m.length, m.span))


@dataclass(frozen=True)
class Lexicon:
    """Keyword → class label and keyword → situation tag, built from one taxonomy."""

    classes: Mapping[str, Label]
    class_keywords: Mapping[str, str]
    tag_keywords: Mapping[str, str]
    situation_tags: frozenset[str]

    def classify(self, parts: Iterable[str], user_input: str) -> dict[str, Any]:
        """The ``vision_result`` object for an image URL / file name and the user's text."""
        images = list(parts)
        text = _prepare([*images, user_input])
        matches = _find(text, self.class_keywords)
        label = self.classes[matches[0].payload] if matches else self._pictured(images)
        tags = self._tags(text, label)
        if label is None:
            label = Label(UNCLASSIFIED, UNCLASSIFIED)
            tags = [UNCLASSIFIED_TAG, *tags] if UNCLASSIFIED_TAG in self.situation_tags else tags
        classification = {
            "major_category": label.major,
            "middle_category": label.middle,
            "minor_category": label.minor,
        }
        return {
            "classification": classification,
            "situation_tags": tags,
            "meta": {"user_input": user_input},
        }

    @cached_property
    def _labels(self) -> tuple[Label, ...]:
        """Every class label once, in a fixed order (what an inline image's hash indexes)."""
        return tuple(sorted(set(self.classes.values()), key=_label_key))

    def _pictured(self, images: Iterable[str]) -> Label | None:
        """The label of the first inline image, by the hash of its bytes; None without one."""
        for image in images:
            data = _inline_bytes(image)
            if data is not None and self._labels:
                digest = hashlib.sha256(data).digest()
                return self._labels[int.from_bytes(digest[:8], "big") % len(self._labels)]
        return None

    def _tags(self, text: _Text, label: Label | None) -> list[str]:
        taken: list[tuple[int, int, int]] = []
        tags: list[str] = []
        for match in _find(text, self.tag_keywords):
            space, start, end = match.span
            if any(s == space and start < e and b < end for s, b, e in taken):
                continue
            taken.append(match.span)
            tag = _specialise(match.payload, label)
            if tag in self.situation_tags and tag not in tags:
                tags.append(tag)
        return tags


def _label_key(label: Label) -> tuple[str, str, str]:
    return (label.major, label.middle, label.minor or "")


def _inline_bytes(url: str) -> bytes | None:
    """The payload of a ``data:`` URL (base64 or percent-encoded); None for any other URL."""
    if url[:5].lower() != "data:":
        return None
    head, _, payload = url.partition(",")
    if head.lower().endswith(";base64"):
        try:
            return base64.b64decode(payload)
        except ValueError:  # binascii.Error too: not base64 after all, hash what was sent
            return payload.encode()
    return unquote_to_bytes(payload)


def _specialise(tag: str, label: Label | None) -> str:
    middle = label.middle if label else ""
    if tag in _FOAM_ONLY and middle != "발포합성수지":
        return _FOAM_ONLY[tag]
    return _TAG_BY_CLASS.get((tag, middle), tag)


def _compact(word: str) -> str:
    return re.sub(r"\s+", "", word.lower())


def build_lexicon(taxonomy: TaxonomyLike) -> Lexicon:
    """Build the lexicon: taxonomy names (items, middles, majors) plus the fixed word lists."""
    classes: dict[str, Label] = {}
    keywords: dict[str, str] = {}

    def add(keyword: str, label: Label) -> None:
        key = keyword.lower() if keyword.isascii() else _compact(keyword)
        # One Korean syllable (철, 컵) hides in ordinary words, so it is no keyword.
        if len(key) >= 2 and key not in keywords:
            keywords[key] = key
            classes[key] = label

    for middle, items in taxonomy.recyclable_middles.items():
        for item in items:
            add(item, Label(RECYCLABLE, middle, item))
    for major, items in taxonomy.flat_items.items():
        for item in items:
            add(item, Label(major, major, item))
    for middle in taxonomy.recyclable_middles:
        add(middle, Label(RECYCLABLE, middle))
    for major in taxonomy.flat_items:
        add(major, Label(major, major))
    for table in (_EN_CLASSES, _KO_CLASSES):
        for target, words in table.items():
            is_flat = target in taxonomy.flat_items
            for word in words:
                add(word, Label(target, target) if is_flat else Label(RECYCLABLE, target))
    return Lexicon(
        classes,
        keywords,
        _tag_keywords(taxonomy.situation_tags),
        frozenset(taxonomy.situation_tags),
    )


def _tag_keywords(situation_tags: Sequence[str]) -> dict[str, str]:
    keywords: dict[str, str] = {}
    for tag in situation_tags:
        keywords.setdefault(_compact(tag), tag)
        keywords.setdefault(_compact(tag.replace("_", "")), tag)
    for table in (_EN_TAGS, _KO_TAGS):
        for tag, words in table.items():
            for word in words:
                keywords.setdefault(word.lower() if word.isascii() else _compact(word), tag)
    return keywords


@cache
def default_lexicon() -> Lexicon:
    """The lexicon of the project's taxonomy (``pipelines.rules.taxonomy``), built once."""
    from pipelines.rules.taxonomy import load_taxonomy

    return build_lexicon(load_taxonomy())
