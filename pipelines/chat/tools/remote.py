"""Tools behind other services: a port each, an offline fake (the default) and an HTTP adapter.

The fakes answer deterministically from the request with canned data, so the project builds and
passes its tests with no network and no keys (domain.md §9.3). The adapters speak the upstream
shapes (the project's own character and location APIs, KMA's short-term forecast, MOIS's bulky
waste information, KECO's collection bins, a web search and an image generator); they run only
when ``ECO2_CHAT__TOOLS=real`` and are never called in tests against the real upstreams — their
contract tests run against recorded shapes.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any, ClassVar

from pipelines.chat.tools.base import JsonApi, Position, ToolFailed, ToolRequest
from pipelines.chat.tools.local import item_in
from pipelines.rules.characters import character_for_label, default_character

SEOUL = Position(37.5665, 126.9780)
BIN_KINDS = {"의류": "clothes", "옷": "clothes", "건전지": "battery", "배터리": "battery",
             "형광등": "lamp", "전등": "lamp", "휴대폰": "phone", "핸드폰": "phone"}  # fmt: skip
BULKY_FEES = {"소파": 8000, "침대": 10000, "매트리스": 8000, "장롱": 15000, "책상": 5000,
              "의자": 3000, "냉장고": 0, "세탁기": 0}  # fmt: skip


def _middle_of(request: ToolRequest) -> str | None:
    if request.vision is not None:
        return request.vision.classification.middle_category
    named = item_in(request.message)
    return named[1] if named else None


def _word_in(text: str, table: dict[str, Any]) -> str | None:
    found = [word for word in table if word in text]
    return max(found, key=len) if found else None


def _km(a: Position, b: Position) -> float:
    lat = math.radians((a.latitude + b.latitude) / 2)
    dx = (b.longitude - a.longitude) * 111.32 * math.cos(lat)
    dy = (b.latitude - a.latitude) * 110.57
    return round(math.hypot(dx, dy), 2)


# --- character: which character an item gives ---------------------------------------------------


class FakeCharacters:
    name = "character_context"

    async def run(self, request: ToolRequest) -> dict[str, Any]:
        middle = _middle_of(request)
        character = (character_for_label(middle) if middle else None) or default_character()
        return {
            "match": middle,
            "name": character.name,
            "type": character.type,
            "dialog": character.dialog,
        }


class CharacterApi:
    """``GET /api/v1/character/catalog`` of the character domain: ``[{name, type, dialog,
    match}]``; the entry whose ``match`` is the item's middle class, else the first (이코)."""

    name = "character_context"

    def __init__(self, api: JsonApi) -> None:
        self._api = api

    async def run(self, request: ToolRequest) -> dict[str, Any]:
        catalog = await self._api.get("/api/v1/character/catalog", {})
        if not isinstance(catalog, list) or not catalog:
            raise ToolFailed("the character catalog is empty or not a list")
        middle = _middle_of(request)
        entry = next((c for c in catalog if c.get("match") == middle), catalog[0])
        return {k: entry.get(k) for k in ("name", "type", "dialog")} | {"match": middle}


# --- location: recycling centres and zero-waste shops near the user -------------------------------


def _require_position(request: ToolRequest) -> Position:
    if request.location is None:
        raise ToolFailed("no user location: ask for it (needs_input) or answer without places")
    return request.location


class FakeLocations:
    name = "location_context"

    async def run(self, request: ToolRequest) -> dict[str, Any]:
        here = _require_position(request)
        places = [
            ("이코 재활용센터 (샘플)", "재활용센터", 0.004, 0.003),
            ("초록 제로웨이스트샵 (샘플)", "제로웨이스트샵", -0.006, 0.005),
        ]
        return {
            "places": [
                {
                    "name": name,
                    "category": category,
                    "distance_km": _km(here, Position(here.latitude + dlat, here.longitude + dlon)),
                }
                for name, category, dlat, dlon in places
            ]
        }


