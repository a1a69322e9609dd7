from __future__ import annotations

import pytest

from model_sim.lexicon import Lexicon, default_lexicon


@pytest.fixture(scope="module")
def lexicon() -> Lexicon:
    return default_lexicon()


@pytest.mark.parametrize(
    ("url", "text", "major", "middle", "minor"),
    [
        (
            "https://cdn.example/scan/clear-pet-bottle-label.jpg",
            "",
            "재활용폐기물",
            "무색페트병",
            None,
        ),
        ("https://cdn.example/scan/aluminum-can.jpg", "", "재활용폐기물", "금속류", None),
        ("https://x/%EC%86%8C%EC%A3%BC%EB%B3%91.png", "", "재활용폐기물", "유리병", "소주병"),
        ("https://x/%EC%9A%B0%EC%9C%A0%ED%8C%A9.jpg", "", "재활용폐기물", "종이팩", "우유팩"),
        ("https://x/milk-carton.jpg", "", "재활용폐기물", "종이팩", None),
        ("https://x/plastic-bag.jpg", "", "재활용폐기물", "비닐류", None),
        ("https://x/styrofoam_box_tape.jpg", "", "재활용폐기물", "발포합성수지", None),
        ("https://x/old-sofa.jpg", "", "대형폐기물", "대형폐기물", None),
        ("https://x/leftover.jpg", "", "음식물류폐기물", "음식물류폐기물", None),
        (
            "https://x/photo.jpg",
            "깨진 도자기 접시예요",
            "불연성종량제폐기물",
            "불연성종량제폐기물",
            "도자기",
        ),
        # "paint" is longer than "can": paint cans are household hazardous waste (domain.md 5.3.8).
        ("https://x/paint-can.jpg", "", "생활계유해폐기물", "생활계유해폐기물", None),
        ("https://x/medicine.jpg", "", "생활계유해폐기물", "생활계유해폐기물", None),
    ],
)
def test_classifies_by_the_longest_keyword(
    lexicon: Lexicon, url: str, text: str, major: str, middle: str, minor: str | None
) -> None:
    result = lexicon.classify([url], text)

    assert result["classification"] == {
        "major_category": major,
        "middle_category": middle,
        "minor_category": minor,
    }
    assert result["meta"] == {"user_input": text}


def test_scan_in_a_path_is_not_the_word_can(lexicon: Lexicon) -> None:
    result = lexicon.classify(["https://cdn.example/scan/IMG_0001.jpg"], "")

    assert result["classification"]["major_category"] == "미분류"
    assert result["situation_tags"] == ["미분류_전체"]


@pytest.mark.parametrize(
    ("url", "tags"),
    [
        ("https://x/clear-pet-bottle-label.jpg", ["비닐_라벨_부착"]),
        (
            "https://x/pet-bottle-label-removed-crushed-cap.jpg",
            ["비닐_라벨_완전_제거됨", "찌그러짐", "뚜껑_닫힘(플라스틱)"],
        ),
        ("https://x/pet-bottle-nolabel-empty.jpg", ["비닐_라벨_완전_제거됨", "내용물_없음"]),
        ("https://x/broken-glass-bottle.jpg", ["유리병_깨짐"]),
        ("https://x/styrofoam-tape.jpg", ["스티로폼_테이프_부착"]),
        ("https://x/plastic-container-tape.jpg", ["이물질_부착"]),
        ("https://x/butane-gas.jpg", ["가스_잔존_의심"]),
        ("https://x/oily-food-stain-container.jpg", ["음식물_오염", "기름기_오염"]),
    ],
)
def test_situation_tags_from_keywords(lexicon: Lexicon, url: str, tags: list[str]) -> None:
    assert sorted(lexicon.classify([url], "")["situation_tags"]) == sorted(tags)


def test_korean_tag_names_in_the_user_text(lexicon: Lexicon) -> None:
    result = lexicon.classify(["https://x/a.jpg"], "페트병인데 내용물_있음 그리고 뚜껑_열림")

    assert result["classification"]["middle_category"] == "무색페트병"
    assert set(result["situation_tags"]) == {"내용물_있음", "뚜껑_열림"}


def test_only_taxonomy_tags_are_emitted(lexicon: Lexicon) -> None:
    result = lexicon.classify(["https://x/dirty-oily-broken-label-can-gas-cap-tape.jpg"], "")

    assert set(result["situation_tags"]) <= lexicon.situation_tags


def test_data_urls_are_not_read(lexicon: Lexicon) -> None:
    # Read as words, "bottle" (the longer keyword) would beat the text's "paint".
    result = lexicon.classify(["data:image/png;base64,can-bottle-paper"], "paint")

    assert result["classification"]["major_category"] == "생활계유해폐기물"
