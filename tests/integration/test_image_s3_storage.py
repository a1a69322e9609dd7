"""S3Storage against the storage contract on moto's S3 server, and one upload through the service
with ``backend=s3`` (the same flow as the local backend, object landing in the bucket)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import boto3
import httpx
import pytest

from domains.image.service import create_app
from domains.image.storage import Storage
from domains.image.storage_s3 import S3Storage
from eco2.errors import Unavailable
from eco2.settings import Settings
from tests.unit.domains.image import samples
from tests.unit.domains.image.storage_contract import StorageContract

pytestmark = pytest.mark.integration

REGION = "ap-northeast-2"
START_TIMEOUT_S = 30


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    """A moto S3 server on a free 127.0.0.1 port (skipped, with the reason, if it cannot start)."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as exc:
        pytest.skip(f"moto[server] is not installed ({exc}); install the dev extra")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    starter = threading.Thread(target=server.start, daemon=True)
    starter.start()
    starter.join(START_TIMEOUT_S)
    if starter.is_alive():
        pytest.skip(f"moto's S3 server did not start within {START_TIMEOUT_S} s")
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="module")
def aws_env() -> Iterator[None]:
    """Dummy credentials for boto3's default chain (moto accepts any)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_ACCESS_KEY_ID", "testing")
        patch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        patch.delenv("AWS_PROFILE", raising=False)
        yield


@pytest.fixture(scope="module")
def bucket(moto_endpoint: str, aws_env: None) -> str:
    name = f"eco2-images-{uuid.uuid4().hex[:8]}"
    client = boto3.client("s3", endpoint_url=moto_endpoint, region_name=REGION)
    client.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
    return name


def _s3_settings(base: Settings, endpoint: str, bucket: str) -> Settings:
    image = base.image.model_copy(
        update={"backend": "s3", "s3_bucket": bucket, "s3_endpoint_url": endpoint}
    )
    return base.model_copy(update={"image": image})


class TestS3Storage(StorageContract):
    @pytest.fixture
    def storage(self, moto_endpoint: str, bucket: str) -> Storage:
        return S3Storage.from_settings(_s3_settings(Settings(), moto_endpoint, bucket).image)


async def test_a_missing_bucket_is_reported_as_unavailable(
    moto_endpoint: str, aws_env: None
) -> None:
    storage = S3Storage.from_settings(
        _s3_settings(Settings(), moto_endpoint, f"absent-{uuid.uuid4().hex[:8]}").image
    )
    with pytest.raises(Unavailable, match="retry later"):
        await storage.put("scan/x.png", samples.png(), "image/png")


@pytest.fixture
async def s3_client(
    settings: Settings, moto_endpoint: str, bucket: str
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(_s3_settings(settings, moto_endpoint, bucket))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield client


async def test_an_upload_with_the_s3_backend_lands_in_the_bucket(
    s3_client: httpx.AsyncClient, moto_endpoint: str, bucket: str
) -> None:
    user = {"X-User-ID": f"user-{uuid.uuid4().hex[:12]}"}
    body = {"filename": "cup.gif", "content_type": "image/gif"}
    grant: dict[str, Any] = (
        await s3_client.post("/api/v1/images/chat", json=body, headers=user)
    ).json()
    stored = await s3_client.put(
        grant["upload_url"], content=samples.gif(), headers={"Content-Type": "image/gif"}
    )
    assert stored.status_code == 200, stored.text
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name=REGION)
    head = s3.head_object(Bucket=bucket, Key=grant["key"])
    assert head["ContentType"] == "image/gif"
    assert head["ETag"].strip('"') == stored.json()["etag"]
    served = await s3_client.get(f"/api/v1/images/objects/{grant['key']}")
    assert served.content == samples.gif()