class LocationApi:
    """``GET /api/v1/locations/centers?lat&lon&radius`` of the location domain."""

    name = "location_context"

    def __init__(self, api: JsonApi, radius_m: int = 3000) -> None:
        self._api, self._radius_m = api, radius_m

    async def run(self, request: ToolRequest) -> dict[str, Any]:
        here = _require_position(request)
        params = {"lat": here.latitude, "lon": here.longitude, "radius": self._radius_m}
        sites = await self._api.get("/api/v1/locations/centers", params)
        if not isinstance(sites, list):
            raise ToolFailed("the location API did not answer a list")
        return {
            "places": [
                {
                    "name": s.get("name"),
                    "category": s.get("store_category"),
                    "distance_km": s.get("distance_km"),
                }
                for s in sites[:3]
            ]
        }


# --- collection points: bins for clothes, batteries, lamps, phones --------------------------------


class FakeCollectionPoints:
    name = "collection_point_context"

    async def run(self, request: ToolRequest) -> dict[str, Any]:
        word = _word_in(request.message, BIN_KINDS)
        kind = BIN_KINDS[word] if word else "battery"
        here = request.location or SEOUL
        return {
            "kind": kind,
            "near_user": request.location is not None,
            "bins": [
                {"name": f"{kind} 수거함 (샘플) 1", "distance_km": _km(here, here)},
                {
                    "name": f"{kind} 수거함 (샘플) 2",
                    "distance_km": _km(here, Position(here.latitude + 0.005, here.longitude)),
                },
            ],
        }


class CollectionPointApi:
    """KECO e-waste bins: ``GET /bins?lat&lon&type&radius`` → ``{"data": [{name, address,
    lat, lon, type}]}``."""

    name = "collection_point_context"

    def __init__(self, api: JsonApi) -> None:
        self._api = api

    async def run(self, request: ToolRequest) -> dict[str, Any]:
        word = _word_in(request.message, BIN_KINDS)
        kind = BIN_KINDS[word] if word else "battery"
        here = request.location or SEOUL
        params = {"lat": here.latitude, "lon": here.longitude, "type": kind, "radius": 2000}
        body = await self._api.get("/bins", params)
        rows = body.get("data") if isinstance(body, dict) else None
        if not isinstance(rows, list):
            raise ToolFailed("the collection-bin API answered no data list")
        bins = [
            {
                "name": r.get("name"),
                "address": r.get("address"),
                "distance_km": _km(here, Position(float(r["lat"]), float(r["lon"]))),
            }
            for r in rows[:3]
            if "lat" in r and "lon" in r
        ]
        return {"kind": kind, "near_user": request.location is not None, "bins": bins}


# --- weather: KMA short-term forecast ------------------------------------------------------------


class FakeWeather:
    name = "weather_context"

    async def run(self, request: ToolRequest) -> dict[str, Any]:
        rainy = any(word in request.message for word in ("비", "우산", "장마"))
        return {
            "sky": "흐림" if rainy else "맑음",
            "precipitation": "비" if rainy else "없음",
            "rain_chance": 80 if rainy else 10,
            "temperature": 14,
            "source": "sample forecast",
        }


class KmaWeather:
    """KMA 단기예보 (``getVilageFcst``): ``{"response": {"body": {"items": {"item": [{category,
    fcstValue}]}}}}`` with SKY (1 맑음, 3 구름많음, 4 흐림), PTY (0 없음, 1 비, 2 비/눈, 3 눈, 4
    소나기), POP (%) and TMP (°C)."""

    name = "weather_context"
    SKY: ClassVar[dict[str, str]] = {"1": "맑음", "3": "구름많음", "4": "흐림"}
    PTY: ClassVar[dict[str, str]] = {"0": "없음", "1": "비", "2": "비/눈", "3": "눈", "4": "소나기"}

    def __init__(self, api: JsonApi) -> None:
        self._api = api

    async def run(self, request: ToolRequest) -> dict[str, Any]:
        here = request.location or SEOUL
        body = await self._api.get(
            "/getVilageFcst", {"lat": here.latitude, "lon": here.longitude, "dataType": "JSON"}
        )
        try:
            items = body["response"]["body"]["items"]["item"]
            first: dict[str, str] = {}
            for item in items:
                first.setdefault(item["category"], str(item["fcstValue"]))
            return {
                "sky": self.SKY.get(first.get("SKY", ""), "알 수 없음"),
                "precipitation": self.PTY.get(first.get("PTY", "0"), "없음"),
                "rain_chance": int(first.get("POP", "0")),
                "temperature": float(first.get("TMP", "nan")),
                "source": "KMA",
            }
        except (KeyError, TypeError, ValueError) as exc:
            raise ToolFailed(f"unexpected KMA forecast shape: {exc}") from exc


