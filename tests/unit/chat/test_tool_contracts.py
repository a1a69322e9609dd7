"""Every tool port: one contract, run against its offline fake and against its HTTP adapter
(over a recorded upstream shape, never the real upstream)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from pipelines.chat.tools import Position, Tool, ToolFailed, ToolRequest, remote
from pipelines.chat.tools.base import JsonApi

SEOUL = Position(37.5665, 126.978)

UPSTREAM: dict[str, Any] = {
    "/api/v1/character/catalog": [
        {"name": "이코", "type": "기본", "dialog": "안녕!", "match": None},
        {"name": "페티", "type": "페트병", "dialog": "뚜껑은 닫아줘", "match": "무색페트병"},
    ],
    "/api/v1/locations/centers": [
        {"name": "A 재활용센터", "store_category": "재활용센터", "distance_km": 0.4},
        {"name": "B 제로웨이스트", "store_category": "제로웨이스트샵", "distance_km": 1.1},
    ],
    "/bins": {
        "data": [{"name": "건전지 수거함", "address": "서울", "lat": 37.567, "lon": 126.979}]
    },
    "/getVilageFcst": {
        "response": {
            "body": {
                "items": {
                    "item": [
                        {"category": "SKY", "fcstValue": "4"},
                        {"category": "PTY", "fcstValue": "1"},
                        {"category": "POP", "fcstValue": "70"},
                        {"category": "TMP", "fcstValue": "12"},
                    ]
                }
            }
        }
    },
    "/bulky": {"response": {"body": {"items": [{"item": "소파", "fee": 8000, "method": "신고"}]}}},
    "/search": {"results": [{"title": "분리배출 개정", "url": "https://x", "snippet": "…"}]},
    "/images": {"url": "https://img.example/a.png"},
}


def _api(status: int = 200, shapes: dict[str, Any] | None = None) -> JsonApi:
    def answer(request: httpx.Request) -> httpx.Response:
        if status != 200:
            return httpx.Response(status)
        body = (shapes or UPSTREAM).get(request.url.path)
        return (
            httpx.Response(200, content=json.dumps(body))
            if body is not None
            else httpx.Response(404)
        )

    return JsonApi(httpx.AsyncClient(transport=httpx.MockTransport(answer)), "http://upstream", "k")


Make = Callable[[JsonApi], Tool]
PORTS: dict[str, tuple[Tool, Make, set[str], ToolRequest]] = {
    "character": (
        remote.FakeCharacters(),
        remote.CharacterApi,
        {"name", "type", "dialog", "match"},
        ToolRequest("페트병으로 무슨 캐릭터 받아?", "character"),
    ),
    "location": (
        remote.FakeLocations(),
        remote.LocationApi,
        {"places"},
        ToolRequest("근처 재활용센터", "location", SEOUL),
    ),
    "collection_point": (
        remote.FakeCollectionPoints(),
        remote.CollectionPointApi,
        {"kind", "near_user", "bins"},
        ToolRequest("폐건전지 수거함", "collection_point", SEOUL),
    ),
    "weather": (
        remote.FakeWeather(),
        remote.KmaWeather,
        {"sky", "precipitation", "rain_chance", "temperature", "source"},
        ToolRequest("날씨 어때", "weather", SEOUL),
    ),
    "bulk_waste": (
        remote.FakeBulkWaste(),
        remote.MoisBulkWaste,
        {"item", "fee_won", "how", "free_pickup", "source"},
        ToolRequest("소파 버리려면?", "bulk_waste"),
    ),
    "web_search": (
        remote.FakeWebSearch(),
        remote.WebSearchApi,
        {"query", "results"},
        ToolRequest("분리배출 정책 뉴스", "web_search"),
    ),
    "image_generation": (
        remote.FakeImages(),
        remote.ImageApi,
        {"image_url", "sample"},
        ToolRequest("페티 그려줘", "image_generation"),
    ),
}


def _both(port: str) -> list[Tool]:
    fake, make, _, _ = PORTS[port]
    return [fake, make(_api())]


@pytest.mark.parametrize("port", sorted(PORTS))
@pytest.mark.parametrize("adapter", ["fake", "http"])
async def test_the_adapter_answers_the_ports_shape(port: str, adapter: str) -> None:
    fake, make, keys, request = PORTS[port]
    tool = fake if adapter == "fake" else make(_api())
    facts = await tool.run(request)
    assert keys <= set(facts), facts
    assert tool.name == fake.name
    json.dumps(facts)  # what goes to the answer is JSON


@pytest.mark.parametrize("port", sorted(PORTS))
async def test_the_fake_and_the_adapter_agree_on_the_context_key(port: str) -> None:
    fake, http = _both(port)
    assert fake.name == http.name


@pytest.mark.parametrize("port", sorted(PORTS))
@pytest.mark.parametrize("status", [500, 404])
async def test_an_upstream_error_is_a_tool_failure(port: str, status: int) -> None:
    _, make, _, request = PORTS[port]
    with pytest.raises(ToolFailed):
        await make(_api(status)).run(request)


@pytest.mark.parametrize("port", ["collection_point", "weather", "bulk_waste", "web_search"])
async def test_an_unexpected_upstream_shape_is_a_tool_failure(port: str) -> None:
    _, make, _, request = PORTS[port]
    odd = {path: {"something": "else"} for path in UPSTREAM}
    with pytest.raises(ToolFailed):
        await make(_api(shapes=odd)).run(request)


@pytest.mark.parametrize("adapter", ["fake", "http"])
async def test_places_need_a_position(adapter: str) -> None:
    fake, make, _, _ = PORTS["location"]
    tool = fake if adapter == "fake" else make(_api())
    with pytest.raises(ToolFailed, match="location"):
        await tool.run(ToolRequest("근처 재활용센터", "location"))


async def test_the_character_is_the_one_matching_the_items_middle_class() -> None:
    for tool in _both("character"):
        facts = await tool.run(ToolRequest("무색페트병 버리면 무슨 캐릭터?", "character"))
        assert (facts["name"], facts["match"]) == ("페티", "무색페트병")
