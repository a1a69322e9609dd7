"""LocalStorage against the storage contract, plus what only a directory adapter promises."""

from __future__ import annotations

from pathlib import Path

import pytest

from domains.image.storage import LocalStorage, Storage
from tests.unit.domains.image import samples
from tests.unit.domains.image.storage_contract import StorageContract

KEY = "chat/2025/02/01/" + "c" * 32 + ".png"


class TestLocalStorage(StorageContract):
    @pytest.fixture
    def storage(self, tmp_path: Path) -> Storage:
        return LocalStorage(tmp_path / "objects")


async def test_objects_are_files_under_the_root_and_no_temporary_file_is_left(
    tmp_path: Path,
) -> None:
    storage = LocalStorage(tmp_path)
    await storage.put(KEY, samples.png(), "image/png")
    assert (tmp_path / KEY).read_bytes() == samples.png()
    assert list((tmp_path / ".tmp").iterdir()) == []


async def test_an_object_without_its_metadata_file_is_served_as_octet_stream(
    tmp_path: Path,
) -> None:
    storage = LocalStorage(tmp_path)
    await storage.put(KEY, samples.png(), "image/png")
    (tmp_path / ".meta" / f"{KEY}.json").unlink()
    found = await storage.get(KEY)
    assert found is not None
    assert found.info.content_type == "application/octet-stream"


async def test_a_failed_write_leaves_neither_object_nor_temporary_file(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    (tmp_path / "chat").write_bytes(b"a file where a directory must go")
    with pytest.raises(OSError, match="Not a directory"):
        await storage.put(KEY, samples.png(), "image/png")
    assert not await storage.exists(KEY)
    assert list((tmp_path / ".tmp").iterdir()) == []
    assert not (tmp_path / ".meta" / f"{KEY}.json").exists()
