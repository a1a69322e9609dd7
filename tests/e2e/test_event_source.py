"""A scan's stream as a browser's ``EventSource`` sees it, through the gateway: cookies only,
``Accept: text/event-stream``, events parsed by the SSE rules (``id``/``event``/``data`` lines, a
blank line ends an event, ``:`` lines are comments), and after a dropped connection a reconnect
with ``Last-Event-ID`` that continues where it stopped, with nothing repeated or skipped."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.conftest import StackUrls
from tests.e2e.saga_support import REWARDING_INPUT, sign_in

pytestmark = pytest.mark.e2e
BROWSER_HEADERS = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}


@dataclass
class Received:
    id: str = ""
    event: str = "message"
    data: list[str] = field(default_factory=list)


async def _read(
    client: httpx.AsyncClient, url: str, last_event_id: str | None, stop_after: int | None
) -> list[tuple[str, str, dict[str, Any]]]:
    """``(id, event, data)`` of each event, by the EventSource parsing rules; stops after
    ``stop_after`` events (the connection drops) or at ``done``/``error``."""
    headers = dict(BROWSER_HEADERS)
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    events: list[tuple[str, str, dict[str, Any]]] = []
    async with client.stream("GET", url, headers=headers, timeout=60) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        current = Received()
        async for line in response.aiter_lines():
            if line == "":
                if current.data:
                    events.append((current.id, current.event, json.loads("\n".join(current.data))))
                    if current.event in ("done", "error") or len(events) == stop_after:
                        return events
                current = Received(id=current.id)
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


async def test_event_source_resumes_after_a_drop_without_repeats_or_gaps(
    stack: StackUrls,
) -> None:
    assert stack.api_url is not None
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=30) as browser:
        await sign_in(browser, "event-source")
        body = {
            "image_url": "https://cdn.eco2.local/scan/bottle.png",
            "user_input": REWARDING_INPUT,
        }
        job = (await browser.post("/api/v1/scan", json=body)).json()
        first = await _read(browser, job["stream_url"], None, stop_after=2)
        rest = await _read(browser, job["stream_url"], first[-1][0], stop_after=None)
        result = await browser.get(job["result_url"])
    seen = first + rest
    seqs = [data["seq"] for _, _, data in seen]
    assert seqs == sorted(seqs), seqs
    assert len(set(seqs)) == len(seqs), seqs
    assert [name for _, name, _ in seen] == [
        "queued",
        "vision",
        "vision",
        "rule",
        "rule",
        "answer",
        "answer",
        "reward",
        "reward",
        "done",
    ]
    assert all(event_id for event_id, _, _ in seen)
    assert seen[-1][2]["result"] == result.json()  # the result was stored before done
    assert result.status_code == 200
