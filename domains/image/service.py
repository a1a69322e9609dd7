"""Composition root of the image service: ``create_app(settings)`` and ``consumers(settings)``.

The lifespan opens the image database's pool (``settings.services.pool_max["image"]``), the
object storage chosen by ``settings.image.backend`` (``local``: a directory, by default
``<run_dir>/objects``; ``s3``: ``settings.image.s3_bucket``) and, unless the upload rate limit is
off, a Valkey client for it (``settings.rate_limit.upload``, shared by every replica); it closes
the pool and the client on shutdown.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from cdc.consumers import ConsumerSpec
from domains.image.http import EXAMPLE_BODY, UPLOAD_PREFIX, router
from domains.image.repository import UploadRepository
from domains.image.storage import LocalStorage, Storage
from domains.image.uploads import Uploads
from eco2 import cache as valkey
from eco2.db import create_pool
from eco2.http import service_app
from eco2.ratelimit import Quota, ValkeyRateLimiter
from eco2.settings import Settings

DOMAIN = "image"
VALKEY_CONNECTIONS = 8


def build_storage(settings: Settings) -> Storage:
    """The storage adapter ``settings.image.backend`` names."""
    if settings.image.backend == "s3":
        from domains.image.storage_s3 import S3Storage  # needs the optional `s3` extra

        return S3Storage.from_settings(settings.image)
    return LocalStorage(settings.image.storage_dir or settings.run_dir / "objects")


def create_app(settings: Settings) -> FastAPI:
    """The image service's FastAPI app (routes in :mod:`domains.image.http`)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with await create_pool(settings, DOMAIN) as pool, _upload_quota(settings) as quota:
            repository = UploadRepository(pool)
            app.state.uploads = Uploads(
                settings.image, repository, build_storage(settings), quota=quota
            )
            yield

    return service_app(
        "Eco² image",
        settings,
        lifespan,
        routers=[router],
        example_body=EXAMPLE_BODY,
        own_body_limit=[UPLOAD_PREFIX],  # the file, read up to image.max_bytes by Uploads
    )


@asynccontextmanager
async def _upload_quota(settings: Settings) -> AsyncIterator[Quota]:
    """The per-user limit on upload URLs, with the Valkey client it needs while it is on."""
    limits = settings.rate_limit
    if not limits.upload.enabled:
        yield Quota.off("upload")
        return
    url = settings.cache.require("the image service (rate_limit.upload; 0 turns it off)")
    async with valkey.connect(url, max_connections=VALKEY_CONNECTIONS) as client:
        yield Quota(ValkeyRateLimiter(client), "upload", limits.upload, limits.timeout_s)


def consumers(settings: Settings) -> list[ConsumerSpec]:
    """The image domain reacts to no events."""
    del settings
    return []
