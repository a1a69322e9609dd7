"""The generated dataset: deterministic, well-formed, inside the Seoul area."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from domains.location.dataset import generate
from domains.location.model import CategoryFilter, PickupCategory, Site, Source, StoreCategory
from domains.location.places import DISTRICTS, LAT_BOUNDS, LON_BOUNDS

PHONE = re.compile(r"^0(2|31|32)-\d{3,4}-\d{4}$")


@pytest.fixture(scope="module")
def sites() -> list[Site]:
    return generate(2025, 3000)


def test_same_seed_same_sites(sites: list[Site]) -> None:
    assert generate(2025, 3000) == sites
    assert generate(2026, 3000) != sites
    assert generate(2025, 10) == sites[:10], "a smaller size is a prefix of a larger one"


def test_ids_are_one_to_size(sites: list[Site]) -> None:
    assert [s.id for s in sites] == list(range(1, 3001))


def test_sites_lie_in_the_seoul_area(sites: list[Site]) -> None:
    for s in sites:
        assert LAT_BOUNDS[0] <= s.latitude <= LAT_BOUNDS[1]
        assert LON_BOUNDS[0] <= s.longitude <= LON_BOUNDS[1]
    seoul = sum(s.road_address.startswith("서울특별시 ") for s in sites)
    assert 0.7 < seoul / len(sites) < 0.9


def test_every_kind_is_represented(sites: list[Site]) -> None:
    assert set(Counter(s.source for s in sites)) == set(Source)
    assert set(Counter(s.store_category for s in sites)) == set(StoreCategory)
    assert set().union(*(s.pickup_categories for s in sites)) == set(PickupCategory)
    bins = [s for s in sites if s.store_category is StoreCategory.PUBLIC_DROPBOX]
    assert bins
    assert all(s.source is Source.DISTRICT for s in bins)


def test_entries_are_well_formed(sites: list[Site]) -> None:
    prefixes = tuple(f"{d.prefix} " for d in DISTRICTS)
    for s in sites:
        assert s.name.strip()
        assert s.road_address.startswith(prefixes)
        assert s.lot_address is not None
        assert s.lot_address.startswith(prefixes)
        assert s.phone is None or PHONE.match(s.phone), s.phone
        assert s.pickup_categories
        assert len(set(s.pickup_categories)) == len(s.pickup_categories)
        assert len(s.collection_items) == len(s.pickup_categories)
        assert s.introduction
        assert s.hours.start is not None
        assert s.place_url is not None
        assert s.place_url.startswith("https://map.kakao.com/link/map/")
        assert s.kakao_place_id is None


def test_keco_shops_are_closed_on_sundays(sites: list[Site]) -> None:
    keco = [s for s in sites if s.source is Source.KECO]
    assert keco
    assert all(6 in s.hours.closed_weekdays for s in keco)
    assert "자원순환가게" in " ".join(s.name for s in keco)


def test_repeated_names_are_numbered(sites: list[Site]) -> None:
    names = Counter(s.name for s in sites)
    assert max(names.values()) == 1
    assert any("호점" in s.name for s in sites)


def test_filters_find_real_matches(sites: list[Site]) -> None:
    clear_pet = CategoryFilter.parse(None, "clear_pet")
    assert 0 < sum(clear_pet.matches(s) for s in sites) < len(sites)
