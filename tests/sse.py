"""A browser ``EventSource``'s reading of an SSE stream, for the tests: cookies only (or the
``headers`` of a caller past the gateway), ``Accept: text/event-stream``, ``id``/``event``/``data``
lines, a blank line ends an event, ``:`` lines are comments; a reconnect sends ``Last-Event-ID``."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

BROWSER_HEADERS = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
Event = tuple[str, str, dict[str, Any]]
"""``(id, event, data)``."""


@dataclass
class _Pending:
    id: str = ""
    event: str = "message"
    data: list[str] = field(default_factory=list)


async def read_events(
    client: httpx.AsyncClient,
    url: str,
    *,
    last_event_id: str | None = None,
    headers: dict[str, str] | None = None,
    stop: Callable[[list[Event]], bool] | None = None,
    timeout_s: float = 60,
) -> list[Event]:
    """The events of one connection, until ``done``/``error`` or until ``stop(events)`` says
    so (then the connection is dropped, as a network blip would)."""
    sent = {**BROWSER_HEADERS, **(headers or {})}
    if last_event_id is not None:
        sent["Last-Event-ID"] = last_event_id
    events: list[Event] = []
    async with client.stream("GET", url, headers=sent, timeout=timeout_s) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        current = _Pending()
        async for line in response.aiter_lines():
            if line == "":
                if current.data:
                    events.append((current.id, current.event, json.loads("\n".join(current.data))))
                    if current.event in ("done", "error") or (stop is not None and stop(events)):
                        return events
                current = _Pending(id=current.id)
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "id":
                current.id = value
            elif name == "event":
                current.event = value
            elif name == "data":
                current.data.append(value)
    return events


async def named_events(
    client: httpx.AsyncClient, url: str, headers: dict[str, str] | None = None
) -> list[tuple[str, dict[str, Any]]]:
    """``(event, data)`` of one connection until ``done``/``error``."""
    return [(name, data) for _, name, data in await read_events(client, url, headers=headers)]
