"""The location use cases: start-up preparation and the four read queries.

A radius query asks the GEO index for candidates (a metre of slack, so geohash rounding cannot
drop a site on the edge), fetches and filters their rows in one SQL query, and lets the model
decide the exact distance, radius and order. An index that vanished (a restarted Valkey) is
rebuilt on the first query that finds it missing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from domains.location import views
from domains.location.geo import GeoIndex
from domains.location.model import (
    MAX_RADIUS_M,
    SEARCH_LIMIT,
    SUGGEST_LIMIT,
    CategoryFilter,
    Clock,
    Site,
    haversine_m,
    limit_for_zoom,
    nearest,
    now_in_seoul,
)
from domains.location.repository import SiteRepository

INDEX_SLACK_M = 1.0
NO_FILTER = CategoryFilter()


@dataclass(frozen=True)
class Prepared:
    sites: int
    index_rebuilt: bool


class Locations:
    """The location read side over its repository, GEO index and clock."""

    def __init__(self, repository: SiteRepository, index: GeoIndex, clock: Clock) -> None:
        self._repository = repository
        self._index = index
        self._clock = clock
        self._rebuilding = asyncio.Lock()

    async def prepare(self, dataset: Callable[[], Sequence[Site]]) -> Prepared:
        """Load ``dataset()`` into an empty table, then make the GEO index match the table."""
        sites = await self._repository.ensure_loaded(dataset)
        return Prepared(sites, await self.ensure_index())

    async def ensure_index(self) -> bool:
        """Rebuild the GEO index unless it matches the table; return whether it was rebuilt."""
        async with self._rebuilding:
            size, fingerprint = await self._repository.fingerprint()
            if await self._index.is_current(fingerprint, size):
                return False
            await self._index.rebuild(await self._repository.coordinates(), fingerprint)
            return True

    async def _candidates(self, lat: float, lon: float, radius_m: float) -> list[int]:
        hits = await self._index.within(lat, lon, radius_m + INDEX_SLACK_M)
        if not hits and not await self._index.exists() and await self.ensure_index():
            hits = await self._index.within(lat, lon, radius_m + INDEX_SLACK_M)
        return [site_id for site_id, _ in hits]

    async def centers(
        self,
        lat: float,
        lon: float,
        radius_m: float,
        zoom: int | None,
        categories: CategoryFilter,
    ) -> list[views.CenterOut]:
        """Sites within ``radius_m`` matching ``categories``, nearest first, limited by zoom."""
        limit = limit_for_zoom(zoom)
        ids = await self._candidates(lat, lon, radius_m)
        sites = await self._repository.among(ids, categories, limit=limit)
        now = now_in_seoul(self._clock)
        found = nearest(sites, lat, lon, radius_m, limit)
        return [views.center(n.site, now, n.meters) for n in found]

    async def search(
        self,
        terms: Sequence[str],
        position: tuple[float, float] | None,
        radius_m: float | None,
    ) -> list[views.CenterOut]:
        """Sites whose name or address contains every term: nearest first within ``radius_m``
        (default the largest radius) around ``position``, else best name match first."""
        now = now_in_seoul(self._clock)
        if position is None:
            sites = await self._repository.search(terms, limit=SEARCH_LIMIT)
            return [views.center(site, now, None) for site in sites]
        lat, lon = position
        radius = MAX_RADIUS_M if radius_m is None else radius_m
        ids = await self._candidates(lat, lon, radius)
        sites = await self._repository.among(ids, NO_FILTER, terms, limit=SEARCH_LIMIT)
        found = nearest(sites, lat, lon, radius, SEARCH_LIMIT)
        return [views.center(n.site, now, n.meters) for n in found]

    async def suggest(self, terms: Sequence[str]) -> list[views.SuggestionOut]:
        """A few sites for an autocomplete list, names starting with the first term first."""
        sites = await self._repository.search(terms, limit=SUGGEST_LIMIT)
        return [views.suggestion(site) for site in sites]

    async def detail(
        self, site_id: int, position: tuple[float, float] | None
    ) -> views.CenterDetailOut | None:
        """One site with its lot address, items and introduction; ``None`` when unknown."""
        site = await self._repository.get(site_id)
        if site is None:
            return None
        meters = None
        if position is not None:
            meters = haversine_m(position[0], position[1], site.latitude, site.longitude)
        return views.center_detail(site, now_in_seoul(self._clock), meters)
