"""The image domain's use cases: hand out an upload URL, receive a PUT, report, serve objects.

Handing out an upload URL validates the request (channel, file type, metadata), then takes one
from the caller's per-user limit (``rate_limit.upload``; over it: 429 with ``Retry-After``), and
only then records the pending upload.

Receiving an upload checks, in this order and before anything is written: the URL's signature
and expiry (403), the Content-Type header against the signed type (415), Content-Length against
``max_bytes`` (413, without reading the body), the upload row (404 unknown, 409 already
uploaded), the streamed body's size (413, aborted as soon as it passes the limit) and its magic
bytes (415). Only then is the object stored, while the row is locked, and the row marked
uploaded together with its ``ImageUploaded`` event in one transaction. A refused PUT changes
nothing; if the transaction fails after the object was stored, the object is deleted again.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from domains.image import model
from domains.image.events import AGGREGATE_TYPE, ImageUploaded
from domains.image.repository import (
    UPLOADED,
    NewUpload,
    Receipt,
    Upload,
    UploadRepository,
    already_uploaded,
)
from domains.image.storage import ObjectData, Storage
from eco2.errors import Forbidden, InvalidInput, NotFound, TooLarge
from eco2.events import EventEnvelope, EventMetadata
from eco2.ratelimit import Quota
from eco2.settings import ImageSettings

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class UploadRequest:
    filename: str
    content_type: str
    metadata: dict[str, Any] | None = None


@dataclass(frozen=True)
class SignedPut:
    """A PUT to an upload URL, as received: the query's parts and the relevant headers."""

    key: str
    expires: str | None
    uid: str | None
    ct: str | None
    sig: str | None
    content_type_header: str | None
    content_length_header: str | None
    traceparent: str | None = None
    correlation_id: str | None = None


async def read_limited(chunks: AsyncIterator[bytes], limit: int) -> bytes:
    """The whole body, or :class:`TooLarge` as soon as more than ``limit`` bytes arrived."""
    body = bytearray()
    async for chunk in chunks:
        body += chunk
        if len(body) > limit:
            raise _too_large(limit)
    return bytes(body)


def _too_large(limit: int) -> TooLarge:
    return TooLarge(f"the file is larger than {limit} bytes; upload a smaller image")


def _declared_length(header: str | None, limit: int) -> None:
    if header is None:
        return
    if not header.strip().isdecimal():
        raise InvalidInput("Content-Length must be a byte count", code="invalid_content_length")
    if int(header) > limit:
        raise _too_large(limit)


