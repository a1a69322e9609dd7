"""The chat tools: one per intent that needs facts (domain.md §9.2-9.3).

:func:`build_tools` picks the offline fakes (``ECO2_CHAT__TOOLS=fake``, the default) or the HTTP
adapters (``real``); the rule book and the price table are the project's own data either way.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from eco2.settings import Settings
from pipelines.chat.tools import remote
from pipelines.chat.tools.base import JsonApi, Position, Tool, ToolFailed, ToolRequest
from pipelines.chat.tools.local import RecyclablePrices, WasteRules
from pipelines.rules.rulebook import RuleBook

__all__ = ["Position", "Tool", "ToolFailed", "ToolRequest", "build_tools"]


class _Delayed:
    """A fake that takes as long as its upstream would (``chat.fake_latency_ms``)."""

    def __init__(self, tool: Tool, seconds: float) -> None:
        self.name, self._tool, self._seconds = tool.name, tool, seconds

    async def run(self, request: ToolRequest) -> dict[str, Any]:
        await asyncio.sleep(self._seconds)
        return await self._tool.run(request)


def _delayed(tool: Tool, milliseconds: float) -> Tool:
    return _Delayed(tool, milliseconds / 1000) if milliseconds > 0 else tool


def build_tools(settings: Settings, rules: RuleBook, client: httpx.AsyncClient) -> dict[str, Tool]:
    """Intent → its tool (intents without one, like ``general``, are answered by the model
    alone). Image generation is there only when switched on."""
    chat = settings.chat
    if chat.tools == "fake":
        web: Tool = remote.FakeWebSearch()
        tools: dict[str, Tool] = {
            "character": remote.FakeCharacters(),
            "location": remote.FakeLocations(),
            "collection_point": remote.FakeCollectionPoints(),
            "weather": remote.FakeWeather(),
            "bulk_waste": remote.FakeBulkWaste(),
            "web_search": web,
        }
        images: Tool = remote.FakeImages()
        latency = chat.fake_latency_ms
        tools = {name: _delayed(tool, latency.get(name, 0.0)) for name, tool in tools.items()}
        images = _delayed(images, latency.get("image_generation", 0.0))
        web = tools["web_search"]
    else:
        key = chat.api_key.get_secret_value()

        def api(url: str | None, what: str) -> JsonApi:
            if not url:
                raise ValueError(f"ECO2_CHAT__TOOLS=real needs {what}")
            return JsonApi(client, url, key)

        web = remote.WebSearchApi(api(chat.web_search_url, "ECO2_CHAT__WEB_SEARCH_URL"))
        tools = {
            "character": remote.CharacterApi(
                api(settings.services.character_url, "ECO2_SERVICES__CHARACTER_URL")
            ),
            "location": remote.LocationApi(
                api(settings.services.location_url, "ECO2_SERVICES__LOCATION_URL")
            ),
            "collection_point": remote.CollectionPointApi(
                api(chat.collection_point_url, "ECO2_CHAT__COLLECTION_POINT_URL")
            ),
            "weather": remote.KmaWeather(api(chat.weather_url, "ECO2_CHAT__WEATHER_URL")),
            "bulk_waste": remote.MoisBulkWaste(
                api(chat.bulk_waste_url, "ECO2_CHAT__BULK_WASTE_URL")
            ),
            "web_search": web,
        }
        images = remote.ImageApi(api(chat.image_generation_url, "ECO2_CHAT__IMAGE_GENERATION_URL"))
    tools["waste"] = WasteRules(rules, web)
    tools["recyclable_price"] = RecyclablePrices()
    if chat.image_generation:
        tools["image_generation"] = images
    return tools
