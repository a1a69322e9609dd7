"""Hostile HTTP through the gateway (issue 19): bodies too large, malformed or of the wrong type,
odd headers and credentials, each answered with a 4xx in the ``{"error": {code, message}}``
shape, quickly, the stack still serving afterwards; and one user never reaching another's
resources, route by route.

Already covered elsewhere, so not repeated here: chat conversations, messages, job streams,
results and input across users (``test_chat.py``); forged ``X-User-ID``, bad and other-kind tokens
at the gateway (``tests/integration/test_gateway.py``); tampered upload URLs
(``tests/integration/test_image_uploads.py``); notices of another user at the service
(``tests/integration/test_notification_feed.py``).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from eco2.settings import settings_of
from runtime.routes import route_of
from tests.conftest import StackUrls
from tests.e2e.saga_support import eventually, rewarded_scan, sign_in, upload_image

pytestmark = pytest.mark.e2e

BIG = 10 * 1024 * 1024
QUICK_S = 5.0
"""A refusal must not wait for a body it is going to refuse anyway."""

SUBMIT_ROUTES = [
    ("POST", "/api/v1/scan"),
    ("POST", "/api/v1/chat"),
    ("POST", "/api/v1/chat/{chat}/messages"),
    ("POST", "/api/v1/chat/{job}/input"),
    ("PATCH", "/api/v1/chat/{chat}"),
    ("POST", "/api/v1/images/scan"),
    ("POST", "/api/v1/images/scan/callback"),
    ("PATCH", "/api/v1/users/me"),
    ("POST", "/api/v1/auth/dev-login"),
]


def assert_error(answer: httpx.Response, *statuses: int) -> dict[str, str]:
    """A refusal in the project's error shape with one of ``statuses``."""
    assert answer.status_code in statuses, (answer.status_code, answer.text[:300])
    assert answer.headers["content-type"].startswith("application/json"), answer.headers
    body = answer.json()
    assert set(body) == {"error"}, body
    assert body["error"]["code"], body
    assert body["error"]["message"], body
    return dict(body["error"])


@pytest.fixture(scope="module")
async def alice(stack: StackUrls) -> AsyncIterator[httpx.AsyncClient]:
    assert stack.api_url is not None
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=60) as client:
        await sign_in(client, f"alice-{uuid.uuid4().hex[:6]}")
        yield client


@pytest.fixture(scope="module")
async def bob(stack: StackUrls) -> AsyncIterator[httpx.AsyncClient]:
    assert stack.api_url is not None
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=60) as client:
        await sign_in(client, f"bob-{uuid.uuid4().hex[:6]}")
        yield client


@pytest.fixture(scope="module")
async def alices(alice: httpx.AsyncClient) -> dict[str, Any]:
    """Alice's resources: a rewarded scan (and the notice its character brings), a chat with
    an answered message, an upload."""
    scan = await rewarded_scan(alice)
    created = await alice.post("/api/v1/chat", json={"title": "앨리스의 대화"})
    chat = created.json()["id"]
    posted = await alice.post(f"/api/v1/chat/{chat}/messages", json={"message": "안녕"})
    assert posted.status_code == 202, posted.text
    ticket = await alice.post(
        "/api/v1/images/scan", json={"filename": "a.png", "content_type": "image/png"}
    )
    assert ticket.status_code == 201, ticket.text

    async def notice() -> str | None:
        items = (await alice.get("/api/v1/notifications")).json()["notifications"]
        return str(items[0]["id"]) if items else None

    return {
        "scan": scan["task_id"],
        "chat": chat,
        "job": posted.json()["job_id"],
        "upload": ticket.json()["key"],
        "notice": await eventually(notice, "alice's notice of her new character", 60),
    }


async def _send(
    alice: httpx.AsyncClient, method: str, path: str, content: bytes, headers: dict[str, str]
) -> httpx.Response:
    """Alice's request; to auth's routes without her cookies (a dev-login that succeeds must
    not sign her client in as someone else)."""
    if not path.startswith("/api/v1/auth/"):
        return await alice.request(method, path, content=content, headers=headers)
    async with httpx.AsyncClient(base_url=alice.base_url, timeout=60) as stranger:
        return await stranger.request(method, path, content=content, headers=headers)