class Uploads:
    def __init__(
        self,
        settings: ImageSettings,
        repository: UploadRepository,
        storage: Storage,
        clock: Clock = utc_now,
        *,
        quota: Quota | None = None,
    ) -> None:
        """``quota``: the per-user limit on upload URLs (``None``: none, for tests)."""
        self._settings = settings
        self._quota = quota or Quota.off("upload")
        self._repository = repository
        self._storage = storage
        self._clock = clock
        self._signing_key = settings.signing_key.get_secret_value().encode()

    async def grant(self, user_id: str, channel: str, request: UploadRequest) -> dict[str, Any]:
        """Record a pending upload and return its signed upload URL and future CDN URL."""
        model.check_channel(channel)
        content_type = request.content_type.strip().lower()
        extension = model.extension_of(request.filename, content_type, self._settings.content_types)
        metadata = model.check_metadata(request.metadata)
        await self._quota.check(user_id)
        now = self._clock()
        key = model.build_key(channel, extension, now, uuid.uuid4())
        expires = int(now.timestamp()) + self._settings.url_ttl_s
        ticket = model.UploadTicket(
            key=key, expires=expires, uid=user_id, content_type=content_type
        )
        await self._repository.add(
            NewUpload(
                key=key,
                user_id=user_id,
                channel=channel,
                content_type=content_type,
                filename=request.filename,
                metadata=metadata,
                expires_at=datetime.fromtimestamp(expires, UTC),
            )
        )
        return {
            "key": key,
            "upload_url": ticket.upload_url(self._signing_key),
            "cdn_url": model.cdn_url(self._settings.cdn_base_url, key),
            "expires_in": self._settings.url_ttl_s,
            "required_headers": {"Content-Type": content_type},
        }

    async def _pending(self, ticket: model.UploadTicket) -> Upload:
        upload = await self._repository.get(ticket.key)
        if upload is None:
            raise NotFound(f"no upload {ticket.key!r}; request an upload URL first")
        if upload.user_id != ticket.uid or upload.content_type != ticket.content_type:
            raise Forbidden(
                "this upload URL was not issued for this upload; use the upload_url returned "
                "by POST /api/v1/images/{channel} unchanged",
                code="invalid_upload_url",
            )
        if upload.status == UPLOADED:
            raise already_uploaded(ticket.key)
        return upload

    async def receive(self, put: SignedPut, body: AsyncIterator[bytes]) -> dict[str, Any]:
        """Verify and store one PUT (see the module docstring for the order of checks)."""
        ticket, sig = model.ticket_of(
            model.check_key(put.key), put.expires, put.uid, put.ct, put.sig
        )
        model.verify_ticket(ticket, sig, self._signing_key, self._clock())
        model.check_declared_type(put.content_type_header, ticket.content_type)
        _declared_length(put.content_length_header, self._settings.max_bytes)
        await self._pending(ticket)
        data = await read_limited(body, self._settings.max_bytes)
        if not data:
            raise InvalidInput("the request body is empty; PUT the image file's bytes")
        model.check_magic(data[: model.SNIFF_BYTES], ticket.content_type)
        upload = await self._store(ticket, data, put)
        return {
            "key": upload.key,
            "status": upload.status,
            "cdn_url": model.cdn_url(self._settings.cdn_base_url, upload.key),
            "size": upload.size,
            "sha256": upload.sha256,
            "etag": upload.etag,
        }

    async def _store(self, ticket: model.UploadTicket, data: bytes, put: SignedPut) -> Upload:
        """Store the object while its row is locked; commit the row and event, or delete it."""
        stored = False
        try:
            async with self._repository.completing(ticket.key) as completion:
                info = await self._storage.put(ticket.key, data, ticket.content_type)
                stored = True
                receipt = Receipt(
                    size=info.size,
                    sha256=hashlib.sha256(data).hexdigest(),
                    etag=info.etag,
                    uploaded_at=self._clock(),
                )
                event = self._uploaded_event(completion.upload, receipt, put)
                return await completion.mark_uploaded(receipt, [event])
        except BaseException:
            if stored:  # the transaction did not commit: take the object back
                await self._storage.delete(ticket.key)
            raise

    def _uploaded_event(self, upload: Upload, receipt: Receipt, put: SignedPut) -> EventEnvelope:
        event = ImageUploaded(
            key=upload.key,
            user_id=upload.user_id,
            channel=upload.channel,
            content_type=upload.content_type,
            size=receipt.size,
            sha256=receipt.sha256,
            cdn_url=model.cdn_url(self._settings.cdn_base_url, upload.key),
            uploaded_at=receipt.uploaded_at,
        )
        return EventEnvelope.of(
            event,
            aggregate_type=AGGREGATE_TYPE,
            aggregate_id=upload.key,
            aggregate_version=upload.version + 1,
            metadata=EventMetadata(
                traceparent=put.traceparent,
                correlation_id=put.correlation_id or upload.key,
                user_id=upload.user_id,
            ),
        )

    async def status(self, user_id: str, channel: str, key: str) -> dict[str, Any]:
        """``{key, status}`` of the caller's own upload in ``channel``; anything else is 404."""
        model.check_channel(channel)
        upload = await self._repository.get(key)
        if upload is None or upload.user_id != user_id or upload.channel != channel:
            raise NotFound(f"no upload {key!r} of yours in channel {channel!r}")
        return {"key": upload.key, "status": upload.status}

    async def read_object(self, key: str) -> ObjectData:
        """A stored object, or :class:`NotFound`."""
        found = await self._storage.get(model.check_key(key))
        if found is None:
            raise NotFound(f"no image {key!r}")
        return found
