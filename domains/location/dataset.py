"""The GENERATED location dataset: invented sites laid over real Seoul-area geography.

NOT real data. No entry describes an existing shop or bin: names are combinations of common words,
house numbers and phone numbers are random, coordinates are scattered around real district
centres. The districts, neighbourhood (동) names, road names and telephone area codes are real
(:mod:`domains.location.places`) so that addresses read like Korean addresses. The dataset stands
in for the real sources the original service used — KECO 자원순환가게 (recycling-compensation
shops) and a zero-waste map — plus district-run public collection bins.

:func:`generate` is deterministic: the same ``seed`` and ``size`` give the same sites, ids
``1..size``, on every machine and Python version (only ``random.Random`` with an int seed).
``place_url`` is a Kakao Map link that drops a pin at the site's coordinates (it names no real
Kakao place); ``kakao_place_id`` is left empty because no site is a real Kakao place.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, replace
from typing import TypeVar
from urllib.parse import quote

from domains.location.model import (
    OpeningHours,
    PickupCategory,
    Site,
    Source,
    StoreCategory,
)
from domains.location.places import DISTRICTS, LAT_BOUNDS, LON_BOUNDS, District

T = TypeVar("T")
P = PickupCategory
S = StoreCategory

_SOURCE_SHARE = ((Source.KECO, 35), (Source.ZEROWASTE_MAP, 40), (Source.DISTRICT, 25))
_ZEROWASTE_SHARE = (
    (S.REFILL_ZERO, 30),
    (S.CAFE_BAKERY, 18),
    (S.VEGAN_DINING, 12),
    (S.UPCYCLE_RECYCLE, 12),
    (S.BOOK_WORKSHOP, 8),
    (S.MARKET_MART, 10),
    (S.LODGING, 4),
    (S.GENERAL, 6),
)
_PREFIXES = (
    "초록", "지구별", "담음", "채움", "숲속", "다시봄", "온새미", "햇살", "푸른결", "소반", "알찬",
    "도란", "늘봄", "바람결", "모두의", "작은숲", "한아름", "나무그늘", "이음", "솔빛", "달빛",
    "마실", "새싹", "물결", "살림", "오롯", "고운", "되살림", "빈그릇", "두레",
)  # fmt: skip
_NAME_PATTERNS: dict[StoreCategory, tuple[str, ...]] = {
    S.REFILL_ZERO: ("{p} 리필스테이션", "{p} 제로웨이스트샵", "{p}상점", "리필숍 {p}"),
    S.CAFE_BAKERY: ("카페 {p}", "{p} 베이커리", "{p} 커피로스터스", "{p} 다방"),
    S.VEGAN_DINING: ("{p} 비건키친", "채식식당 {p}", "{p} 식탁", "{p} 비건 분식"),
    S.UPCYCLE_RECYCLE: ("{p} 업사이클 공방", "다시쓰는 {p}", "{p} 새활용 스튜디오"),
    S.BOOK_WORKSHOP: ("{p} 책방", "{p} 공방", "책과 {p}", "{p} 헌책방"),
    S.MARKET_MART: ("{p} 마켓", "{p} 생활협동조합 매장", "{p} 동네마트"),
    S.LODGING: ("{p} 게스트하우스", "{p} 스테이", "한옥스테이 {p}"),
    S.GENERAL: ("{p} 생활용품점", "{p} 잡화점", "{p} 리빙"),
}
_PICKUP_POOLS: dict[StoreCategory, tuple[PickupCategory, ...]] = {
    S.REFILL_ZERO: (P.CLEAR_PET, P.PAPER, P.PLASTIC, P.GLASS, P.CAN),
    S.CAFE_BAKERY: (P.PAPER, P.CLEAR_PET, P.PLASTIC),
    S.VEGAN_DINING: (P.GLASS, P.PAPER, P.PLASTIC),
    S.UPCYCLE_RECYCLE: (P.TEXTILE, P.PLASTIC, P.CLEAR_PET, P.COLORED_PET, P.GENERAL),
    S.BOOK_WORKSHOP: (P.PAPER, P.TEXTILE, P.GENERAL),
    S.MARKET_MART: (P.CLEAR_PET, P.CAN, P.PAPER, P.GLASS, P.COLORED_PET),
    S.LODGING: (P.CLEAR_PET, P.CAN, P.GLASS),
    S.GENERAL: (P.PLASTIC, P.GENERAL, P.ELECTRONICS),
}
_ITEM_TEXT: dict[PickupCategory, str] = {
    P.CLEAR_PET: "투명 페트병(내용물 비우고 라벨 제거 후 압착)",
    P.COLORED_PET: "유색 페트병",
    P.CAN: "알루미늄·철 캔",
    P.PAPER: "종이팩·멸균팩(헹궈서 말린 것)",
    P.PLASTIC: "병뚜껑 등 깨끗한 소형 플라스틱",
    P.GLASS: "빈 유리병(소주·맥주병 포함)",
    P.TEXTILE: "헌 옷·원단 자투리",
    P.ELECTRONICS: "폐건전지·소형 폐가전",
    P.GENERAL: "기타 재활용품(방문 전 문의)",
}
_KECO_PATTERNS = ("{d} 자원순환가게", "자원순환가게 {d}점", "{d} 순환자원 회수센터")
_KECO_HOSTS = (
    (S.UPCYCLE_RECYCLE, 50),
    (S.MARKET_MART, 30),
    (S.GENERAL, 20),
)
_BINS: tuple[tuple[str, tuple[PickupCategory, ...]], ...] = (
    ("{d} 투명페트병 전용수거함", (P.CLEAR_PET,)),
    ("{d} 의류수거함", (P.TEXTILE,)),
    ("{d} 행정복지센터 폐건전지·소형가전 수거함", (P.ELECTRONICS,)),
    ("{d} 재활용 정거장", (P.CLEAR_PET, P.CAN, P.PAPER, P.PLASTIC, P.GLASS, P.COLORED_PET)),
    ("{d} 공공 분리배출함", (P.CAN, P.PAPER, P.PLASTIC, P.GENERAL)),
)
_SCATTER_DEG = (0.011, 0.014)
"""Standard deviation of a site's offset from its district centre (about 1.2 km each way)."""
_MAX_OFFSET_DEG = (0.03, 0.038)


