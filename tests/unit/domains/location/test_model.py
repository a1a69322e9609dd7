"""The location rules: distances, opening hours, zoom limits, category and search filters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from domains.location.model import (
    EARTH_RADIUS_M,
    MAX_QUERY_CHARS,
    MAX_SEARCH_TERMS,
    SEOUL_TZ,
    CategoryFilter,
    OpeningHours,
    PickupCategory,
    Site,
    Source,
    StoreCategory,
    UnknownCategory,
    distance_km,
    format_distance,
    haversine_m,
    limit_for_zoom,
    matches_terms,
    nearest,
    now_in_seoul,
    search_terms,
)

# 2025-06-02 is a Monday.
MONDAY_NOON = datetime(2025, 6, 2, 12, 0, tzinfo=SEOUL_TZ)


def site(
    site_id: int = 1,
    *,
    lat: float = 37.5665,
    lon: float = 126.9780,
    store: StoreCategory = StoreCategory.REFILL_ZERO,
    pickups: tuple[PickupCategory, ...] = (PickupCategory.CLEAR_PET,),
    name: str = "초록 리필스테이션",
) -> Site:
    return Site(
        id=site_id,
        name=name,
        source=Source.ZEROWASTE_MAP,
        store_category=store,
        pickup_categories=pickups,
        road_address="서울특별시 마포구 월드컵로 12",
        lot_address="서울특별시 마포구 망원동 12-3",
        latitude=lat,
        longitude=lon,
        phone="02-123-4567",
        hours=OpeningHours("10:00", "19:00"),
    )


@pytest.mark.parametrize(
    ("meters", "text"),
    [
        (0, "0m"),
        (849.6, "850m"),
        (999.4, "999m"),
        (999.6, "1.0km"),
        (1000, "1.0km"),
        (1234, "1.2km"),
        (1250, "1.2km"),
        (12_345, "12.3km"),
    ],
)
def test_format_distance(meters: float, text: str) -> None:
    assert format_distance(meters) == text


def test_distance_km_keeps_metres() -> None:
    assert distance_km(850.4) == 0.85
    assert distance_km(1234.5678) == 1.235


def test_haversine_matches_the_sphere() -> None:
    one_degree = EARTH_RADIUS_M * 3.141592653589793 / 180
    assert haversine_m(37.0, 127.0, 38.0, 127.0) == pytest.approx(one_degree)
    assert haversine_m(37.5, 127.0, 37.5, 127.0) == 0
    there = haversine_m(37.5665, 126.978, 37.4979, 127.0276)
    back = haversine_m(37.4979, 127.0276, 37.5665, 126.978)
    assert there == pytest.approx(back)
    # Seoul City Hall to Gangnam Station is about 8.8 km as the crow flies.
    assert 8_500 < there < 9_100


def test_zoom_maps_to_a_limit_that_grows_when_zooming_in() -> None:
    limits = [limit_for_zoom(z) for z in range(1, 21)]
    assert limits == sorted(limits)
    assert limits[0] == 20
    assert limits[-1] == 300
    assert limit_for_zoom(None) == 100


@pytest.mark.parametrize("zoom", [0, 21, -3])
def test_zoom_out_of_bounds_is_refused(zoom: int) -> None:
    with pytest.raises(ValueError, match="between 1 and 20"):
        limit_for_zoom(zoom)


def test_category_filter_parses_comma_separated_values() -> None:
    parsed = CategoryFilter.parse(" refill_zero, CAFE_BAKERY ,", "can")
    assert parsed.store == {StoreCategory.REFILL_ZERO, StoreCategory.CAFE_BAKERY}
    assert parsed.pickup == {PickupCategory.CAN}
    assert CategoryFilter.parse(None, "") == CategoryFilter()


def test_unknown_category_lists_the_allowed_values() -> None:
    with pytest.raises(UnknownCategory) as raised:
        CategoryFilter.parse("refill_zero,bakery", None)
    message = str(raised.value)
    assert "store_category 'bakery'" in message
    for value in StoreCategory:
        assert value.value in message
    with pytest.raises(UnknownCategory, match=r"pickup_category 'batteries'.*clear_pet"):
        CategoryFilter.parse(None, "batteries")


def test_category_filter_matches_any_store_and_any_pickup() -> None:
    refill = site(pickups=(PickupCategory.CAN, PickupCategory.GLASS))
    assert CategoryFilter().matches(refill)
    assert CategoryFilter.parse("refill_zero,lodging", None).matches(refill)
    assert not CategoryFilter.parse("lodging", None).matches(refill)
    assert CategoryFilter.parse(None, "glass,textile").matches(refill)
    assert not CategoryFilter.parse(None, "textile").matches(refill)
    assert not CategoryFilter.parse("refill_zero", "textile").matches(refill)


def at(day: int, hhmm: str) -> datetime:
    """Seoul time on 2025-06-0<day+2> (day 0 = Monday)."""
    hours, minutes = (int(part) for part in hhmm.split(":"))
    return datetime(2025, 6, 2 + day, hours, minutes, tzinfo=SEOUL_TZ)


def test_opening_hours_during_the_day() -> None:
    hours = OpeningHours("10:00", "19:00", frozenset({0}))
    assert not hours.is_open(at(1, "09:59"))
    assert hours.is_open(at(1, "10:00"))
    assert hours.is_open(at(1, "18:59"))
    assert not hours.is_open(at(1, "19:00"))
    assert not hours.is_open(at(0, "12:00")), "closed on Mondays"
    assert hours.is_holiday(at(0, "12:00"))
    assert not hours.is_holiday(at(1, "12:00"))


def test_opening_hours_past_midnight_belong_to_the_day_they_start() -> None:
    hours = OpeningHours("18:00", "02:00", frozenset({6}))
    assert hours.is_open(at(5, "23:30"))
    assert hours.is_open(at(6, "01:30")), "Saturday night runs into Sunday"
    assert not hours.is_open(at(6, "18:30")), "closed on Sundays"
    assert not hours.is_open(at(0, "01:30")), "Sunday was closed, so no late hours on Monday"
    assert not hours.is_open(at(1, "02:00"))
    assert not hours.is_open(at(1, "12:00"))


def test_around_the_clock_and_unknown_hours() -> None:
    assert OpeningHours("00:00", "24:00").is_open(at(3, "03:00"))
    assert OpeningHours("00:00", "24:00").is_open(at(3, "23:59"))
    assert OpeningHours("09:00", "09:00").is_open(at(3, "03:00"))
    assert not OpeningHours(None, None).is_open(MONDAY_NOON)
    assert not OpeningHours(None, None).is_holiday(MONDAY_NOON)


def test_opening_hours_are_evaluated_in_seoul_time() -> None:
    hours = OpeningHours("10:00", "19:00")
    utc_02 = datetime(2025, 6, 3, 2, 0, tzinfo=UTC)  # 11:00 in Seoul
    assert hours.is_open(utc_02)
    utc_11 = datetime(2025, 6, 3, 11, 0, tzinfo=UTC)  # 20:00 in Seoul
    assert not hours.is_open(utc_11)
    sunday_utc = datetime(2025, 6, 8, 20, 0, tzinfo=UTC)  # Monday 05:00 in Seoul
    assert OpeningHours("10:00", "19:00", frozenset({0})).is_holiday(sunday_utc)


def test_now_in_seoul_takes_naive_times_as_seoul_time() -> None:
    naive = datetime(2025, 6, 2, 12, 0)
    assert now_in_seoul(lambda: naive) == MONDAY_NOON
    assert now_in_seoul(lambda: MONDAY_NOON.astimezone(UTC)).utcoffset() == timedelta(hours=9)


@pytest.mark.parametrize(
    ("start", "end", "closed", "problem"),
    [
        ("10:00", None, (), "both start and end"),
        ("25:00", "26:00", (), "between 00:00 and 24:00"),
        ("10:61", "11:00", (), "between 00:00 and 24:00"),
        ("10:00", "11:00", (7,), "closed_weekdays"),
    ],
)
def test_invalid_opening_hours_are_refused(
    start: str | None, end: str | None, closed: tuple[int, ...], problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        OpeningHours(start, end, frozenset(closed))


def test_closed_days_are_named() -> None:
    assert OpeningHours("09:00", "18:00", frozenset({6, 5})).closed_days == ["sat", "sun"]


def test_nearest_cuts_exactly_at_the_radius_and_sorts() -> None:
    origin = (37.5, 127.0)
    metre_in_lat = 1 / (EARTH_RADIUS_M * 3.141592653589793 / 180)
    inside = site(1, lat=37.5 + 999.9 * metre_in_lat, lon=127.0)
    outside = site(2, lat=37.5 + 1000.1 * metre_in_lat, lon=127.0)
    close = site(3, lat=37.5 + 10 * metre_in_lat, lon=127.0)
    tie = site(4, lat=37.5 - 10 * metre_in_lat, lon=127.0)
    found = nearest([outside, inside, tie, close], *origin, radius_m=1000, limit=10)
    assert [n.site.id for n in found] == [3, 4, 1]
    assert found[0].meters == pytest.approx(10)
    assert [n.site.id for n in nearest([inside, tie, close], *origin, 1000, 2)] == [3, 4]


def test_search_terms_split_dedupe_and_cap() -> None:
    assert search_terms("  마포  리필 마포 ") == ("마포", "리필")
    assert len(search_terms(" ".join(f"w{i}" for i in range(9)))) == MAX_SEARCH_TERMS
    with pytest.raises(ValueError, match="at least one word"):
        search_terms("   ")
    with pytest.raises(ValueError, match="at most"):
        search_terms("x" * (MAX_QUERY_CHARS + 1))


def test_matches_terms_looks_in_name_and_both_addresses() -> None:
    shop = site(name="Green Refill 상점")
    assert matches_terms(shop, ["green", "마포구"])
    assert matches_terms(shop, ["망원동", "REFILL"])
    assert not matches_terms(shop, ["green", "강남구"])


def test_categories_are_the_compat_values() -> None:
    assert [c.value for c in StoreCategory] == [
        "refill_zero",
        "cafe_bakery",
        "vegan_dining",
        "upcycle_recycle",
        "book_workshop",
        "market_mart",
        "lodging",
        "public_dropbox",
        "general",
    ]
    assert [c.value for c in PickupCategory] == [
        "clear_pet",
        "colored_pet",
        "can",
        "paper",
        "plastic",
        "glass",
        "textile",
        "electronics",
        "general",
    ]
