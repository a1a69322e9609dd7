"""Upload rows in the image database (``image_uploads``) and their events (``event_store``).

Contract:

* :meth:`UploadRepository.add` records a pending upload (one row per key; keys are unique);
* :meth:`UploadRepository.completing` locks a pending row (``SELECT ... FOR UPDATE``) for the
  duration of its block and refuses a missing row (:class:`NotFound`) or one already uploaded
  (:class:`Conflict`), so concurrent PUTs of one key store it once; inside the block,
  :meth:`Completion.mark_uploaded` marks it uploaded and appends its events, and both commit
  together when the block ends (or neither, when it raises).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from eco2 import eventstore
from eco2.errors import Conflict, NotFound
from eco2.events import EventEnvelope

PENDING = "pending"
UPLOADED = "uploaded"


@dataclass(frozen=True)
class Upload:
    key: str
    user_id: str
    channel: str
    content_type: str
    filename: str
    status: str
    version: int
    size: int | None
    sha256: str | None
    etag: str | None
    created_at: datetime
    expires_at: datetime
    uploaded_at: datetime | None

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Upload:
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})


@dataclass(frozen=True)
class NewUpload:
    key: str
    user_id: str
    channel: str
    content_type: str
    filename: str
    metadata: dict[str, Any]
    expires_at: datetime


@dataclass(frozen=True)
class Receipt:
    """What a verified PUT stored."""

    size: int
    sha256: str
    etag: str
    uploaded_at: datetime


_INSERT = """
INSERT INTO image_uploads (key, user_id, channel, content_type, filename, metadata, status,
                           expires_at)
VALUES ($1, $2, $3, $4, $5, $6::jsonb, 'pending', $7)
"""

_MARK_UPLOADED = """
UPDATE image_uploads
SET status = 'uploaded', size = $3, sha256 = $4, etag = $5, uploaded_at = $6, version = $7
WHERE key = $1 AND version = $2 AND status = 'pending'
RETURNING *
"""


class Completion:
    """A locked pending upload, inside the transaction of :meth:`UploadRepository.completing`."""

    def __init__(self, conn: asyncpg.Connection, upload: Upload) -> None:
        self._conn = conn
        self.upload = upload

    async def mark_uploaded(self, receipt: Receipt, events: Sequence[EventEnvelope]) -> Upload:
        """Mark the upload uploaded and append ``events`` (versions after the row's version)."""
        before = self.upload.version
        row = await self._conn.fetchrow(
            _MARK_UPLOADED,
            self.upload.key,
            before,
            receipt.size,
            receipt.sha256,
            receipt.etag,
            receipt.uploaded_at,
            before + len(events),
        )
        if row is None:
            raise Conflict(f"upload {self.upload.key!r} changed meanwhile; retry")
        await eventstore.append(self._conn, events)
        self.upload = Upload.from_row(row)
        return self.upload


class UploadRepository:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def add(self, upload: NewUpload) -> None:
        await self._pool.execute(
            _INSERT,
            upload.key,
            upload.user_id,
            upload.channel,
            upload.content_type,
            upload.filename,
            upload.metadata,
            upload.expires_at,
        )

    async def get(self, key: str) -> Upload | None:
        row = await self._pool.fetchrow("SELECT * FROM image_uploads WHERE key = $1", key)
        return None if row is None else Upload.from_row(row)

    @asynccontextmanager
    async def completing(self, key: str) -> AsyncIterator[Completion]:
        """Lock the pending upload ``key`` for the block; see the module contract."""
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow("SELECT * FROM image_uploads WHERE key = $1 FOR UPDATE", key)
            if row is None:
                raise NotFound(f"no upload {key!r}; request an upload URL first")
            upload = Upload.from_row(row)
            if upload.status == UPLOADED:
                raise already_uploaded(key)
            yield Completion(conn, upload)


def already_uploaded(key: str) -> Conflict:
    return Conflict(
        f"{key!r} is already uploaded; request a new upload URL to upload another file",
        code="already_uploaded",
    )