# --- bulky waste: MOIS 생활쓰레기배출정보 --------------------------------------------------


class FakeBulkWaste:
    name = "bulk_waste_context"

    async def run(self, request: ToolRequest) -> dict[str, Any]:
        item = _word_in(request.message, BULKY_FEES) or "대형폐기물"
        fee = BULKY_FEES.get(item)
        return {
            "item": item,
            "fee_won": fee,
            "how": "구청 누리집이나 앱에서 배출 신고 후 스티커를 붙여 지정 장소에 내놓아요.",
            "free_pickup": fee == 0,
            "source": "sample data",
        }


class MoisBulkWaste:
    """MOIS 생활쓰레기배출정보: ``GET /bulky?item&region`` → ``{"response": {"body": {"items":
    [{item, fee, method}]}}}``."""

    name = "bulk_waste_context"

    def __init__(self, api: JsonApi) -> None:
        self._api = api

    async def run(self, request: ToolRequest) -> dict[str, Any]:
        item = _word_in(request.message, BULKY_FEES) or request.message[:20]
        body = await self._api.get("/bulky", {"item": item})
        try:
            rows = body["response"]["body"]["items"]
            row = rows[0]
            fee = int(row["fee"])
            return {
                "item": row.get("item", item),
                "fee_won": fee,
                "how": row.get("method", ""),
                "free_pickup": fee == 0,
                "source": "MOIS",
            }
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise ToolFailed(f"unexpected MOIS bulky-waste shape: {exc}") from exc


# --- web search ----------------------------------------------------------------------------------


class FakeWebSearch:
    name = "web_search_context"

    async def run(self, request: ToolRequest) -> dict[str, Any]:
        query = " ".join(request.message.split())[:60]
        return {
            "query": query,
            "results": [
                {
                    "title": f"'{query}' 관련 분리배출 안내 (샘플 검색 결과)",
                    "snippet": "지자체 안내를 함께 확인하세요.",
                }
            ],
        }


class WebSearchApi:
    """``GET /search?q`` → ``{"results": [{title, url, snippet}]}``."""

    name = "web_search_context"

    def __init__(self, api: JsonApi) -> None:
        self._api = api

    async def run(self, request: ToolRequest) -> dict[str, Any]:
        query = " ".join(request.message.split())[:200]
        body = await self._api.get("/search", {"q": query})
        results = body.get("results") if isinstance(body, dict) else None
        if not isinstance(results, list):
            raise ToolFailed("the search API answered no results list")
        keep = ("title", "url", "snippet")
        return {"query": query, "results": [{k: r.get(k) for k in keep} for r in results[:3]]}


# --- image generation (off by default) ------------------------------------------------------------


class FakeImages:
    name = "image_context"

    async def run(self, request: ToolRequest) -> dict[str, Any]:
        digest = hashlib.sha256(request.message.encode()).hexdigest()[:16]
        return {"image_url": f"https://cdn.eco2.local/generated/{digest}.png", "sample": True}


class ImageApi:
    """``POST /images {prompt}`` → ``{"url": ...}``."""

    name = "image_context"

    def __init__(self, api: JsonApi) -> None:
        self._api = api

    async def run(self, request: ToolRequest) -> dict[str, Any]:
        body = await self._api.post("/images", {"prompt": request.message[:500]})
        url = body.get("url") if isinstance(body, dict) else None
        if not isinstance(url, str):
            raise ToolFailed("the image API answered no url")
        return {"image_url": url, "sample": False}
