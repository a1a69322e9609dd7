"""The contract every object storage adapter passes (see ``domains.image.storage``).

Run against :class:`LocalStorage` in a temporary directory here (unit tier) and against
:class:`S3Storage` on a moto server in ``tests/integration/test_image_s3_storage.py``.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid

import pytest

from domains.image.storage import Storage
from eco2.errors import InvalidInput
from tests.unit.domains.image import samples


def _key(suffix: str = ".png") -> str:
    return f"scan/2025/01/31/{uuid.uuid4().hex}{suffix}"


class StorageContract:
    @pytest.fixture
    def storage(self) -> Storage:  # overridden by each adapter's test class
        raise NotImplementedError

    async def test_a_put_object_is_read_back_with_its_content_type(self, storage: Storage) -> None:
        key, body = _key(), samples.png()
        stored = await storage.put(key, body, "image/png")
        assert (stored.key, stored.size, stored.content_type) == (key, len(body), "image/png")
        assert stored.etag == hashlib.md5(body, usedforsecurity=False).hexdigest()
        found = await storage.get(key)
        assert found is not None
        assert found.body == body
        assert found.info == stored

    async def test_exists_follows_put_and_delete(self, storage: Storage) -> None:
        key = _key(".jpg")
        assert not await storage.exists(key)
        await storage.put(key, samples.jpeg(), "image/jpeg")
        assert await storage.exists(key)
        await storage.delete(key)
        assert not await storage.exists(key)
        assert await storage.get(key) is None

    async def test_a_missing_key_reads_as_none_and_deletes_quietly(self, storage: Storage) -> None:
        key = _key()
        assert await storage.get(key) is None
        await storage.delete(key)
        await storage.delete(key)

    async def test_a_second_put_replaces_the_object(self, storage: Storage) -> None:
        key = _key(".gif")
        await storage.put(key, samples.png(), "image/png")
        await storage.put(key, samples.gif(), "image/gif")
        found = await storage.get(key)
        assert found is not None
        assert (found.body, found.info.content_type) == (samples.gif(), "image/gif")

    async def test_keys_are_independent(self, storage: Storage) -> None:
        first, second = _key(), _key()
        await storage.put(first, samples.png(1, 1), "image/png")
        await storage.put(second, samples.png(3, 3), "image/png")
        await storage.delete(first)
        found = await storage.get(second)
        assert found is not None
        assert found.body == samples.png(3, 3)

    async def test_concurrent_puts_of_different_keys_all_land(self, storage: Storage) -> None:
        keys = [_key() for _ in range(8)]
        await asyncio.gather(
            *(storage.put(k, samples.png(i + 1, 1), "image/png") for i, k in enumerate(keys))
        )
        for i, key in enumerate(keys):
            found = await storage.get(key)
            assert found is not None
            assert found.body == samples.png(i + 1, 1)

    @pytest.mark.parametrize(
        "key", ["", "../escape.png", "scan/../../escape.png", "scan//x.png", "/abs.png", "a\\b"]
    )
    async def test_unsafe_keys_are_refused(self, storage: Storage, key: str) -> None:
        with pytest.raises(InvalidInput):
            await storage.put(key, b"x", "image/png")
        with pytest.raises(InvalidInput):
            await storage.get(key)
        with pytest.raises(InvalidInput):
            await storage.exists(key)
        with pytest.raises(InvalidInput):
            await storage.delete(key)
