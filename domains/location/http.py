"""The location routes (public reads, no sign-in): ``/api/v1/locations/...``.

Bounds (lat, lon, radius, zoom, q length) are checked by FastAPI (422 naming the parameter);
an unknown category value, an empty query or a half-given position is
:class:`eco2.errors.InvalidInput` (400) with a message listing what is allowed.

No ``from __future__ import annotations``: FastAPI reads these annotations at import time.
"""

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request

from domains.location.model import (
    DEFAULT_RADIUS_M,
    MAX_QUERY_CHARS,
    MAX_RADIUS_M,
    MAX_ZOOM,
    MIN_RADIUS_M,
    MIN_ZOOM,
    CategoryFilter,
    UnknownCategory,
    search_terms,
)
from domains.location.queries import Locations
from domains.location.views import CenterDetailOut, CenterOut, SuggestionOut
from eco2.errors import InvalidInput, NotFound

PREFIX = "/api/v1/locations"

Latitude = Annotated[float, Query(ge=-90, le=90, description="WGS84 latitude")]
Longitude = Annotated[float, Query(ge=-180, le=180, description="WGS84 longitude")]
Radius = Annotated[float, Query(ge=MIN_RADIUS_M, le=MAX_RADIUS_M, description="metres")]
OptionalLatitude = Annotated[float | None, Query(ge=-90, le=90)]
OptionalLongitude = Annotated[float | None, Query(ge=-180, le=180)]
OptionalRadius = Annotated[float | None, Query(ge=MIN_RADIUS_M, le=MAX_RADIUS_M)]
Zoom = Annotated[int | None, Query(ge=MIN_ZOOM, le=MAX_ZOOM, description="map zoom level")]
Category = Annotated[str | None, Query(description="one or more, comma-separated")]
SearchText = Annotated[
    str,
    # No NUL: PostgreSQL text never holds one (it was a 503 "retry" for a bad query).
    Query(min_length=1, max_length=MAX_QUERY_CHARS, pattern=r"^[^\x00]*$"),
]


async def _locations(request: Request) -> Locations:
    locations: Locations = request.app.state.locations
    return locations


LocationsDep = Annotated[Locations, Depends(_locations)]


def _categories(store: str | None, pickup: str | None) -> CategoryFilter:
    try:
        return CategoryFilter.parse(store, pickup)
    except UnknownCategory as exc:
        raise InvalidInput(str(exc), code="unknown_category") from None


def _terms(q: str) -> tuple[str, ...]:
    try:
        return search_terms(q)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None


def _position(lat: float | None, lon: float | None) -> tuple[float, float] | None:
    if lat is None and lon is None:
        return None
    if lat is None or lon is None:
        raise InvalidInput("give both lat and lon (or neither), e.g. lat=37.5665&lon=126.9780")
    return lat, lon


router = APIRouter(prefix=PREFIX, tags=["locations"])


@router.get("/centers")
async def list_centers(
    locations: LocationsDep,
    lat: Latitude,
    lon: Longitude,
    radius: Radius = DEFAULT_RADIUS_M,
    zoom: Zoom = None,
    store_category: Category = None,
    pickup_category: Category = None,
) -> list[CenterOut]:
    """Sites within ``radius`` metres of (lat, lon), nearest first."""
    categories = _categories(store_category, pickup_category)
    return await locations.centers(lat, lon, radius, zoom, categories)


@router.get("/search")
async def search(
    locations: LocationsDep,
    q: SearchText,
    radius: OptionalRadius = None,
    lat: OptionalLatitude = None,
    lon: OptionalLongitude = None,
) -> list[CenterOut]:
    """Sites whose name or address contains every word of ``q``."""
    terms = _terms(q)
    position = _position(lat, lon)
    if position is None and radius is not None:
        raise InvalidInput("radius needs a position: add lat and lon, or drop radius")
    return await locations.search(terms, position, radius)


@router.get("/suggest")
async def suggest(locations: LocationsDep, q: SearchText) -> list[SuggestionOut]:
    """A few place names for an autocomplete list."""
    return await locations.suggest(_terms(q))


@router.get("/centers/{site_id}")
async def center_detail(
    locations: LocationsDep,
    site_id: Annotated[int, Path(ge=1, le=2**63 - 1)],
    lat: OptionalLatitude = None,
    lon: OptionalLongitude = None,
) -> CenterDetailOut:
    """One site with its lot address, collected items and introduction."""
    found = await locations.detail(site_id, _position(lat, lon))
    if found is None:
        raise NotFound(
            f"no location with id {site_id}; find ids with GET {PREFIX}/centers?lat=..&lon=.."
        )
    return found
