"""The S3 adapter of the object storage port (``ECO2_IMAGE__BACKEND=s3``; needs the ``s3`` extra,
so the service imports this module only when that backend is chosen).

It follows the contract in :mod:`domains.image.storage`. boto3 is blocking, so every call runs in
a worker thread (boto3 clients are thread-safe). Credentials come from boto3's usual chain
(environment, shared config, instance/pod role); nothing here reads them. Failures of S3 itself
raise :class:`~eco2.errors.Unavailable` (retriable).
"""

from __future__ import annotations

import asyncio
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from domains.image.storage import ObjectData, StoredObject, check_storage_key, md5_hex
from eco2.errors import Unavailable
from eco2.settings import ImageSettings

_MISSING = {"404", "NoSuchKey", "NotFound"}


def _missing(exc: ClientError) -> bool:
    return str(exc.response.get("Error", {}).get("Code")) in _MISSING


def _unavailable(action: str, key: str, exc: Exception) -> Unavailable:
    return Unavailable(f"object storage could not {action} {key!r}: {exc}; retry later")


class S3Storage:
    """Objects in one S3 bucket, keyed by the object key."""

    def __init__(self, client: Any, bucket: str) -> None:
        self._client = client
        self._bucket = bucket

    @classmethod
    def from_settings(cls, settings: ImageSettings) -> S3Storage:
        """A client on ``s3_endpoint_url`` (AWS when unset) in ``s3_region``, for ``s3_bucket``."""
        if not settings.s3_bucket:
            raise ValueError("ECO2_IMAGE__S3_BUCKET must be set when ECO2_IMAGE__BACKEND=s3")
        client = boto3.client(
            "s3", endpoint_url=settings.s3_endpoint_url, region_name=settings.s3_region
        )
        return cls(client, settings.s3_bucket)

    def _put(self, key: str, body: bytes, content_type: str) -> StoredObject:
        reply = self._client.put_object(
            Bucket=self._bucket, Key=key, Body=body, ContentType=content_type
        )
        etag = str(reply.get("ETag") or md5_hex(body)).strip('"')
        return StoredObject(key=key, content_type=content_type, size=len(body), etag=etag)

    def _get(self, key: str) -> ObjectData | None:
        try:
            reply = self._client.get_object(Bucket=self._bucket, Key=key)
        except ClientError as exc:
            if _missing(exc):
                return None
            raise
        body = reply["Body"].read()
        info = StoredObject(
            key=key,
            content_type=str(reply.get("ContentType") or "application/octet-stream"),
            size=len(body),
            etag=str(reply.get("ETag") or md5_hex(body)).strip('"'),
        )
        return ObjectData(info=info, body=body)

    def _exists(self, key: str) -> bool:
        try:
            self._client.head_object(Bucket=self._bucket, Key=key)
        except ClientError as exc:
            if _missing(exc):
                return False
            raise
        return True

    async def put(self, key: str, body: bytes, content_type: str) -> StoredObject:
        check_storage_key(key)
        try:
            return await asyncio.to_thread(self._put, key, body, content_type)
        except (BotoCoreError, ClientError) as exc:
            raise _unavailable("store", key, exc) from exc

    async def get(self, key: str) -> ObjectData | None:
        check_storage_key(key)
        try:
            return await asyncio.to_thread(self._get, key)
        except (BotoCoreError, ClientError) as exc:
            raise _unavailable("read", key, exc) from exc

    async def exists(self, key: str) -> bool:
        check_storage_key(key)
        try:
            return await asyncio.to_thread(self._exists, key)
        except (BotoCoreError, ClientError) as exc:
            raise _unavailable("look up", key, exc) from exc

    async def delete(self, key: str) -> None:
        check_storage_key(key)
        try:
            await asyncio.to_thread(self._client.delete_object, Bucket=self._bucket, Key=key)
        except (BotoCoreError, ClientError) as exc:
            raise _unavailable("delete", key, exc) from exc
