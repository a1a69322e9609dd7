import pytest

from pipelines.rules.tags import (
    CAP_CLOSED,
    FAULT_TAGS,
    REROUTE_TAGS,
    fault_tags,
    insufficiency_text,
)
from pipelines.rules.taxonomy import load_taxonomy


def test_fault_and_reroute_tags_are_known_tags() -> None:
    known = set(load_taxonomy().situation_tags)
    assert known >= FAULT_TAGS
    assert known >= set(REROUTE_TAGS)
    assert CAP_CLOSED in known


def test_fault_tag_membership_follows_the_roles() -> None:
    assert len(FAULT_TAGS) == 28
    for tag in ("내용물_없음", "오염_경미", "세척_불가_구조", "비닐_라벨_완전_제거됨", CAP_CLOSED):
        assert tag not in FAULT_TAGS
    for tag in (
        "내용물_있음",
        "비닐_라벨_부착",
        "압착_필요",
        "스티로폼_테이프_부착",
        "세트_묶음_필요",
    ):
        assert tag in FAULT_TAGS


def test_fault_tags_keeps_order_and_drops_others() -> None:
    tags = ["플라스틱_재질", "세척_필요", "내용물_없음", "비닐_라벨_부착", "세척_필요"]
    assert fault_tags(tags, "플라스틱류") == ["세척_필요", "비닐_라벨_부착"]


def test_closed_cap_is_correct_for_clear_pet() -> None:
    assert fault_tags([CAP_CLOSED], "무색페트병") == []
    assert fault_tags([CAP_CLOSED], "플라스틱류") == [CAP_CLOSED]


@pytest.mark.parametrize("tag", sorted(FAULT_TAGS | {CAP_CLOSED}))
def test_every_fault_has_a_friendly_sentence(tag: str) -> None:
    text = insufficiency_text(tag)
    assert text.endswith(("요.", "요!"))
    assert "잘했" not in text


def test_insufficiency_text_rejects_non_fault_tags() -> None:
    with pytest.raises(KeyError):
        insufficiency_text("내용물_없음")


def test_reroutes() -> None:
    assert REROUTE_TAGS["유리병_깨짐"] == "불연성종량제폐기물"
    assert REROUTE_TAGS["오염된_배달용기"] == "일반종량제폐기물"
    assert REROUTE_TAGS["대형가전_의심"] == "대형폐기물"
    assert "무상수거대상_전기전자제품" not in REROUTE_TAGS
