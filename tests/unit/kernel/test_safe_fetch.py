"""The guarded image fetch over real HTTP: a local origin on 127.0.0.1, reached under the test
name ``images.test``, which the test's look-up and policy treat as public (tests/image_origin.py).
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator

import pytest

from eco2 import url_guard
from eco2.errors import InvalidInput, TooLarge, Unavailable, UnsupportedMediaType
from eco2.safe_fetch import ImageFetcher
from eco2.settings import ImageFetchSettings
from tests.image_origin import PNG, STREAM_TOTAL, Origin, changing, names, origin_policy, serving

LIMITS = ImageFetchSettings(max_bytes=64 * 1024, max_redirects=3, total_timeout_s=2.0)


@pytest.fixture(scope="module")
async def origin() -> AsyncIterator[Origin]:
    async with serving() as running:
        yield running


@pytest.fixture
async def fetcher() -> AsyncIterator[ImageFetcher]:
    fetching = ImageFetcher(lookup=names(), policy=origin_policy, limits=LIMITS)
    yield fetching
    await fetching.close()


async def test_an_image_is_fetched_and_carries_its_sniffed_type(
    origin: Origin, fetcher: ImageFetcher
) -> None:
    image = await fetcher.fetch(origin.url("/img.png"))

    assert (image.content_type, image.body) == ("image/png", PNG)
    assert image.data_url() == "data:image/png;base64," + base64.b64encode(PNG).decode()


async def test_an_image_served_without_a_type_is_judged_by_its_bytes(
    origin: Origin, fetcher: ImageFetcher
) -> None:
    image = await fetcher.fetch(origin.url("/untyped"))  # S3's default for an untyped upload
    assert (image.content_type, image.body) == ("image/png", PNG)


async def test_a_redirect_to_an_allowed_name_is_followed(
    origin: Origin, fetcher: ImageFetcher
) -> None:
    image = await fetcher.fetch(origin.url("/redirect?to=/img.png"))

    assert image.body == PNG


@pytest.mark.parametrize(
    ("target", "why"),
    [
        ("http://internal.test:{port}/img.png", "'internal.test' resolves to a non-public"),
        ("http://metadata.test/latest/meta-data", "'metadata.test' resolves to a non-public"),
        ("http://127.0.0.1:{port}/img.png", "redirected to a refused URL: .* not an IP address"),
        ("http://169.254.169.254/latest/meta-data", "redirected to a refused URL"),
        ("http://[::1]:{port}/img.png", "redirected to a refused URL"),
        ("file:///etc/passwd", "redirected to a refused URL: .* http"),
        ("http://nowhere.test/a.png", "does not resolve"),
    ],
)
async def test_a_redirect_to_a_private_name_or_an_ip_literal_is_refused(
    origin: Origin, fetcher: ImageFetcher, target: str, why: str
) -> None:
    with pytest.raises(InvalidInput, match=why) as refused:
        await fetcher.fetch(origin.url(f"/redirect?to={target}"))
    assert not refused.value.retriable


@pytest.mark.parametrize(
    "host",
    [
        "loopback.test",
        "internal.test",
        "metadata.test",
        "v6-loopback.test",
        "link-local.test",
        "mixed.test",
    ],
)
async def test_a_name_resolving_to_a_non_public_address_is_never_connected_to(
    origin: Origin, fetcher: ImageFetcher, host: str
) -> None:
    with pytest.raises(InvalidInput, match="non-public"):
        await fetcher.fetch(origin.url("/img.png", host=host))


async def test_an_ip_literal_is_refused_before_any_request(fetcher: ImageFetcher) -> None:
    with pytest.raises(InvalidInput, match="not an IP address"):
        await fetcher.fetch("http://169.254.169.254/latest/meta-data")


async def test_too_many_redirects_are_refused(origin: Origin, fetcher: ImageFetcher) -> None:
    with pytest.raises(InvalidInput, match="redirects more than 3 times"):
        await fetcher.fetch(origin.url("/loop"))


async def test_an_oversize_stream_is_refused_and_no_longer_read(
    origin: Origin, fetcher: ImageFetcher
) -> None:
    origin.stream_ended.clear()
    with pytest.raises(TooLarge, match="more than 64 KiB"):
        await fetcher.fetch(origin.url("/stream"))

    # The server notices the client went away.
    await asyncio.wait_for(origin.stream_ended.wait(), 5)
    # What the socket buffers took is far below what the server meant to send.
    assert origin.streamed[-1] < STREAM_TOTAL // 4


async def test_an_oversize_content_length_is_refused_unread(
    origin: Origin, fetcher: ImageFetcher
) -> None:
    with pytest.raises(TooLarge):
        await fetcher.fetch(origin.url("/declared"))


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("/html", "'text/html', not a raster image"),
        ("/svg", "'image/svg\\+xml', not a raster image"),
        ("/liar", "its bytes are no known format"),
        ("/bmp", "its bytes are image/bmp"),
        ("/gzip", "'gzip'-encoded"),
        ("/untyped-html", "its bytes are no known format"),
    ],
)
async def test_what_is_not_a_raster_image_is_refused(
    origin: Origin, fetcher: ImageFetcher, path: str, why: str
) -> None:
    with pytest.raises(UnsupportedMediaType, match=why) as refused:
        await fetcher.fetch(origin.url(path))
    assert not refused.value.retriable


async def test_a_missing_image_is_permanent_and_a_busy_origin_retriable(
    origin: Origin, fetcher: ImageFetcher
) -> None:
    with pytest.raises(InvalidInput, match="HTTP 404") as missing:
        await fetcher.fetch(origin.url("/missing"))
    assert not missing.value.retriable
    with pytest.raises(Unavailable, match="HTTP 503") as busy:
        await fetcher.fetch(origin.url("/busy"))
    assert busy.value.retriable


async def test_a_slow_origin_times_out_retriably(origin: Origin) -> None:
    limits = ImageFetchSettings(total_timeout_s=0.3)
    fetcher = ImageFetcher(lookup=names(), policy=origin_policy, limits=limits)
    try:
        with pytest.raises(Unavailable, match=r"within 0\.3 s") as slow:
            await fetcher.fetch(origin.url("/slow"))
    finally:
        await fetcher.close()
    assert slow.value.retriable


async def test_a_name_that_turned_private_since_submit_is_refused_at_fetch(
    origin: Origin,
) -> None:
    lookup = changing("rebind.test", [["93.184.216.34"], ["127.0.0.1"]])
    url = f"http://rebind.test:{origin.port}/img.png"
    await url_guard.check(url, (), lookup=lookup)  # at submit: public
    fetcher = ImageFetcher(lookup=lookup, limits=LIMITS)
    try:
        with pytest.raises(InvalidInput, match="non-public"):
            await fetcher.fetch(url)
    finally:
        await fetcher.close()


async def test_the_production_policy_refuses_the_local_origin(origin: Origin) -> None:
    fetcher = ImageFetcher(lookup=names(), limits=LIMITS)
    try:
        with pytest.raises(InvalidInput, match="non-public"):
            await fetcher.fetch(origin.url("/img.png"))
    finally:
        await fetcher.close()
