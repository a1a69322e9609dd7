"""What the location API answers: response shapes and how a site becomes one.

The field names are the original service's ([compat] in domain.md §11.4); extra fields are
additions. ``distance_km``/``distance_text`` are null when the caller gave no position.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from domains.location.model import Site, distance_km, format_distance


class CenterOut(BaseModel):
    id: int
    name: str
    source: str
    road_address: str
    latitude: float
    longitude: float
    distance_km: float | None
    distance_text: str | None
    store_category: str
    pickup_categories: list[str]
    is_holiday: bool
    """Today (Seoul time) is one of the site's regular closing days."""
    is_open: bool
    """Open right now (Seoul time) by its regular hours."""
    start_time: str | None
    end_time: str | None
    phone: str | None
    place_url: str | None = None
    kakao_place_id: str | None = None


class CenterDetailOut(CenterOut):
    lot_address: str | None
    collection_items: list[str]
    introduction: str
    closed_days: list[str]
    """Regular closing days, ``mon`` .. ``sun``."""


class SuggestionOut(BaseModel):
    place_name: str
    address: str
    latitude: float
    longitude: float
    place_url: str | None


def _center_fields(site: Site, now: datetime, meters: float | None) -> dict[str, object]:
    return {
        "id": site.id,
        "name": site.name,
        "source": site.source.value,
        "road_address": site.road_address,
        "latitude": site.latitude,
        "longitude": site.longitude,
        "distance_km": None if meters is None else distance_km(meters),
        "distance_text": None if meters is None else format_distance(meters),
        "store_category": site.store_category.value,
        "pickup_categories": [p.value for p in site.pickup_categories],
        "is_holiday": site.hours.is_holiday(now),
        "is_open": site.hours.is_open(now),
        "start_time": site.hours.start,
        "end_time": site.hours.end,
        "phone": site.phone,
        "place_url": site.place_url,
        "kakao_place_id": site.kakao_place_id,
    }


def center(site: Site, now: datetime, meters: float | None) -> CenterOut:
    return CenterOut.model_validate(_center_fields(site, now, meters))


def center_detail(site: Site, now: datetime, meters: float | None) -> CenterDetailOut:
    fields = _center_fields(site, now, meters)
    fields.update(
        lot_address=site.lot_address,
        collection_items=list(site.collection_items),
        introduction=site.introduction,
        closed_days=site.hours.closed_days,
    )
    return CenterDetailOut.model_validate(fields)


def suggestion(site: Site) -> SuggestionOut:
    return SuggestionOut(
        place_name=site.name,
        address=site.road_address,
        latitude=site.latitude,
        longitude=site.longitude,
        place_url=site.place_url,
    )
