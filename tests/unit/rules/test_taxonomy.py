from pipelines.rules.taxonomy import RECYCLABLE, UNCLASSIFIED, load_taxonomy

MIDDLES = (
    "종이",
    "종이팩",
    "무색페트병",
    "플라스틱류",
    "비닐류",
    "발포합성수지",
    "유리병",
    "금속류",
    "의류및원단",
    "전지",
    "조명제품",
    "전기전자제품",
)


def test_eight_majors_in_domain_order() -> None:
    assert load_taxonomy().major_categories == (
        RECYCLABLE,
        "일반종량제폐기물",
        "불연성종량제폐기물",
        "음식물류폐기물",
        "대형폐기물",
        "공사장생활폐기물",
        "생활계유해폐기물",
        UNCLASSIFIED,
    )


def test_twelve_middles_with_86_items() -> None:
    taxonomy = load_taxonomy()
    assert tuple(taxonomy.recyclable_middles) == MIDDLES
    assert sum(len(items) for items in taxonomy.recyclable_middles.values()) == 86


def test_flat_items_keep_duplicates_and_add_hazardous() -> None:
    flat = load_taxonomy().flat_items
    assert {major: len(items) for major, items in flat.items()} == {
        "일반종량제폐기물": 38,
        "불연성종량제폐기물": 13,
        "음식물류폐기물": 8,
        "공사장생활폐기물": 6,
        "대형폐기물": 16,
        "생활계유해폐기물": 7,
    }
    assert flat["불연성종량제폐기물"].count("도자기") == 2
    assert "CD · DVD" in flat["일반종량제폐기물"]


def test_labels_are_kept_byte_for_byte() -> None:
    taxonomy = load_taxonomy()
    assert "패트재질의 용기(먹는샘물, 음료 외)" in taxonomy.recyclable_middles["플라스틱류"]
    assert "내용물·오염 상태" in taxonomy.tag_groups
    assert "\u00b7" in "".join(taxonomy.tag_groups)


def test_tags_80_entries_79_unique_first_seen_order() -> None:
    taxonomy = load_taxonomy()
    assert len(taxonomy.tag_groups) == 11
    assert sum(len(tags) for tags in taxonomy.tag_groups.values()) == 80
    tags = taxonomy.situation_tags
    assert len(tags) == len(set(tags)) == 79
    assert tags[0] == "내용물_있음"
    assert tags[-1] == "미분류_전체"
    assert tags.index("유리병_깨짐") == tags.index("깨짐") + 1


def test_is_flat() -> None:
    taxonomy = load_taxonomy()
    assert taxonomy.is_flat("대형폐기물")
    assert taxonomy.is_flat("생활계유해폐기물")
    assert not taxonomy.is_flat(RECYCLABLE)
    assert not taxonomy.is_flat(UNCLASSIFIED)


def test_middle_of_item() -> None:
    taxonomy = load_taxonomy()
    assert taxonomy.middle_of_item("우유팩") == (RECYCLABLE, "종이팩")
    assert taxonomy.middle_of_item("식품용기") == (RECYCLABLE, "플라스틱류")
    assert taxonomy.middle_of_item("가구") == ("대형폐기물", "대형폐기물")
    assert taxonomy.middle_of_item("농약") == ("생활계유해폐기물", "생활계유해폐기물")
    assert taxonomy.middle_of_item("없는물건") is None


def test_load_is_cached() -> None:
    assert load_taxonomy() is load_taxonomy()