async def _still_serving(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/v1/users/me")).status_code == 200
    assert (await client.get("/api/v1/scan/categories")).status_code == 200


@pytest.mark.parametrize(("method", "path"), SUBMIT_ROUTES)
async def test_a_10_mb_body_is_refused_at_once_and_the_stack_serves_on(
    alice: httpx.AsyncClient, alices: dict[str, Any], method: str, path: str
) -> None:
    body = b'{"message": "' + b"a" * BIG + b'"}'
    started = time.monotonic()
    answer = await _send(
        alice, method, path.format(**alices), body, {"Content-Type": "application/json"}
    )
    assert time.monotonic() - started < QUICK_S
    assert assert_error(answer, 413)["code"] == "too_large"
    await _still_serving(alice)


@pytest.mark.parametrize(("method", "path"), SUBMIT_ROUTES)
async def test_a_10_mb_body_sent_past_the_gateway_is_refused_by_the_service_itself(
    stack: StackUrls, alices: dict[str, Any], method: str, path: str
) -> None:
    """Straight to the service the gateway would route it to (a caller inside the network):
    the service counts the body as it arrives and refuses it, declared or chunked."""
    route = route_of(path.format(**alices))
    assert route is not None
    base = settings_of(stack.env).services.url_of(route.service)
    user = {"X-User-ID": "alice-direct", "Content-Type": "application/json"}
    declared = b'{"message": "' + b"a" * BIG + b'"}'

    async def chunked() -> AsyncIterator[bytes]:
        yield b'{"message": "'
        for _ in range(BIG // 65536):
            yield b"a" * 65536
        yield b'"}'

    async with httpx.AsyncClient(base_url=base, timeout=60) as direct:
        for content in (declared, chunked()):
            started = time.monotonic()
            answer = await direct.request(
                method, path.format(**alices), content=content, headers=user
            )
            assert time.monotonic() - started < QUICK_S
            error = assert_error(answer, 413)
            assert error["code"] == "too_large", error
            assert "bytes; send a smaller one" in error["message"], error
        # A body within the limit still reaches the route (its own answer, not a 413).
        small = await direct.request(method, path.format(**alices), content=b"{}", headers=user)
        assert small.status_code != 413, small.text


OPTIONAL_BODY = {"/api/v1/chat", "/api/v1/auth/dev-login"}
BAD_BODIES = {
    "not json": (b"{bad", "application/json"),
    "not utf-8": (b"\xff\xfe{", "application/json"),
    "nested 100k deep": (b"[" * 100_000 + b"]" * 100_000, "application/json"),
    "a json string": (b'"just a string"', "application/json"),
    "null": (b"null", "application/json"),
    "form instead of json": (b"message=hi&title=x", "application/x-www-form-urlencoded"),
    "json as text/plain": (b'{"message": "hi"}', "text/plain"),
    "no content type": (b'{"message": "hi"}', ""),
}


@pytest.mark.parametrize("kind", sorted(BAD_BODIES))
@pytest.mark.parametrize(("method", "path"), SUBMIT_ROUTES)
async def test_a_malformed_or_mistyped_body_is_a_4xx_in_the_error_shape(
    alice: httpx.AsyncClient, alices: dict[str, Any], method: str, path: str, kind: str
) -> None:
    content, content_type = BAD_BODIES[kind]
    headers = {"Content-Type": content_type} if content_type else {}
    answer = await _send(alice, method, path.format(**alices), content, headers)
    if answer.status_code < 400:
        # Lenient on purpose (FastAPI reads a JSON body whatever its declared type; a route
        # whose body is optional reads one it cannot use as none): fine as long as what was
        # sent can be read as a valid request.
        lenient: tuple[str, ...] = ("json as text/plain", "no content type")
        if path in OPTIONAL_BODY:
            lenient += ("null", "form instead of json")
        assert kind in lenient, answer.text
        return
    assert_error(answer, 400, 404, 409, 413, 415, 422)


ODD_HEADERS: dict[str, dict[str, str | bytes]] = {
    "a garbage cookie": {"Cookie": "s_access=%%%garbage%%%; s_refresh=;;=="},
    "a cookie of another name": {"Cookie": "session=eyJhbGciOiJub25lIn0.e30."},
    "a bearer that is not a JWT": {"Authorization": "Bearer not-a-jwt"},
    "a JWT of three garbage parts": {"Authorization": "Bearer a.b.c"},
    "an unsigned JWT": {"Authorization": "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."},
    "basic credentials": {"Authorization": "Basic YWxpY2U6c2VjcmV0"},
    "a bare bearer": {"Authorization": "Bearer"},
    "a 6 KB bearer": {"Authorization": "Bearer " + "a" * 6 * 1024},
    "latin-1 bytes": {"Authorization": "Bearer \xe9t\xe9".encode("latin-1")},
}
PARSER_REFUSES: dict[str, dict[str, str | bytes]] = {
    "a 64 KB header": {"X-Padding": "a" * 64 * 1024},
    "a 16 KB bearer": {"Authorization": "Bearer " + "a" * 16 * 1024},
    "a control character in a cookie": {"Cookie": b"s_access=\x7f"},
}
"""Refused by aiohttp's HTTP parser before any handler runs (a plain-text 400, as Envoy's
431/400): no error shape to ask for, but no 5xx, and the stack serves on."""


def _raw(headers: dict[str, str | bytes]) -> dict[bytes, bytes]:
    """Headers as bytes, so that what is not ASCII goes out as it is."""
    return {k.encode(): v if isinstance(v, bytes) else v.encode() for k, v in headers.items()}


@pytest.mark.parametrize("kind", sorted(ODD_HEADERS))
async def test_odd_headers_and_credentials_are_refused_cleanly(
    stack: StackUrls, alice: httpx.AsyncClient, kind: str
) -> None:
    assert stack.api_url is not None
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=30) as stranger:
        answer = await stranger.get("/api/v1/users/me", headers=_raw(ODD_HEADERS[kind]))
    assert_error(answer, 401, 403)
    await _still_serving(alice)


@pytest.mark.parametrize("kind", sorted(PARSER_REFUSES))
async def test_headers_past_the_parser_limits_are_a_400_and_nothing_more(
    stack: StackUrls, alice: httpx.AsyncClient, kind: str
) -> None:
    assert stack.api_url is not None
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=30) as stranger:
        answer = await stranger.get("/api/v1/users/me", headers=_raw(PARSER_REFUSES[kind]))
    assert answer.status_code in (400, 431), answer.status_code
    await _still_serving(alice)


