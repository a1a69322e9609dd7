"""What the vision stage hands the model of an image: our CDN's URLs as they are, any other image
fetched through the guard and inlined, a URL refused at fetch a permanent stage failure."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import pytest

from eco2 import url_guard
from eco2.errors import Unavailable
from eco2.safe_fetch import ImageFetcher
from eco2.settings import ImageFetchSettings
from pipelines.scan.stages import vision_catalog
from serve.contracts import ModelCallFailed
from serve.vision import ImageGate, VisionTask
from tests.image_origin import PNG, Origin, changing, names, origin_policy, serving

ALLOWED = ("cdn.eco2.local",)
TASK = VisionTask(vision_catalog())
LIMITS = ImageFetchSettings(max_bytes=64 * 1024, total_timeout_s=2.0)


@pytest.fixture(scope="module")
async def origin() -> AsyncIterator[Origin]:
    async with serving() as running:
        yield running


async def _never(url: str) -> str:
    raise AssertionError(f"{url} was fetched")


def _image_part(messages: list[dict[str, Any]]) -> dict[str, Any]:
    part: dict[str, Any] = messages[1]["content"][1]["image_url"]
    return part


@pytest.mark.parametrize(
    "url",
    [
        "https://cdn.eco2.local/scan/pet-bottle.jpg",
        "http://cdn.eco2.local/scan/a.jpg",
        "https://CDN.eco2.local:8443/scan/a.jpg",  # not the canonical prefix: parsed once
    ],
)
async def test_an_allow_listed_url_goes_to_the_model_untouched(url: str) -> None:
    gate = ImageGate(ALLOWED, _never)

    messages = TASK.messages(await gate.for_model(url), None)

    assert _image_part(messages) == {"url": url, "detail": "low"}


async def test_another_host_is_fetched_through_the_guard_and_inlined(origin: Origin) -> None:
    fetcher = ImageFetcher(lookup=names(), policy=origin_policy, limits=LIMITS)
    gate = ImageGate(ALLOWED, fetcher.data_url)
    try:
        messages = TASK.messages(await gate.for_model(origin.url("/img.png")), "이거 뭐야?")
    finally:
        await fetcher.close()

    expected = "data:image/png;base64," + base64.b64encode(PNG).decode()
    assert _image_part(messages) == {"url": expected, "detail": "low"}


async def test_a_rebinding_host_public_at_submit_is_refused_at_fetch(origin: Origin) -> None:
    lookup = changing("rebind.test", [["93.184.216.34"], ["127.0.0.1"]])
    url = f"http://rebind.test:{origin.port}/img.png"
    await url_guard.check(url, ALLOWED, lookup=lookup)  # what the intake saw
    fetcher = ImageFetcher(lookup=lookup, limits=LIMITS)
    gate = ImageGate(ALLOWED, fetcher.data_url)
    try:
        with pytest.raises(ModelCallFailed, match="non-public address") as refused:
            await gate.for_model(url)
    finally:
        await fetcher.close()
    assert (refused.value.retriable, refused.value.kind) == (False, "image")


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data",
        "data:image/png;base64,AAAA",
        "https://user:pw@cdn.eco2.local/a.jpg",
        "https://cdn.eco2.local@internal.test/a.jpg",
    ],
)
async def test_a_url_of_a_refused_shape_is_a_permanent_failure_without_a_fetch(url: str) -> None:
    gate = ImageGate(ALLOWED, _never)

    with pytest.raises(ModelCallFailed) as refused:
        await gate.for_model(url)
    assert not refused.value.retriable


async def test_a_fetch_that_may_pass_later_is_tried_again_then_stays_retriable(
    origin: Origin,
) -> None:
    fetcher = ImageFetcher(lookup=names(), policy=origin_policy, limits=LIMITS)
    calls: list[str] = []

    async def counted(url: str) -> str:
        calls.append(url)
        return await fetcher.data_url(url)

    gate = ImageGate(ALLOWED, counted, attempts=3, backoff_s=0.0)
    try:
        with pytest.raises(ModelCallFailed, match="HTTP 503") as busy:
            await gate.for_model(origin.url("/busy"))
    finally:
        await fetcher.close()
    assert busy.value.retriable
    assert len(calls) == 3


async def test_a_fetch_that_fails_once_for_now_succeeds_on_the_next_try() -> None:
    answers: list[str | Exception] = [Unavailable("timed out"), "data:image/png;base64,AA=="]

    async def flaky(url: str) -> str:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    gate = ImageGate(ALLOWED, flaky, backoff_s=0.0)
    assert await gate.for_model("https://images.example/a.png") == "data:image/png;base64,AA=="
    assert answers == []
