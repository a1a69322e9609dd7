"""The location domain's adapter on its own database (``eco2_location``, table ``location_sites``).

The dataset is loaded once: :meth:`SiteRepository.ensure_loaded` inserts the generated sites
only into an empty table, under a transaction-scoped advisory lock, so any number of concurrent
starters load it exactly once. Reads push the model's filters down into SQL (same semantics as
:meth:`domains.location.model.CategoryFilter.matches` and :func:`~domains.location.model.
matches_terms`). A database that cannot be reached becomes :class:`eco2.errors.Unavailable`
(retriable); any other driver error is a bug and stays one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from domains.location.model import (
    CategoryFilter,
    OpeningHours,
    PickupCategory,
    Site,
    Source,
    StoreCategory,
)
from eco2.errors import Unavailable
from eco2.http import STORE_UNREACHABLE

UNREACHABLE: tuple[type[Exception], ...] = (OSError, *STORE_UNREACHABLE)
"""A store (this database, or the Valkey GEO index) that cannot be reached: retry shortly."""

_LOAD_LOCK = 0x10CA7E
"""Advisory lock id of the dataset load (per database, so only location starters share it)."""

_COLUMNS = (
    "id",
    "name",
    "source",
    "store_category",
    "pickup_categories",
    "road_address",
    "lot_address",
    "latitude",
    "longitude",
    "phone",
    "start_time",
    "end_time",
    "closed_weekdays",
    "collection_items",
    "introduction",
    "place_url",
    "kakao_place_id",
)
_SELECT = ", ".join(f"s.{column}" for column in _COLUMNS)

_BY_IDS = f"""
SELECT {_SELECT}
FROM unnest($1::bigint[]) WITH ORDINALITY AS g(id, ord)
JOIN location_sites s ON s.id = g.id
WHERE (cardinality($2::text[]) = 0 OR s.store_category = ANY($2::text[]))
  AND (cardinality($3::text[]) = 0 OR s.pickup_categories && $3::text[])
  AND NOT EXISTS (SELECT 1 FROM unnest($4::text[]) p WHERE s.search_text NOT LIKE p)
ORDER BY g.ord
LIMIT $5
"""

_SEARCH = f"""
SELECT {_SELECT}
FROM location_sites s
WHERE NOT EXISTS (SELECT 1 FROM unnest($1::text[]) p WHERE s.search_text NOT LIKE p)
ORDER BY (lower(s.name) LIKE $2) DESC, length(s.name), s.id
LIMIT $3
"""

_FINGERPRINT = """
SELECT count(*)::bigint AS n,
       coalesce(md5(string_agg(id || ':' || latitude || ':' || longitude, ',' ORDER BY id)), '')
FROM location_sites
"""


def _escape_like(term: str) -> str:
    return term.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def like_pattern(term: str) -> str:
    """A lower-cased ``LIKE`` pattern matching ``term`` anywhere (its wildcards escaped)."""
    return f"%{_escape_like(term)}%"


class SiteRepository:
    """Sites on the ``eco2_location`` pool."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[Any]:
        try:
            async with self._pool.acquire() as conn:
                yield conn
        except UNREACHABLE as exc:  # a query or data error stays a 500
            raise Unavailable(f"the location database failed; retry shortly ({exc})") from exc

    async def ensure_loaded(self, dataset: Callable[[], Sequence[Site]]) -> int:
        """Insert ``dataset()`` if the table is empty; return the number of sites afterwards.

        Idempotent and safe for concurrent starters: the check and the insert run in one
        transaction holding an advisory lock, so a second starter waits and then finds rows.
        """
        async with self._connection() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOAD_LOCK)
            existing: int = await conn.fetchval("SELECT count(*) FROM location_sites")
            if existing:
                return existing
            sites = dataset()
            await conn.copy_records_to_table(
                "location_sites", records=[_record(s) for s in sites], columns=_COLUMNS
            )
            return len(sites)

    async def fingerprint(self) -> tuple[int, str]:
        """``(count, digest of every id and coordinate)``: equal digests mean equal geometry."""
        async with self._connection() as conn:
            row = await conn.fetchrow(_FINGERPRINT)
        return int(row[0]), str(row[1])

    async def coordinates(self) -> list[tuple[int, float, float]]:
        """``(id, latitude, longitude)`` of every site."""
        async with self._connection() as conn:
            rows = await conn.fetch("SELECT id, latitude, longitude FROM location_sites")
        return [(int(r["id"]), float(r["latitude"]), float(r["longitude"])) for r in rows]

    async def among(
        self,
        ids: Sequence[int],
        categories: CategoryFilter,
        terms: Sequence[str] = (),
        *,
        limit: int,
    ) -> list[Site]:
        """Of ``ids`` (in that order), the first ``limit`` sites that match ``categories`` and
        contain every search term. One query."""
        async with self._connection() as conn:
            rows = await conn.fetch(
                _BY_IDS,
                list(ids),
                sorted(categories.store),
                sorted(categories.pickup),
                [like_pattern(t) for t in terms],
                limit,
            )
        return [_site(r) for r in rows]

    async def search(self, terms: Sequence[str], *, limit: int) -> list[Site]:
        """Sites containing every term; names starting with the first term first."""
        patterns = [like_pattern(t) for t in terms]
        async with self._connection() as conn:
            rows = await conn.fetch(_SEARCH, patterns, f"{_escape_like(terms[0])}%", limit)
        return [_site(r) for r in rows]

    async def get(self, site_id: int) -> Site | None:
        async with self._connection() as conn:
            row = await conn.fetchrow(
                f"SELECT {_SELECT} FROM location_sites s WHERE s.id = $1", site_id
            )
        return None if row is None else _site(row)

    async def count(self) -> int:
        async with self._connection() as conn:
            return int(await conn.fetchval("SELECT count(*) FROM location_sites"))


def _record(site: Site) -> tuple[Any, ...]:
    return (
        site.id,
        site.name,
        site.source.value,
        site.store_category.value,
        [p.value for p in site.pickup_categories],
        site.road_address,
        site.lot_address,
        site.latitude,
        site.longitude,
        site.phone,
        site.hours.start,
        site.hours.end,
        sorted(site.hours.closed_weekdays),
        list(site.collection_items),
        site.introduction,
        site.place_url,
        site.kakao_place_id,
    )


def _site(row: asyncpg.Record) -> Site:
    return Site(
        id=int(row["id"]),
        name=row["name"],
        source=Source(row["source"]),
        store_category=StoreCategory(row["store_category"]),
        pickup_categories=tuple(PickupCategory(p) for p in row["pickup_categories"]),
        road_address=row["road_address"],
        lot_address=row["lot_address"],
        latitude=float(row["latitude"]),
        longitude=float(row["longitude"]),
        phone=row["phone"],
        hours=OpeningHours(row["start_time"], row["end_time"], frozenset(row["closed_weekdays"])),
        collection_items=tuple(row["collection_items"]),
        introduction=row["introduction"],
        place_url=row["place_url"],
        kakao_place_id=row["kakao_place_id"],
    )
