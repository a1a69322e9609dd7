"""The location API on the stack's PostgreSQL and Valkey: radius queries, filters, search, detail.

Expected answers are computed from the generated dataset (the same seed and size as the service)
with the model's haversine, so the GEO index, SQL filters and model must all agree.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from domains.location.dataset import generate
from domains.location.model import (
    SEOUL_TZ,
    CategoryFilter,
    Site,
    haversine_m,
    matches_terms,
)
from domains.location.service import create_app
from eco2.settings import Settings

pytestmark = pytest.mark.integration

MONDAY_NOON = datetime(2025, 6, 2, 12, 0, tzinfo=SEOUL_TZ)
MAPO = (37.5663, 126.9019)
CENTERS = "/api/v1/locations/centers"


@pytest.fixture(scope="module")
def dataset(settings: Settings) -> dict[int, Site]:
    source = settings.location
    return {s.id: s for s in generate(source.dataset_seed, source.dataset_size)}


@pytest.fixture(scope="module")
async def api(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, clock=lambda: MONDAY_NOON)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield client


def within(
    dataset: dict[int, Site], lat: float, lon: float, radius: float, wanted: CategoryFilter
) -> list[tuple[float, int]]:
    found = [
        (haversine_m(lat, lon, s.latitude, s.longitude), s.id)
        for s in dataset.values()
        if wanted.matches(s)
    ]
    return sorted(entry for entry in found if entry[0] <= radius)


async def centers(api: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    response = await api.get(CENTERS, params=params)
    assert response.status_code == 200, response.text
    body: list[dict[str, Any]] = response.json()
    return body


async def test_radius_query_returns_exactly_the_sites_inside_nearest_first(
    api: httpx.AsyncClient, dataset: dict[int, Site]
) -> None:
    lat, lon = MAPO
    body = await centers(api, lat=lat, lon=lon, radius=1500, zoom=20)
    expected = within(dataset, lat, lon, 1500, CategoryFilter())
    assert 0 < len(expected) <= 300, "the zoom-20 limit must not cut this query"
    assert [c["id"] for c in body] == [site_id for _, site_id in expected]
    for center, (meters, _) in zip(body, expected, strict=True):
        assert center["distance_km"] == round(meters / 1000, 3)
        assert center["distance_km"] <= 1.5
    distances = [c["distance_km"] for c in body]
    assert distances == sorted(distances)


async def test_zoom_limits_the_answer_to_the_nearest(
    api: httpx.AsyncClient, dataset: dict[int, Site]
) -> None:
    lat, lon = MAPO
    body = await centers(api, lat=lat, lon=lon, radius=10_000, zoom=5)
    expected = within(dataset, lat, lon, 10_000, CategoryFilter())
    assert len(expected) > 20
    assert [c["id"] for c in body] == [site_id for _, site_id in expected[:20]]
    default = await centers(api, lat=lat, lon=lon, radius=10_000)
    assert len(default) == min(100, len(expected))


async def test_category_filters(api: httpx.AsyncClient, dataset: dict[int, Site]) -> None:
    lat, lon = 37.5172, 127.0473  # Gangnam-gu
    params = {"store_category": "refill_zero,market_mart", "pickup_category": "glass,can"}
    body = await centers(api, lat=lat, lon=lon, radius=8000, zoom=20, **params)
    wanted = CategoryFilter.parse(params["store_category"], params["pickup_category"])
    expected = within(dataset, lat, lon, 8000, wanted)
    assert expected
    assert [c["id"] for c in body] == [site_id for _, site_id in expected][:300]
    for center in body:
        assert center["store_category"] in {"refill_zero", "market_mart"}
        assert {"glass", "can"} & set(center["pickup_categories"])
    bins = await centers(api, lat=lat, lon=lon, radius=3000, store_category="public_dropbox")
    assert bins
    assert {c["source"] for c in bins} == {"district"}


async def test_opening_state_follows_the_injected_clock(
    api: httpx.AsyncClient, dataset: dict[int, Site]
) -> None:
    body = await centers(api, lat=MAPO[0], lon=MAPO[1], radius=5000, zoom=20)
    assert body
    for center in body:
        hours = dataset[center["id"]].hours
        assert center["is_open"] == hours.is_open(MONDAY_NOON)
        assert center["is_holiday"] == hours.is_holiday(MONDAY_NOON)
        assert (center["start_time"], center["end_time"]) == (hours.start, hours.end)
    assert any(c["is_holiday"] for c in body), "some shops close on Mondays"
    assert any(c["is_open"] for c in body)


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"lat": 37.5, "lon": 127.0, "radius": 50_001}, 422),
        ({"lat": 37.5, "lon": 127.0, "radius": 50}, 422),
        ({"lat": 90.5, "lon": 127.0}, 422),
        ({"lat": 37.5, "lon": 180.5}, 422),
        ({"lat": 37.5, "lon": 127.0, "zoom": 21}, 422),
        ({"lat": 37.5, "lon": 127.0, "store_category": "zero_waste"}, 400),
    ],
)
async def test_bad_parameters_are_refused(
    api: httpx.AsyncClient, params: dict[str, Any], status: int
) -> None:
    response = await api.get(CENTERS, params=params)
    assert response.status_code == status, response.text
    assert response.json()["error"]["message"]


async def test_far_from_every_site_is_an_empty_list(api: httpx.AsyncClient) -> None:
    assert await centers(api, lat=35.1796, lon=129.0756, radius=50_000) == []  # Busan
    assert await centers(api, lat=89.9, lon=0, radius=50_000) == []  # beyond Valkey's GEO range
    assert await centers(api, lat=-90, lon=-180, radius=100) == []


async def test_detail_and_unknown_id(api: httpx.AsyncClient, dataset: dict[int, Site]) -> None:
    site = dataset[1]
    response = await api.get(f"{CENTERS}/1", params={"lat": MAPO[0], "lon": MAPO[1]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["name"] == site.name
    assert body["lot_address"] == site.lot_address
    assert body["collection_items"] == list(site.collection_items)
    assert body["introduction"] == site.introduction
    meters = haversine_m(*MAPO, site.latitude, site.longitude)
    assert body["distance_km"] == round(meters / 1000, 3)
    missing = await api.get(f"{CENTERS}/{len(dataset) + 1}")
    assert missing.status_code == 404
    assert "GET /api/v1/locations/centers" in missing.json()["error"]["message"]


async def test_search_by_name_and_address(api: httpx.AsyncClient, dataset: dict[int, Site]) -> None:
    response = await api.get("/api/v1/locations/search", params={"q": "마포구 리필"})
    assert response.status_code == 200, response.text
    body = response.json()
    expected = {s.id for s in dataset.values() if matches_terms(s, ["마포구", "리필"])}
    assert expected
    assert len(body) == min(50, len(expected))
    assert {c["id"] for c in body} <= expected
    assert all(c["distance_km"] is None for c in body)


async def test_search_near_a_position_sorts_by_distance_within_the_radius(
    api: httpx.AsyncClient, dataset: dict[int, Site]
) -> None:
    lat, lon = MAPO
    response = await api.get(
        "/api/v1/locations/search",
        params={"q": "자원순환가게", "lat": lat, "lon": lon, "radius": 4000},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    candidates = {s.id: s for s in dataset.values() if matches_terms(s, ["자원순환가게"])}
    expected = within(candidates, lat, lon, 4000, CategoryFilter())
    assert expected
    assert [c["id"] for c in body] == [site_id for _, site_id in expected][:50]
    assert all(c["distance_text"] for c in body)


async def test_suggest_returns_a_few_places(
    api: httpx.AsyncClient, dataset: dict[int, Site]
) -> None:
    response = await api.get("/api/v1/locations/suggest", params={"q": "망원동"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert 0 < len(body) <= 10
    names = {s.name: s for s in dataset.values()}
    for place in body:
        site = names[place["place_name"]]
        assert "망원동" in f"{site.name} {site.road_address} {site.lot_address}"
        assert place["address"] == site.road_address
        assert (place["latitude"], place["longitude"]) == (site.latitude, site.longitude)
    starts = [p["place_name"].startswith("망원동") for p in body]
    assert starts == sorted(starts, reverse=True), "names starting with the query come first"


async def test_healthz(api: httpx.AsyncClient) -> None:
    response = await api.get("/healthz")
    assert response.status_code == 200