@pytest.mark.parametrize("value", ["not-a-number", "-1", "9" * 40, "0-0-0", "%00", "a" * 4096])
async def test_a_bad_last_event_id_never_breaks_a_stream(
    alice: httpx.AsyncClient, alices: dict[str, Any], value: str
) -> None:
    for url in (f"/api/v1/scan/{alices['scan']}/events", "/api/v1/notifications/stream"):
        async with alice.stream("GET", url, headers={"Last-Event-ID": value}) as answer:
            if answer.status_code == 200:
                assert answer.headers["content-type"].startswith("text/event-stream")
            else:
                await answer.aread()
                assert_error(answer, 400, 422)


@pytest.mark.parametrize("key", ["", "a" * 129, "a" * 4 * 1024, "ключ \u202e", "../../etc"])
async def test_a_bad_idempotency_key_is_a_4xx_or_a_plain_key(
    alice: httpx.AsyncClient, alices: dict[str, Any], key: str
) -> None:
    image_url = await upload_image(alice)
    answer = await alice.post(
        "/api/v1/scan",
        json={"image_url": image_url, "user_input": "can"},
        headers={b"X-Idempotency-Key": key.encode()},  # UTF-8 bytes, as a client may send
    )
    if answer.status_code == 202:  # an ordinary key of at most 128 characters
        assert 0 < len(key.encode()) <= 128
    else:
        assert_error(answer, 400, 413, 422)


# Bob asks for each of Alice's resources: never her data, always the documented refusal.
CROSS_USER = [
    ("GET", "/api/v1/scan/{scan}/result", None, 404),
    ("GET", "/api/v1/scan/{scan}/events", None, 404),
    ("GET", "/api/v1/chat/{chat}", None, 404),
    ("GET", "/api/v1/chat/{job}/result", None, 404),
    ("GET", "/api/v1/chat/{job}/events", None, 404),
    ("POST", "/api/v1/images/scan/callback", {"key": "{upload}"}, 404),
    ("POST", "/api/v1/notifications/{notice}/read", None, 404),
]


@pytest.mark.parametrize(("method", "path", "body", "status"), CROSS_USER)
async def test_another_users_resource_is_refused(
    bob: httpx.AsyncClient,
    alices: dict[str, Any],
    method: str,
    path: str,
    body: dict[str, str] | None,
    status: int,
) -> None:
    json = {k: v.format(**alices) for k, v in body.items()} if body else None
    answer = await bob.request(method, path.format(**alices), json=json)
    error = assert_error(answer, status)
    for value in alices.values():
        assert str(value) not in answer.text or str(value) in error["message"]


async def test_lists_and_read_models_show_only_the_callers_own(
    bob: httpx.AsyncClient, alice: httpx.AsyncClient, alices: dict[str, Any]
) -> None:
    await eventually(
        lambda: _listed(alice, "/api/v1/scan/history", alices["scan"]), "alice's scan in her list"
    )
    answers = {
        "history": await bob.get("/api/v1/scan/history"),
        "page": await bob.get("/api/v1/users/me/page"),
        "chats": await bob.get("/api/v1/chat"),
        "search": await bob.get("/api/v1/chat/search", params={"q": "앨리스"}),
        "notices": await bob.get("/api/v1/notifications"),
        "characters": await bob.get("/api/v1/users/me/characters"),
    }
    for name, answer in answers.items():
        assert answer.status_code == 200, (name, answer.text)
        for value in alices.values():
            assert str(value) not in answer.text, (name, answer.text[:300])


async def test_the_same_idempotency_key_from_another_user_is_another_job(
    alice: httpx.AsyncClient, bob: httpx.AsyncClient
) -> None:
    key = {"X-Idempotency-Key": f"shared-{uuid.uuid4().hex}"}
    jobs = []
    for client in (alice, bob):
        image_url = await upload_image(client)
        answer = await client.post(
            "/api/v1/scan", json={"image_url": image_url, "user_input": "can"}, headers=key
        )
        assert answer.status_code == 202, answer.text
        jobs.append(answer.json()["job_id"])
    assert jobs[0] != jobs[1]
    assert (await bob.get(f"/api/v1/scan/{jobs[0]}/result")).status_code == 404


async def _listed(client: httpx.AsyncClient, path: str, wanted: str) -> bool | None:
    return True if wanted in (await client.get(path)).text else None
