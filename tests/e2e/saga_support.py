"""Shared steps of the end-to-end tests that go through the gateway as a browser would."""

from __future__ import annotations

import asyncio
import struct
import time
import zlib
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx

from tests.sse import named_events

T = TypeVar("T")
REWARDING_INPUT = "clear pet bottle nolabel empty"
"""What the simulator reads as an emptied, label-free clear PET bottle (a rewarded scan)."""


def tiny_png() -> bytes:
    """A valid 1×1 PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\x10\x80\x10")
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


async def eventually(
    probe: Callable[[], Awaitable[T | None]], what: str, within_s: float = 30.0
) -> T:
    """Poll ``probe`` until it returns something other than None, or fail saying ``what``."""
    deadline = time.monotonic() + within_s
    while True:
        found = await probe()
        if found is not None:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within_s:.0f} s: {what}")
        await asyncio.sleep(0.1)


async def sign_in(client: httpx.AsyncClient, nickname: str) -> str:
    """Dev login; the client keeps the s_access/s_refresh cookies. Returns the user id."""
    answer = await client.post("/api/v1/auth/dev-login", json={"nickname": nickname})
    assert answer.status_code == 200, answer.text
    assert {"s_access", "s_refresh"} <= set(client.cookies.keys())
    return str(answer.json()["user_id"])


async def upload_image(client: httpx.AsyncClient) -> str:
    """Presigned upload of a PNG through the gateway; returns its cdn_url."""
    ticket = await client.post(
        "/api/v1/images/scan", json={"filename": "bottle.png", "content_type": "image/png"}
    )
    assert ticket.status_code == 201, ticket.text
    body = ticket.json()
    put = await client.put(body["upload_url"], content=tiny_png(), headers=body["required_headers"])
    assert put.status_code == 200, put.text
    return str(body["cdn_url"])


async def rewarded_scan(client: httpx.AsyncClient) -> dict[str, Any]:
    """Upload, scan, follow the stream to ``done``; returns the result (fetched once, on done)."""
    image_url = await upload_image(client)
    submitted = await client.post(
        "/api/v1/scan", json={"image_url": image_url, "user_input": REWARDING_INPUT}
    )
    assert submitted.status_code == 202, submitted.text
    job = submitted.json()
    events = await named_events(client, job["stream_url"])
    assert events[-1][0] == "done", events
    result = await client.get(job["result_url"])
    assert result.status_code == 200, result.text
    return dict(result.json())
