"""The location domain's rules: categories, distances, opening hours, result limits.

Plain Python (no FastAPI, asyncpg or Valkey). The adapters push some of these rules down for
speed — the repository filters categories and search terms in SQL, Valkey pre-selects sites by
radius — but the definitions live here and the integration tests check that both agree.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from enum import StrEnum
from typing import TypeVar

SEOUL_TZ = timezone(timedelta(hours=9), "KST")
"""Korea keeps one offset all year (no daylight saving), so no tz database is needed."""

EARTH_RADIUS_M = 6372797.560856
"""The sphere Valkey's GEO commands use, so a distance here matches ``GEOSEARCH``'s."""

MIN_RADIUS_M = 100
MAX_RADIUS_M = 50_000
DEFAULT_RADIUS_M = 3_000
MIN_ZOOM = 1
MAX_ZOOM = 20
DEFAULT_LIMIT = 100
"""Result limit of a radius query without ``zoom``."""
MAX_QUERY_CHARS = 100
MAX_SEARCH_TERMS = 5
SEARCH_LIMIT = 50
SUGGEST_LIMIT = 10

Clock = Callable[[], datetime]
E = TypeVar("E", bound=StrEnum)


class StoreCategory(StrEnum):
    """What kind of place a site is."""

    REFILL_ZERO = "refill_zero"
    CAFE_BAKERY = "cafe_bakery"
    VEGAN_DINING = "vegan_dining"
    UPCYCLE_RECYCLE = "upcycle_recycle"
    BOOK_WORKSHOP = "book_workshop"
    MARKET_MART = "market_mart"
    LODGING = "lodging"
    PUBLIC_DROPBOX = "public_dropbox"
    GENERAL = "general"


class PickupCategory(StrEnum):
    """What a site takes back."""

    CLEAR_PET = "clear_pet"
    COLORED_PET = "colored_pet"
    CAN = "can"
    PAPER = "paper"
    PLASTIC = "plastic"
    GLASS = "glass"
    TEXTILE = "textile"
    ELECTRONICS = "electronics"
    GENERAL = "general"


class Source(StrEnum):
    """Where an entry comes from (in the generated dataset: which real source it imitates)."""

    KECO = "keco"
    """자원순환가게: recycling-compensation shops (Korea Environment Corporation)."""
    ZEROWASTE_MAP = "zerowaste_map"
    """A zero-waste map of refill shops, cafés and workshops."""
    DISTRICT = "district"
    """Public collection bins run by a district office."""


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
"""Index = ``datetime.weekday()``."""


class UnknownCategory(ValueError):
    """A category parameter named a value outside its enumeration; the message lists them."""


def now_in_seoul(clock: Clock) -> datetime:
    """``clock()`` as Seoul local time (a naive result is taken to be Seoul time already)."""
    now = clock()
    if now.tzinfo is None:
        return now.replace(tzinfo=SEOUL_TZ)
    return now.astimezone(SEOUL_TZ)


def _minutes(hhmm: str) -> int:
    hours, _, minutes = hhmm.partition(":")
    value = int(hours) * 60 + int(minutes)
    if not 0 <= value <= 24 * 60 or not 0 <= int(minutes) < 60:
        raise ValueError(f"{hhmm!r} is not a time of day between 00:00 and 24:00")
    return value


@dataclass(frozen=True)
class OpeningHours:
    """Daily opening hours ``start``–``end`` (``"HH:MM"``, ``"24:00"`` allowed as an end), closed
    on ``closed_weekdays`` (``0`` = Monday). ``end`` before ``start`` means open past midnight;
    those hours belong to the day they started. No hours at all means "unknown": never open."""

    start: str | None
    end: str | None
    closed_weekdays: frozenset[int] = frozenset()

    def __post_init__(self) -> None:
        if (self.start is None) != (self.end is None):
            raise ValueError("give both start and end, or neither")
        if self.start is not None and self.end is not None:
            _minutes(self.start)
            _minutes(self.end)
        if not self.closed_weekdays <= frozenset(range(7)):
            raise ValueError("closed_weekdays are 0 (Monday) .. 6 (Sunday)")

    def is_holiday(self, now: datetime) -> bool:
        """Whether ``now``'s day (Seoul time) is a regular closing day."""
        return now_in_seoul(lambda: now).weekday() in self.closed_weekdays

    def is_open(self, now: datetime) -> bool:
        """Whether the site is open at ``now`` (any time zone; evaluated in Seoul time)."""
        if self.start is None or self.end is None:
            return False
        local = now_in_seoul(lambda: now)
        minute = local.hour * 60 + local.minute
        start, end = _minutes(self.start), _minutes(self.end)
        today = local.weekday()
        if start < end:
            return today not in self.closed_weekdays and start <= minute < end
        if start == end:  # the same start and end: open around the clock on open days
            return today not in self.closed_weekdays
        yesterday = (today - 1) % 7
        if minute >= start:
            return today not in self.closed_weekdays
        return minute < end and yesterday not in self.closed_weekdays

    @property
    def closed_days(self) -> list[str]:
        return [WEEKDAYS[day] for day in sorted(self.closed_weekdays)]


