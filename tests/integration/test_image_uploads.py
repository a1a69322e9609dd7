"""The image service in-process on the stack's PostgreSQL: upload URL → PUT → object → event.

Every refused PUT is checked to store nothing: no object, the upload row unchanged, no event.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import asyncpg
import httpx
import pytest

from domains.image import model
from domains.image.service import create_app
from domains.image.storage import LocalStorage
from eco2.db import domain_dsn
from eco2.settings import Settings
from tests.unit.domains.image import samples

pytestmark = pytest.mark.integration

MAX_BYTES = 4096


@pytest.fixture
def image_settings(settings: Settings, tmp_path: Path) -> Settings:
    image = settings.image.model_copy(
        update={"storage_dir": tmp_path / "objects", "max_bytes": MAX_BYTES}
    )
    return settings.model_copy(update={"image": image})


@pytest.fixture
async def client(image_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(image_settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            yield c


@pytest.fixture
async def db(image_settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(domain_dsn(image_settings, "image"))
    try:
        yield conn
    finally:
        await conn.close()


def _user() -> dict[str, str]:
    return {"X-User-ID": f"user-{uuid.uuid4().hex[:12]}"}


async def _grant(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    *,
    channel: str = "scan",
    filename: str = "bottle.png",
    content_type: str = "image/png",
) -> dict[str, Any]:
    reply = await client.post(
        f"/api/v1/images/{channel}",
        json={"filename": filename, "content_type": content_type, "metadata": {"via": "test"}},
        headers=headers,
    )
    assert reply.status_code == 201, reply.text
    body: dict[str, Any] = reply.json()
    return body


async def _put(
    client: httpx.AsyncClient, url: str, body: Any, content_type: str = "image/png"
) -> httpx.Response:
    return await client.put(url, content=body, headers={"Content-Type": content_type})


async def _row(db: asyncpg.Connection, key: str) -> dict[str, Any]:
    row = await db.fetchrow(
        "SELECT key, user_id, channel, content_type, status, version, size, sha256, etag, "
        "uploaded_at FROM image_uploads WHERE key = $1",
        key,
    )
    assert row is not None
    return dict(row)


async def _events(db: asyncpg.Connection, key: str) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await db.fetch(
        "SELECT event_type, aggregate_type, aggregate_version, payload::text AS payload, "
        "metadata::text AS metadata FROM event_store WHERE aggregate_id = $1",
        key,
    )
    return rows


async def _assert_nothing_stored(
    client: httpx.AsyncClient, db: asyncpg.Connection, settings: Settings, grant: dict[str, Any]
) -> None:
    key = grant["key"]
    assert settings.image.storage_dir is not None
    assert not await LocalStorage(settings.image.storage_dir).exists(key)
    assert (await client.get(f"/api/v1/images/objects/{key}")).status_code == 404
    row = await _row(db, key)
    assert (row["status"], row["version"], row["size"], row["sha256"]) == ("pending", 0, None, None)
    assert await _events(db, key) == []


def _with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {name: values[0] for name, values in parse_qs(parts.query).items()}
    query.update(changes)
    return f"{parts.path}?{urlencode(query)}"


async def test_an_uploaded_png_is_served_back_and_announced_once(
    client: httpx.AsyncClient, db: asyncpg.Connection, image_settings: Settings
) -> None:
    user = _user()
    grant = await _grant(client, user)
    key = grant["key"]
    assert model.check_key(key).startswith(f"scan/{datetime.now(UTC):%Y}/")
    assert key.endswith(".png")
    assert grant["cdn_url"] == f"https://cdn.eco2.local/{key}"
    assert grant["expires_in"] == image_settings.image.url_ttl_s == 900
    assert grant["required_headers"] == {"Content-Type": "image/png"}
    assert grant["upload_url"].startswith(f"/api/v1/images/upload/{key}?")
    assert (await _row(db, key))["status"] == "pending"

    png = samples.png(4, 3)
    stored = await _put(client, grant["upload_url"], png)
    assert stored.status_code == 200, stored.text
    assert stored.json()["status"] == "uploaded"
    assert stored.headers["etag"] == f'"{stored.json()["etag"]}"'

    served = await client.get(f"/api/v1/images/objects/{key}")
    assert served.status_code == 200
    assert served.content == png
    assert served.headers["content-type"] == "image/png"
    assert served.headers["x-content-type-options"] == "nosniff"

    again = await _put(client, grant["upload_url"], png)
    assert again.status_code == 409
    assert "already uploaded" in again.json()["error"]["message"]

    row = await _row(db, key)
    assert (row["status"], row["version"], row["size"]) == ("uploaded", 1, len(png))
    events = await _events(db, key)
    assert [(e["event_type"], e["aggregate_type"], e["aggregate_version"]) for e in events] == [
        ("ImageUploaded", "image", 1)
    ]
    payload = json.loads(events[0]["payload"])
    assert payload["key"] == key
    assert payload["user_id"] == user["X-User-ID"]
    assert (payload["channel"], payload["content_type"]) == ("scan", "image/png")
    assert (payload["size"], payload["sha256"]) == (len(png), row["sha256"])
    assert payload["cdn_url"] == grant["cdn_url"]
    assert json.loads(events[0]["metadata"])["user_id"] == user["X-User-ID"]

    callback = await client.post(
        "/api/v1/images/scan/callback", json={"key": key, "etag": row["etag"]}, headers=user
    )
    assert callback.json() == {"key": key, "status": "uploaded"}


async def test_concurrent_puts_of_one_key_store_it_once(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    grant = await _grant(client, _user(), channel="chat")
    replies = await asyncio.gather(
        *(_put(client, grant["upload_url"], samples.png(i + 1, 1)) for i in range(4))
    )
    assert sorted(r.status_code for r in replies) == [200, 409, 409, 409]
    winner = next(r for r in replies if r.status_code == 200)
    served = await client.get(f"/api/v1/images/objects/{grant['key']}")
    assert served.headers["etag"] == winner.headers["etag"]
    assert len(await _events(db, grant["key"])) == 1


@pytest.mark.parametrize(
    "tamper",
    [
        {"sig": "0" * 64},
        {"uid": "someone-else"},
        {"ct": "image/jpeg"},
        {"expires": "9999999999"},
        {"sig": ""},
    ],
)
async def test_a_tampered_upload_url_is_forbidden(
    client: httpx.AsyncClient,
    db: asyncpg.Connection,
    image_settings: Settings,
    tamper: dict[str, str],
) -> None:
    grant = await _grant(client, _user())
    content_type = tamper.get("ct", "image/png")
    reply = await _put(
        client, _with_query(grant["upload_url"], **tamper), samples.png(), content_type
    )
    assert reply.status_code == 403, reply.text
    assert (
        "upload_url returned by POST /api/v1/images/{channel}" in reply.json()["error"]["message"]
    )
    await _assert_nothing_stored(client, db, image_settings, grant)


async def test_a_url_for_another_key_is_forbidden(
    client: httpx.AsyncClient, db: asyncpg.Connection, image_settings: Settings
) -> None:
    first, second = await _grant(client, _user()), await _grant(client, _user())
    stolen = first["upload_url"].replace(first["key"], second["key"])
    reply = await _put(client, stolen, samples.png())
    assert reply.status_code == 403
    await _assert_nothing_stored(client, db, image_settings, second)


async def test_an_expired_upload_url_is_refused(
    client: httpx.AsyncClient, db: asyncpg.Connection, image_settings: Settings
) -> None:
    user = _user()
    grant = await _grant(client, user)
    ticket = model.UploadTicket(
        key=grant["key"],
        expires=int(datetime.now(UTC).timestamp()) - 1,
        uid=user["X-User-ID"],
        content_type="image/png",
    )
    signing_key = image_settings.image.signing_key.get_secret_value().encode()
    reply = await _put(client, ticket.upload_url(signing_key), samples.png())
    assert reply.status_code == 403
    assert reply.json()["error"]["code"] == "upload_url_expired"
    assert "request a new one" in reply.json()["error"]["message"]
    await _assert_nothing_stored(client, db, image_settings, grant)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (samples.jpeg(), "the file is not a PNG (its bytes look like image/jpeg)"),
        (samples.TEXT, "the file is not a PNG (its type is not recognisable)"),
    ],
)
async def test_a_body_that_is_not_the_declared_type_is_unsupported(
    client: httpx.AsyncClient,
    db: asyncpg.Connection,
    image_settings: Settings,
    body: bytes,
    message: str,
) -> None:
    grant = await _grant(client, _user())
    reply = await _put(client, grant["upload_url"], body)
    assert reply.status_code == 415
    assert reply.json()["error"]["message"].startswith(message)
    await _assert_nothing_stored(client, db, image_settings, grant)
    assert (await _put(client, grant["upload_url"], samples.png())).status_code == 200


async def test_a_content_type_header_other_than_the_signed_one_is_unsupported(
    client: httpx.AsyncClient, db: asyncpg.Connection, image_settings: Settings
) -> None:
    grant = await _grant(client, _user(), filename="can.jpg", content_type="image/jpeg")
    reply = await _put(client, grant["upload_url"], samples.jpeg(), "image/png")
    assert reply.status_code == 415
    assert "Content-Type: image/jpeg" in reply.json()["error"]["message"]
    await _assert_nothing_stored(client, db, image_settings, grant)


async def test_a_file_above_max_bytes_is_too_large_whether_declared_or_streamed(
    client: httpx.AsyncClient, db: asyncpg.Connection, image_settings: Settings
) -> None:
    grant = await _grant(client, _user())
    big = samples.png() + b"\x00" * MAX_BYTES
    declared = await _put(client, grant["upload_url"], big)
    assert declared.status_code == 413
    assert f"larger than {MAX_BYTES} bytes" in declared.json()["error"]["message"]

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted while streaming
        for start in range(0, len(big), 1000):
            yield big[start : start + 1000]

    streamed = await _put(client, grant["upload_url"], chunks())
    assert streamed.status_code == 413
    await _assert_nothing_stored(client, db, image_settings, grant)


async def test_an_empty_body_is_refused(
    client: httpx.AsyncClient, db: asyncpg.Connection, image_settings: Settings
) -> None:
    grant = await _grant(client, _user())
    reply = await _put(client, grant["upload_url"], b"")
    assert reply.status_code == 400
    assert "empty" in reply.json()["error"]["message"]
    await _assert_nothing_stored(client, db, image_settings, grant)


async def test_the_callback_answers_only_for_the_callers_own_upload(
    client: httpx.AsyncClient,
) -> None:
    owner, other = _user(), _user()
    grant = await _grant(client, owner, channel="my")
    body = {"key": grant["key"], "etag": "x", "content_length": 10}
    own = await client.post("/api/v1/images/my/callback", json=body, headers=owner)
    assert own.status_code == 200
    assert own.json() == {"key": grant["key"], "status": "pending"}
    theirs = await client.post("/api/v1/images/my/callback", json=body, headers=other)
    assert theirs.status_code == 404
    wrong_channel = await client.post("/api/v1/images/chat/callback", json=body, headers=owner)
    assert wrong_channel.status_code == 404
    missing = await client.post(
        "/api/v1/images/my/callback", json={"key": "my/nothing.png"}, headers=owner
    )
    assert missing.status_code == 404


@pytest.mark.parametrize(
    ("path", "body", "status", "hint"),
    [
        (
            "/api/v1/images/avatars",
            {"filename": "a.png", "content_type": "image/png"},
            404,
            "use one of: chat, scan, my",
        ),
        ("/api/v1/images/scan", {"content_type": "image/png"}, 422, '"filename": "bottle.jpg"'),
        ("/api/v1/images/scan", {"filename": "", "content_type": "image/png"}, 422, "filename"),
        (
            "/api/v1/images/scan",
            {"filename": "a.svg", "content_type": "image/svg+xml"},
            400,
            "use one of: image/jpeg, image/png, image/webp, image/gif",
        ),
        (
            "/api/v1/images/scan",
            {"filename": "a.jpg", "content_type": "image/png"},
            400,
            "does not match content_type image/png",
        ),
        (
            "/api/v1/images/chat",
            {"filename": "a.png", "content_type": "image/png", "metadata": {"x": "y" * 5000}},
            400,
            "metadata is too large",
        ),
    ],
)
async def test_invalid_requests_get_helpful_4xx_answers(
    client: httpx.AsyncClient, path: str, body: dict[str, Any], status: int, hint: str
) -> None:
    reply = await client.post(path, json=body, headers=_user())
    assert reply.status_code == status, reply.text
    assert hint in reply.json()["error"]["message"]


async def test_sign_in_is_required_to_ask_for_an_upload_url(client: httpx.AsyncClient) -> None:
    body = {"filename": "a.png", "content_type": "image/png"}
    reply = await client.post("/api/v1/images/scan", json=body)
    assert reply.status_code == 401
    callback = await client.post("/api/v1/images/scan/callback", json={"key": "k"})
    assert callback.status_code == 401


async def test_an_upload_url_without_its_signature_is_forbidden(
    client: httpx.AsyncClient,
) -> None:
    grant = await _grant(client, _user())
    reply = await _put(client, f"/api/v1/images/upload/{grant['key']}", samples.png())
    assert reply.status_code == 403
    assert "incomplete" in reply.json()["error"]["message"]


@pytest.mark.parametrize(
    "key",
    ["../../etc/passwd", "scan/2025/01/31/nothing.png", "scan/2025/01/31/" + "f" * 32 + ".png"],
)
async def test_unknown_or_malformed_object_keys_are_not_found(
    client: httpx.AsyncClient, key: str
) -> None:
    assert (await client.get(f"/api/v1/images/objects/{key}")).status_code == 404


async def test_health_check(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
