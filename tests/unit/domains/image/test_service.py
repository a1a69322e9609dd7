"""The image service's composition root and body reading, without sockets."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from domains.image.service import build_storage, consumers, create_app
from domains.image.storage import LocalStorage
from domains.image.storage_s3 import S3Storage
from domains.image.uploads import _declared_length, read_limited
from eco2.errors import InvalidInput, TooLarge
from eco2.settings import Settings


def test_the_image_domain_reacts_to_no_events() -> None:
    assert consumers(Settings()) == []


def test_the_app_has_the_compat_routes_and_a_health_check() -> None:
    app = create_app(Settings())
    paths = app.openapi()["paths"]
    routes = {(method.upper(), path) for path, item in paths.items() for method in item}
    probes = {getattr(route, "path", None) for route in app.routes}
    assert {"/healthz", "/readyz"} <= probes
    assert routes == {
        ("POST", "/api/v1/images/{channel}"),
        ("POST", "/api/v1/images/{channel}/callback"),
        ("PUT", "/api/v1/images/upload/{key}"),
        ("GET", "/api/v1/images/objects/{key}"),
    }


def test_local_storage_defaults_to_objects_under_the_run_dir(tmp_path: Path) -> None:
    storage = build_storage(Settings(run_dir=tmp_path))
    assert isinstance(storage, LocalStorage)
    assert storage.root == tmp_path / "objects"
    chosen = build_storage(Settings(image={"storage_dir": tmp_path / "elsewhere"}))
    assert isinstance(chosen, LocalStorage)
    assert chosen.root == tmp_path / "elsewhere"


def test_the_s3_backend_needs_a_bucket_and_builds_without_connecting() -> None:
    with pytest.raises(ValueError, match="S3_BUCKET"):
        build_storage(Settings(image={"backend": "s3"}))
    storage = build_storage(
        Settings(
            image={
                "backend": "s3",
                "s3_bucket": "eco2-images",
                "s3_endpoint_url": "http://127.0.0.1:9",
            }
        )
    )
    assert isinstance(storage, S3Storage)


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def test_a_body_within_the_limit_is_read_whole() -> None:
    assert await read_limited(_chunks(b"ab", b"cd", b""), 4) == b"abcd"


async def test_reading_stops_at_the_first_chunk_past_the_limit() -> None:
    seen: list[bytes] = []

    async def counted() -> AsyncIterator[bytes]:
        for part in (b"ab", b"cde", b"never read"):
            seen.append(part)
            yield part

    with pytest.raises(TooLarge, match="larger than 4 bytes"):
        await read_limited(counted(), 4)
    assert seen == [b"ab", b"cde"]


def test_a_declared_length_above_the_limit_is_refused_before_reading() -> None:
    _declared_length(None, 10)
    _declared_length("10", 10)
    with pytest.raises(TooLarge):
        _declared_length("11", 10)
    with pytest.raises(InvalidInput, match="byte count"):
        _declared_length("ten", 10)