@dataclass(frozen=True)
class Site:
    """One place on the map: a shop, a recycling-compensation shop or a public bin."""

    id: int
    name: str
    source: Source
    store_category: StoreCategory
    pickup_categories: tuple[PickupCategory, ...]
    road_address: str
    lot_address: str | None
    latitude: float
    longitude: float
    phone: str | None
    hours: OpeningHours
    collection_items: tuple[str, ...] = ()
    introduction: str = ""
    place_url: str | None = None
    kakao_place_id: str | None = None


@dataclass(frozen=True)
class CategoryFilter:
    """Which sites a caller wants: any of ``store`` (empty = every kind) that takes back any of
    ``pickup`` (empty = anything)."""

    store: frozenset[StoreCategory] = field(default_factory=frozenset)
    pickup: frozenset[PickupCategory] = field(default_factory=frozenset)

    @classmethod
    def parse(cls, store: str | None, pickup: str | None) -> CategoryFilter:
        """Parse comma-separated query values; raises :class:`UnknownCategory` naming the
        allowed values when one is not a category."""
        return cls(
            _parse_values(store, StoreCategory, "store_category"),
            _parse_values(pickup, PickupCategory, "pickup_category"),
        )

    def matches(self, site: Site) -> bool:
        if self.store and site.store_category not in self.store:
            return False
        return not self.pickup or not self.pickup.isdisjoint(site.pickup_categories)


def _parse_values(raw: str | None, kind: type[E], name: str) -> frozenset[E]:
    if raw is None:
        return frozenset()
    values: set[E] = set()
    for item in (part.strip().lower() for part in raw.split(",")):
        if not item:
            continue
        try:
            values.add(kind(item))
        except ValueError:
            allowed = ", ".join(member.value for member in kind)
            raise UnknownCategory(
                f"unknown {name} {item[:40]!r}: use one or more (comma-separated) of {allowed}"
            ) from None
    return frozenset(values)


def limit_for_zoom(zoom: int | None) -> int:
    """How many sites a radius query returns at a map ``zoom`` (web-map levels, 1 = the whole
    world, 20 = a building). Zoomed out, a screen covers many sites and a few markers are enough;
    zoomed in, every site in view can be shown."""
    if zoom is None:
        return DEFAULT_LIMIT
    if not MIN_ZOOM <= zoom <= MAX_ZOOM:
        raise ValueError(f"zoom must be between {MIN_ZOOM} and {MAX_ZOOM}")
    if zoom <= 8:
        return 20
    if zoom <= 11:
        return 50
    if zoom <= 14:
        return 100
    if zoom <= 17:
        return 200
    return 300


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres on the sphere of :data:`EARTH_RADIUS_M`."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    d_phi, d_lambda = phi2 - phi1, math.radians(lon2 - lon1)
    a = math.sin(d_phi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(d_lambda / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def format_distance(meters: float) -> str:
    """``"850m"`` below a kilometre (whole metres), ``"1.2km"`` from there (one decimal)."""
    whole = round(meters)
    if whole < 1000:
        return f"{whole}m"
    return f"{whole / 1000:.1f}km"


def distance_km(meters: float) -> float:
    return round(meters / 1000, 3)


@dataclass(frozen=True)
class Nearby:
    site: Site
    meters: float


def nearest(
    sites: Iterable[Site], lat: float, lon: float, radius_m: float, limit: int
) -> list[Nearby]:
    """The sites within ``radius_m`` of (``lat``, ``lon``), nearest first (ties by id), at most
    ``limit``. Exact: a candidate list from an index may hold a few sites just outside."""
    found = [Nearby(s, haversine_m(lat, lon, s.latitude, s.longitude)) for s in sites]
    inside = [n for n in found if n.meters <= radius_m]
    inside.sort(key=lambda n: (n.meters, n.site.id))
    return inside[:limit]


def search_terms(query: str) -> tuple[str, ...]:
    """The words of a search query (a site matches when its name or addresses contain every
    one, ignoring case). Raises ``ValueError`` on an empty or over-long query."""
    if len(query) > MAX_QUERY_CHARS:
        raise ValueError(f"q is at most {MAX_QUERY_CHARS} characters")
    terms = tuple(dict.fromkeys(query.split()))
    if not terms:
        raise ValueError("q needs at least one word, e.g. q=리필 or q=마포구")
    return terms[:MAX_SEARCH_TERMS]


def matches_terms(site: Site, terms: Sequence[str]) -> bool:
    """The search rule: every term occurs in the name, road address or lot address."""
    haystack = " ".join((site.name, site.road_address, site.lot_address or "")).casefold()
    return all(term.casefold() in haystack for term in terms)
