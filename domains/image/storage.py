"""The object storage port and its local-directory adapter (the S3 adapter is in ``storage_s3``).

Contract of every :class:`Storage` (one test suite checks both adapters):

* ``put`` stores the whole object or nothing: a reader never sees a partial object; putting an
  existing key replaces it. It returns the stored object's size, content type and ETag (the hex
  MD5 of the bytes, as S3 computes it for a single-part put);
* ``get`` returns what the last ``put`` stored (bytes and content type), or ``None``;
* ``exists`` says whether ``get`` would find the key; ``delete`` is idempotent;
* keys are ``/``-separated relative paths; a key with an empty, ``.``-prefixed or
  backslash-containing segment or control characters is refused with :class:`InvalidInput`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from eco2.errors import InvalidInput

MAX_KEY_CHARS = 1024
_BAD_KEY_CHARS = re.compile(r"[\x00-\x1f\x7f\\]")


@dataclass(frozen=True)
class StoredObject:
    key: str
    content_type: str
    size: int
    etag: str
    """Hex MD5 of the bytes, without quotes."""


@dataclass(frozen=True)
class ObjectData:
    info: StoredObject
    body: bytes


class Storage(Protocol):
    async def put(self, key: str, body: bytes, content_type: str) -> StoredObject: ...
    async def get(self, key: str) -> ObjectData | None: ...
    async def exists(self, key: str) -> bool: ...
    async def delete(self, key: str) -> None: ...


def check_storage_key(key: str) -> str:
    """``key`` if it is a safe relative object path, else :class:`InvalidInput`."""
    segments = key.split("/")
    if (
        not 0 < len(key) <= MAX_KEY_CHARS
        or _BAD_KEY_CHARS.search(key)
        or any(not s or s.startswith(".") for s in segments)
    ):
        raise InvalidInput(f"not a valid object key: {key!r}", code="invalid_key")
    return key


def md5_hex(body: bytes) -> str:
    return hashlib.md5(body, usedforsecurity=False).hexdigest()


class LocalStorage:
    """Objects as files under ``root``; each object's content type in ``root/.meta/<key>.json``.

    A put writes a temporary file under ``root/.tmp`` (same file system), fsyncs it and renames
    it into place, so the object appears whole or not at all. The metadata file is written the
    same way, before the object, so a visible object always has its content type.
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    def _object_path(self, key: str) -> Path:
        return self.root / check_storage_key(key)

    def _meta_path(self, key: str) -> Path:
        return self.root / ".meta" / f"{check_storage_key(key)}.json"

    def _write_atomically(self, target: Path, body: bytes) -> None:
        staging = self.root / ".tmp"
        staging.mkdir(parents=True, exist_ok=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = staging / uuid.uuid4().hex
        try:
            with temporary.open("wb") as file:
                file.write(body)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, target)
        finally:
            temporary.unlink(missing_ok=True)

    def _put(self, key: str, body: bytes, content_type: str) -> StoredObject:
        info = StoredObject(key=key, content_type=content_type, size=len(body), etag=md5_hex(body))
        meta = {"content_type": info.content_type, "size": info.size, "etag": info.etag}
        self._write_atomically(self._meta_path(key), json.dumps(meta).encode())
        try:
            self._write_atomically(self._object_path(key), body)
        except BaseException:
            if not self._object_path(key).is_file():
                self._meta_path(key).unlink(missing_ok=True)
            raise
        return info

    def _get(self, key: str) -> ObjectData | None:
        try:
            body = self._object_path(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None
        try:
            content_type = json.loads(self._meta_path(key).read_bytes())["content_type"]
        except (FileNotFoundError, ValueError, KeyError):
            content_type = "application/octet-stream"
        info = StoredObject(key, str(content_type), len(body), md5_hex(body))
        return ObjectData(info=info, body=body)

    def _delete(self, key: str) -> None:
        self._object_path(key).unlink(missing_ok=True)
        self._meta_path(key).unlink(missing_ok=True)

    async def put(self, key: str, body: bytes, content_type: str) -> StoredObject:
        check_storage_key(key)
        return await asyncio.to_thread(self._put, key, body, content_type)

    async def get(self, key: str) -> ObjectData | None:
        check_storage_key(key)
        return await asyncio.to_thread(self._get, key)

    async def exists(self, key: str) -> bool:
        path = self._object_path(key)
        return await asyncio.to_thread(path.is_file)

    async def delete(self, key: str) -> None:
        check_storage_key(key)
        await asyncio.to_thread(self._delete, key)
