"""A scan's stream as a browser's ``EventSource`` sees it, through the gateway: cookies only,
``Accept: text/event-stream``, events parsed by the SSE rules (``id``/``event``/``data`` lines, a
blank line ends an event, ``:`` lines are comments), and after a dropped connection a reconnect
with ``Last-Event-ID`` that continues where it stopped, with nothing repeated or skipped."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import StackUrls
from tests.e2e.saga_support import REWARDING_INPUT, sign_in
from tests.sse import Event, read_events

pytestmark = pytest.mark.e2e


async def _read(
    client: httpx.AsyncClient, url: str, last_event_id: str | None, stop_after: int | None
) -> list[Event]:
    return await read_events(
        client,
        url,
        last_event_id=last_event_id,
        stop=None if stop_after is None else (lambda events: len(events) == stop_after),
    )


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
