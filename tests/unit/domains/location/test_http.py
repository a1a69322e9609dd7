"""The location routes' validation and error mapping, over a stand-in for the queries."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from domains.location import views
from domains.location.http import router
from domains.location.model import SEOUL_TZ, CategoryFilter, OpeningHours, Site, Source
from domains.location.model import PickupCategory as P
from domains.location.model import StoreCategory as S
from eco2.http import install_error_handlers

NOW = datetime(2025, 6, 2, 12, 0, tzinfo=SEOUL_TZ)
SITE = Site(
    id=7,
    name="망원동 자원순환가게",
    source=Source.KECO,
    store_category=S.UPCYCLE_RECYCLE,
    pickup_categories=(P.CLEAR_PET, P.CAN),
    road_address="서울특별시 마포구 월드컵로 12",
    lot_address="서울특별시 마포구 망원동 12-3",
    latitude=37.556,
    longitude=126.905,
    phone="02-123-4567",
    hours=OpeningHours("09:00", "18:00", frozenset({6})),
    collection_items=("투명 페트병", "캔"),
    introduction="소개",
)


class FakeLocations:
    """Records what the routes pass on; answers with :data:`SITE`."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    async def centers(
        self, lat: float, lon: float, radius_m: float, zoom: int | None, categories: CategoryFilter
    ) -> list[views.CenterOut]:
        self.calls.append(("centers", (lat, lon, radius_m, zoom, categories)))
        return [views.center(SITE, NOW, 850.0)]

    async def search(
        self, terms: Sequence[str], position: tuple[float, float] | None, radius_m: float | None
    ) -> list[views.CenterOut]:
        self.calls.append(("search", (tuple(terms), position, radius_m)))
        return [views.center(SITE, NOW, None)]

    async def suggest(self, terms: Sequence[str]) -> list[views.SuggestionOut]:
        self.calls.append(("suggest", tuple(terms)))
        return [views.suggestion(SITE)]

    async def detail(
        self, site_id: int, position: tuple[float, float] | None
    ) -> views.CenterDetailOut | None:
        self.calls.append(("detail", (site_id, position)))
        return views.center_detail(SITE, NOW, None) if site_id == SITE.id else None


@pytest.fixture
def fake() -> FakeLocations:
    return FakeLocations()


@pytest.fixture
async def client(fake: FakeLocations) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(router)
    app.state.locations = fake
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        yield c


async def test_centers_answers_the_compat_fields(
    client: httpx.AsyncClient, fake: FakeLocations
) -> None:
    response = await client.get(
        "/api/v1/locations/centers",
        params={"lat": 37.55, "lon": 126.9, "store_category": "upcycle_recycle,refill_zero"},
    )
    assert response.status_code == 200, response.text
    (body,) = response.json()
    assert body["distance_text"] == "850m"
    assert body["distance_km"] == 0.85
    assert body["pickup_categories"] == ["clear_pet", "can"]
    assert body["is_open"] is True
    assert body["is_holiday"] is False
    assert set(body) >= {"id", "name", "source", "road_address", "start_time", "end_time", "phone"}
    _, (lat, lon, radius, zoom, categories) = fake.calls[0]
    assert (lat, lon, radius, zoom) == (37.55, 126.9, 3000, None)
    assert categories.store == {S.UPCYCLE_RECYCLE, S.REFILL_ZERO}


@pytest.mark.parametrize(
    ("params", "names"),
    [
        ({"lat": 91, "lon": 127}, "lat"),
        ({"lat": 37, "lon": -181}, "lon"),
        ({"lat": 37, "lon": 127, "radius": 99}, "radius"),
        ({"lat": 37, "lon": 127, "radius": 50_001}, "radius"),
        ({"lat": 37, "lon": 127, "zoom": 0}, "zoom"),
        ({"lat": 37, "lon": 127, "zoom": 21}, "zoom"),
        ({"lat": "nan", "lon": 127}, "lat"),
        ({"lon": 127}, "lat"),
    ],
)
async def test_centers_bounds_are_422(
    client: httpx.AsyncClient, fake: FakeLocations, params: dict[str, Any], names: str
) -> None:
    response = await client.get("/api/v1/locations/centers", params=params)
    assert response.status_code == 422, response.text
    assert names in response.json()["error"]["message"]
    assert fake.calls == []


async def test_unknown_category_is_400_listing_allowed_values(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/api/v1/locations/centers", params={"lat": 37, "lon": 127, "pickup_category": "battery"}
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "unknown_category"
    assert "clear_pet" in error["message"]
    assert "electronics" in error["message"]


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"q": ""}, 422),
        ({"q": "x" * 101}, 422),
        ({}, 422),
        ({"q": "   "}, 400),
        ({"q": "리필", "radius": 1000}, 400),
        ({"q": "리필", "lat": 37.5}, 400),
    ],
)
async def test_search_validation(
    client: httpx.AsyncClient, params: dict[str, Any], status: int
) -> None:
    response = await client.get("/api/v1/locations/search", params=params)
    assert response.status_code == status, response.text


async def test_search_passes_terms_and_position(
    client: httpx.AsyncClient, fake: FakeLocations
) -> None:
    response = await client.get(
        "/api/v1/locations/search", params={"q": "마포 리필", "lat": 37.5, "lon": 127.0}
    )
    assert response.status_code == 200
    assert response.json()[0]["distance_km"] is None
    assert fake.calls == [("search", (("마포", "리필"), (37.5, 127.0), None))]


async def test_suggest_answers_place_fields(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/locations/suggest", params={"q": "망원"})
    assert response.status_code == 200
    assert response.json() == [
        {
            "place_name": SITE.name,
            "address": SITE.road_address,
            "latitude": SITE.latitude,
            "longitude": SITE.longitude,
            "place_url": None,
        }
    ]


async def test_detail_and_404(client: httpx.AsyncClient) -> None:
    found = await client.get("/api/v1/locations/centers/7")
    assert found.status_code == 200
    body = found.json()
    assert body["lot_address"] == SITE.lot_address
    assert body["collection_items"] == ["투명 페트병", "캔"]
    assert body["introduction"] == "소개"
    assert body["closed_days"] == ["sun"]
    missing = await client.get("/api/v1/locations/centers/8")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    assert (await client.get("/api/v1/locations/centers/abc")).status_code == 422
    assert (await client.get("/api/v1/locations/centers/0")).status_code == 422
