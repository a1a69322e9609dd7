"""The port every chat tool implements, and the one HTTP helper the real adapters share.

A tool turns a :class:`ToolRequest` (the message, its classification, what vision saw, where the
user is) into a small JSON-ready fact sheet for the answer. It raises :class:`ToolFailed` when it
cannot; the runner applies the intent's budget (a timeout) and policy around it, never the tool.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from serve.contracts import VisionResult


@dataclass(frozen=True)
class Position:
    latitude: float
    longitude: float


@dataclass(frozen=True)
class ToolRequest:
    message: str
    intent: str
    location: Position | None = None
    vision: VisionResult | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class ToolFailed(Exception):
    """The tool could not answer (upstream error, bad data); the intent's policy decides."""


class Tool(Protocol):
    name: str
    """The context key its facts go under (``disposal_rules``, ``location_context``, …)."""

    async def run(self, request: ToolRequest) -> dict[str, Any]: ...


class JsonApi:
    """GET/POST JSON against one base URL with the tools' bearer key; every failure (network,
    status, not JSON) is a :class:`ToolFailed`. The budget is the caller's timeout."""

    def __init__(self, client: httpx.AsyncClient, base_url: str, api_key: str = "") -> None:
        self._client, self._base = client, base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}

    async def get(self, path: str, params: dict[str, Any]) -> Any:
        return await self._send("GET", path, params=params)

    async def post(self, path: str, body: dict[str, Any]) -> Any:
        return await self._send("POST", path, json=body)

    async def _send(self, method: str, path: str, **kwargs: Any) -> Any:
        url = f"{self._base}{path}"
        try:
            response = await self._client.request(method, url, headers=self._headers, **kwargs)
            response.raise_for_status()
            return response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise ToolFailed(f"{method} {url}: {type(exc).__name__}: {exc}") from exc
