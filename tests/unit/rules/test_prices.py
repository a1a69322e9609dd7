"""The recyclable price table (domain.md §9.4): items, synonyms, regions, the survey month."""

from __future__ import annotations

from pipelines.rules.prices import items_in, quote, region_in


def test_synonyms_expand_to_the_surveyed_items() -> None:
    assert items_in("캔 팔래") == ["철캔", "알루미늄캔"]
    assert items_in("유리병") == ["백색유리", "갈색유리", "청녹색유리"]
    assert items_in("알루미늄캔만") == ["알루미늄캔"]  # an item name beats the shortcut


def test_regions_share_their_columns_and_default_to_the_national_average() -> None:
    assert region_in("전남에서") == region_in("강원도") == "강원/전남"
    assert region_in("아무데나") == "전국평균"


def test_a_quote_carries_prices_and_the_survey_month() -> None:
    answer = quote("부산 말고 경남 PET 가격")
    assert answer.survey_month == "2025-01"
    assert [(q.item, q.price) for q in answer.quotes] == [("PET", 350)]