@dataclass(frozen=True)
class _Place:
    district: District
    dong: str
    latitude: float
    longitude: float


def generate(seed: int, size: int) -> list[Site]:
    """``size`` invented sites with ids ``1..size``, the same for the same ``seed``."""
    rng = random.Random(seed)
    names: Counter[str] = Counter()
    sites = []
    for site_id in range(1, size + 1):
        place = _place(rng)
        source = _weighted(rng, _SOURCE_SHARE)
        if source is Source.KECO:
            site = _keco_shop(rng, site_id, place)
        elif source is Source.ZEROWASTE_MAP:
            site = _zerowaste_shop(rng, site_id, place)
        else:
            site = _public_bin(rng, site_id, place)
        sites.append(_unique_name(site, names))
    return sites


def _weighted(rng: random.Random, table: tuple[tuple[T, int], ...]) -> T:
    return rng.choices([item for item, _ in table], [weight for _, weight in table])[0]


def _place(rng: random.Random) -> _Place:
    district = rng.choices(DISTRICTS, [d.weight for d in DISTRICTS])[0]
    lat = district.latitude + _bounded_gauss(rng, _SCATTER_DEG[0], _MAX_OFFSET_DEG[0])
    lon = district.longitude + _bounded_gauss(rng, _SCATTER_DEG[1], _MAX_OFFSET_DEG[1])
    lat = min(max(lat, LAT_BOUNDS[0]), LAT_BOUNDS[1])
    lon = min(max(lon, LON_BOUNDS[0]), LON_BOUNDS[1])
    return _Place(district, rng.choice(district.dongs), round(lat, 6), round(lon, 6))


def _bounded_gauss(rng: random.Random, sigma: float, limit: float) -> float:
    return min(max(rng.gauss(0.0, sigma), -limit), limit)


def _road_address(rng: random.Random, district: District) -> str:
    road = rng.choice(district.roads)
    if rng.random() < 0.55:
        return f"{district.prefix} {road} {rng.randint(1, 320)}"
    return f"{district.prefix} {road}{rng.randint(1, 40)}길 {rng.randint(1, 90)}"


def _lot_address(rng: random.Random, place: _Place) -> str:
    main = rng.randint(1, 999)
    lot = f"{main}-{rng.randint(1, 60)}" if rng.random() < 0.7 else str(main)
    return f"{place.district.prefix} {place.dong} {lot}"


def _phone(rng: random.Random, district: District) -> str:
    middle = rng.randint(200, 999) if rng.random() < 0.5 else rng.randint(2000, 9999)
    return f"{district.area_code}-{middle}-{rng.randint(0, 9999):04d}"


def _pickups(
    rng: random.Random, pool: tuple[PickupCategory, ...], low: int, high: int
) -> tuple[PickupCategory, ...]:
    chosen = rng.sample(pool, rng.randint(low, min(high, len(pool))))
    return tuple(sorted(chosen, key=list(PickupCategory).index))


def _place_url(name: str, lat: float, lon: float) -> str:
    return f"https://map.kakao.com/link/map/{quote(name)},{lat},{lon}"


