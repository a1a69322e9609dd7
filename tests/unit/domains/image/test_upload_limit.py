"""Asking for upload URLs under the caller's per-user limit (a memory limiter): over the rule the
request is refused with a 429-mapped error and no upload is recorded; an invalid request uses
none of the budget."""

from __future__ import annotations

from typing import Any, cast

import pytest

from domains.image.repository import NewUpload
from domains.image.uploads import UploadRequest, Uploads
from eco2.errors import InvalidInput, NotFound, RateLimited
from eco2.http import status_of
from eco2.ratelimit import MemoryRateLimiter, Quota
from eco2.settings import ImageSettings, RateRule

RULE = RateRule(limit=1, period_s=3600, burst=2)
PHOTO = UploadRequest("bottle.jpg", "image/jpeg")


class _Repository:
    def __init__(self) -> None:
        self.added: list[NewUpload] = []

    async def add(self, upload: NewUpload) -> None:
        self.added.append(upload)


def _uploads(repository: _Repository) -> Uploads:
    quota = Quota(MemoryRateLimiter(), "upload", RULE, timeout_s=1)
    return Uploads(ImageSettings(), cast(Any, repository), cast(Any, None), quota=quota)


async def test_a_user_over_the_limit_gets_a_429_and_no_upload_is_recorded() -> None:
    repository = _Repository()
    uploads = _uploads(repository)
    for _ in range(RULE.burst):
        await uploads.grant("user-1", "scan", PHOTO)
    with pytest.raises(RateLimited) as refused:
        await uploads.grant("user-1", "scan", PHOTO)
    assert status_of(refused.value) == 429
    assert refused.value.retry_after_s > 0
    assert "upload" in refused.value.message
    assert [u.user_id for u in repository.added] == ["user-1"] * RULE.burst
    await uploads.grant("user-2", "chat", PHOTO)
    assert len(repository.added) == RULE.burst + 1


async def test_an_invalid_request_uses_none_of_the_budget() -> None:
    repository = _Repository()
    uploads = _uploads(repository)
    for channel, request in (("nope", PHOTO), ("scan", UploadRequest("a.exe", "text/plain"))):
        with pytest.raises((InvalidInput, NotFound)):
            await uploads.grant("user-1", channel, request)
    for _ in range(RULE.burst):
        await uploads.grant("user-1", "scan", PHOTO)
    assert len(repository.added) == RULE.burst