def _keco_shop(rng: random.Random, site_id: int, place: _Place) -> Site:
    name = rng.choice(_KECO_PATTERNS).format(d=place.dong)
    host = _weighted(rng, _KECO_HOSTS)
    pool = (P.CLEAR_PET, P.CAN, P.PAPER, P.COLORED_PET, P.GLASS)
    weekend_off = rng.random() < 0.5
    hours = OpeningHours(
        *rng.choice((("09:00", "18:00"), ("10:00", "19:00"), ("10:00", "22:00"))),
        closed_weekdays=frozenset({5, 6} if weekend_off else {6}),
    )
    pickups = _pickups(rng, pool, 2, 4)
    intro = (
        f"{place.district.name} {place.dong}의 자원순환가게입니다. 깨끗하게 분리한 "
        f"{', '.join(_ITEM_TEXT[p].split('(')[0] for p in pickups)}을(를) 가져오시면 "
        "무게나 개수에 따라 포인트로 보상해 드립니다."
    )
    return _site(rng, site_id, place, name, Source.KECO, host, pickups, hours, intro)


def _zerowaste_shop(rng: random.Random, site_id: int, place: _Place) -> Site:
    category = _weighted(rng, _ZEROWASTE_SHARE)
    name = rng.choice(_NAME_PATTERNS[category]).format(p=rng.choice(_PREFIXES))
    pickups = _pickups(rng, _PICKUP_POOLS[category], 1, 3)
    hours = _shop_hours(rng, category)
    intro = (
        f"{place.dong}에 있는 {_CATEGORY_TEXT[category]}입니다. 다회용기를 가져오시면 "
        f"할인해 드리고, {_ITEM_TEXT[pickups[0]].split('(')[0]} 등을 회수합니다."
    )
    return _site(rng, site_id, place, name, Source.ZEROWASTE_MAP, category, pickups, hours, intro)


_CATEGORY_TEXT: dict[StoreCategory, str] = {
    S.REFILL_ZERO: "세제·샴푸를 덜어 파는 리필 가게",
    S.CAFE_BAKERY: "개인 컵을 환영하는 카페",
    S.VEGAN_DINING: "채식 메뉴를 내는 식당",
    S.UPCYCLE_RECYCLE: "버려진 소재로 물건을 만드는 새활용 공방",
    S.BOOK_WORKSHOP: "헌책과 공방 수업이 있는 동네 책방",
    S.MARKET_MART: "포장 없는 장보기를 할 수 있는 가게",
    S.LODGING: "일회용품 없는 숙소",
    S.GENERAL: "친환경 생활용품을 파는 가게",
}


def _shop_hours(rng: random.Random, category: StoreCategory) -> OpeningHours:
    if category is S.LODGING:
        return OpeningHours("00:00", "24:00")
    if category is S.CAFE_BAKERY:
        start, end = rng.choice((("08:00", "22:00"), ("09:00", "21:00"), ("12:00", "01:00")))
    elif category is S.VEGAN_DINING:
        start, end = rng.choice((("11:30", "21:30"), ("11:00", "20:00")))
    else:
        start, end = rng.choice((("10:00", "19:00"), ("11:00", "20:00"), ("10:30", "21:00")))
    closed = rng.choice((frozenset({0}), frozenset({0}), frozenset({6}), frozenset()))
    return OpeningHours(start, end, closed)


def _public_bin(rng: random.Random, site_id: int, place: _Place) -> Site:
    pattern, pool = rng.choice(_BINS)
    pickups = _pickups(rng, pool, max(1, len(pool) - 2), len(pool))
    if "행정복지센터" in pattern:
        hours = OpeningHours("09:00", "18:00", frozenset({5, 6}))
    else:
        hours = OpeningHours("00:00", "24:00")
    intro = (
        f"{place.district.name}에서 운영하는 공공 수거함입니다. 정해진 품목만 넣어 주세요: "
        f"{', '.join(_ITEM_TEXT[p] for p in pickups)}."
    )
    name = pattern.format(d=place.dong)
    return _site(
        rng, site_id, place, name, Source.DISTRICT, S.PUBLIC_DROPBOX, pickups, hours, intro
    )


def _site(
    rng: random.Random,
    site_id: int,
    place: _Place,
    name: str,
    source: Source,
    category: StoreCategory,
    pickups: tuple[PickupCategory, ...],
    hours: OpeningHours,
    introduction: str,
) -> Site:
    has_phone = source is not Source.DISTRICT or rng.random() < 0.3
    return Site(
        id=site_id,
        name=name,
        source=source,
        store_category=category,
        pickup_categories=pickups,
        road_address=_road_address(rng, place.district),
        lot_address=_lot_address(rng, place),
        latitude=place.latitude,
        longitude=place.longitude,
        phone=_phone(rng, place.district) if has_phone else None,
        hours=hours,
        collection_items=tuple(_ITEM_TEXT[p] for p in pickups),
        introduction=introduction,
        place_url=_place_url(name, place.latitude, place.longitude),
    )


def _unique_name(site: Site, seen: Counter[str]) -> Site:
    """Number repeated names like chains do (``… 2호점``); the first keeps its plain name."""
    seen[site.name] += 1
    count = seen[site.name]
    if count == 1:
        return site
    name = f"{site.name} {count}호점"
    return replace(site, name=name, place_url=_place_url(name, site.latitude, site.longitude))
