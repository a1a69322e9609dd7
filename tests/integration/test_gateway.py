"""The gateway against a stand-in ext-authz and upstream servers on loopback: tokens are verified
in the gateway against auth's keys, identity comes only from the sign-in check, ext-authz's
refusals pass through and its allows are remembered briefly, SSE streams unbuffered, uploads
stream in."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import pytest
import structlog
from aiohttp import web

from eco2.settings import Settings
from runtime.gateway import build_app
from runtime.signin import SignIn
from tests.unit.domains.authz.tokens import KeyPair, claims, sign

pytestmark = pytest.mark.integration


KEY = KeyPair()
# Signed at import and told apart by the stand-in ext-authz, so they must outlive a slow CI run:
# a day, not an access token's 15 minutes (a 15-minute token once expired mid-run).
DAY = int(time.time()) + 86_400
ALICE = claims(sub="alice", provider="dev", exp=DAY)
GOOD = sign(KEY, ALICE)
REVOKED = sign(KEY, claims(sub="bob", exp=DAY))
AUTHZ_DOWN = sign(KEY, claims(sub="carol", exp=DAY))
AUTHZ_READY = {"ready": True}
AUTHZ_ASKED: Counter[str] = Counter()


class StaticJwks:
    async def fetch(self) -> Mapping[str, Any]:
        return {"keys": [KEY.jwk]}


async def _authz(request: web.Request) -> web.Response:
    """ext-authz's say on a token the gateway already verified: only the blacklist."""
    if request.path == "/readyz":
        return web.json_response({}, status=200 if AUTHZ_READY["ready"] else 503)
    token = request.headers.get("Authorization", "").removeprefix("Bearer ")
    token = token or request.cookies.get("s_access", "")
    AUTHZ_ASKED[token] += 1
    if token == AUTHZ_DOWN:
        return web.json_response(
            {"error": {"code": "unavailable", "message": "blacklist unreachable"}},
            status=503,
            headers={"Retry-After": "1"},
        )
    if token == REVOKED:
        return web.json_response(
            {"error": {"code": "token_revoked", "message": "revoked by a logout"}},
            status=401,
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    return web.Response(headers={"x-user-id": "alice", "x-auth-provider": "dev"})


DROPPED: set[str] = set()
SHED_SEEN: Counter[str] = Counter()


async def _echo(request: web.Request) -> web.StreamResponse:
    drop = request.query.get("drop")
    if drop is not None and drop not in DROPPED and request.transport is not None:
        DROPPED.add(drop)  # the first request of each id: the connection closes under it
        request.transport.close()
        return web.Response()
    if request.path.endswith("/events"):
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b"event: queued\ndata: {}\n\n")
        await asyncio.sleep(0.5)  # the client must see the first event before this ends
        for _ in range(20):  # enough to notice a client that went away
            await response.write(b": keep-alive\n\n")
        await response.write(b"event: done\ndata: {}\n\n")
        await response.write_eof()
        return response
    if request.query.get("shed"):  # the service's in-flight limit refusing everything
        SHED_SEEN[request.path] += 1
        return web.json_response(
            {"error": {"code": "overloaded", "message": "too many in progress"}},
            status=503,
            headers={"Retry-After": "3"},
        )
    missing = request.query.get("missing")
    if missing == "plain":  # Ray Serve's proxy: no application serves this path (now)
        return web.Response(status=404, text=f"Path '{request.path}' not found.")
    if missing == "json":  # an application: no such resource
        return web.json_response({"error": {"code": "not_found", "message": "no"}}, status=404)
    failed = request.query.get("failed")
    if failed == "plain":  # Ray Serve's proxy: the replica died under the request
        return web.Response(status=500, text="Internal Server Error")
    if failed == "json":  # an application's own error
        return web.json_response({"error": {"code": "internal", "message": "bug"}}, status=500)
    body = await request.read()
    return web.json_response(
        {
            "path": request.path_qs,
            "user": request.headers.getall("X-User-ID", []),
            "provider": request.headers.get("X-Auth-Provider"),
            "size": len(body),
            "length": request.headers.get("Content-Length"),
        },
        headers={"Set-Cookie": "a=1"},
    )


async def _serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


@pytest.fixture
async def gateway(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    api = {"authz_decision_cache_s": 5.0, **getattr(request, "param", {})}
    authz_app, upstream_app = web.Application(), web.Application()
    authz_app.router.add_route("*", "/{tail:.*}", _authz)
    upstream_app.router.add_route("*", "/{tail:.*}", _echo)
    authz, authz_url = await _serve(authz_app)
    upstream, upstream_url = await _serve(upstream_app)
    names = ("serve", "streams", "auth", "my", "image", "readmodels", "location")
    names += ("notification", "character")
    settings = Settings(
        services={"authz_url": authz_url, **{f"{n}_url": upstream_url for n in names}},  # type: ignore[arg-type]
        api=api,  # type: ignore[arg-type]
    )
    AUTHZ_ASKED.clear()
    gw, gw_url = await _serve(build_app(settings, SignIn(settings, jwks=StaticJwks())))
    try:
        yield gw_url
    finally:
        for runner in (gw, upstream, authz):
            await runner.cleanup()


async def _get(url: str, **kwargs: Any) -> tuple[int, Any, aiohttp.ClientResponse]:
    async with aiohttp.ClientSession() as session, session.get(url, **kwargs) as response:
        body = await response.json() if response.content_type == "application/json" else None
        return response.status, body, response


async def test_identity_comes_from_the_token_never_from_the_client(gateway: str) -> None:
    headers = {"Authorization": f"Bearer {GOOD}", "X-User-ID": "mallory"}
    status, body, response = await _get(f"{gateway}/api/v1/users/me?x=1", headers=headers)
    assert status == 200
    assert body == {
        "path": "/api/v1/users/me?x=1",
        "user": ["alice"],
        "provider": "dev",
        "size": 0,
        "length": None,
    }
    assert response.headers["Set-Cookie"] == "a=1"


async def test_cookie_only_requests_are_accepted(gateway: str) -> None:
    status, body, _ = await _get(
        f"{gateway}/api/v1/scan/j1/result", headers={"Cookie": f"s_access={GOOD}"}
    )
    assert (status, body["user"]) == (200, ["alice"])


@pytest.mark.parametrize(
    ("token", "code"),
    [
        (None, "missing_token"),
        ("not-a-jwt", "malformed_token"),
        (sign(KeyPair(), claims()), "invalid_token"),  # signed by a key auth does not publish
        (sign(KEY, claims(exp=1_000_000, iat=999_000, nbf=999_000)), "token_expired"),
    ],
)
async def test_a_bad_token_is_refused_by_the_gateway_without_asking_ext_authz(
    gateway: str, token: str | None, code: str
) -> None:
    headers = {"X-User-ID": "mallory"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    status, body, response = await _get(f"{gateway}/api/v1/users/me", headers=headers)
    assert (status, body["error"]["code"]) == (401, code)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert sum(AUTHZ_ASKED.values()) == 0


async def test_a_token_of_another_kind_is_403(gateway: str) -> None:
    refresh = sign(KEY, claims(typ="refresh"))
    headers = {"Authorization": f"Bearer {refresh}"}
    status, body, _ = await _get(f"{gateway}/api/v1/users/me", headers=headers)
    assert (status, body["error"]["code"]) == (403, "wrong_token_type")


async def test_a_revocation_from_ext_authz_passes_through(gateway: str) -> None:
    headers = {"Authorization": f"Bearer {REVOKED}"}
    for _ in range(2):  # a refusal is never remembered: ext-authz is asked each time
        status, body, response = await _get(f"{gateway}/api/v1/users/me", headers=headers)
        assert (status, body["error"]["code"]) == (401, "token_revoked")
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert AUTHZ_ASKED[REVOKED] == 2


async def test_an_allow_is_remembered_briefly(gateway: str) -> None:
    headers = {"Authorization": f"Bearer {GOOD}"}
    for path in ("/api/v1/users/me", "/api/v1/scan/j1/result", "/api/v1/users/me"):
        assert (await _get(f"{gateway}{path}", headers=headers))[0] == 200
    assert AUTHZ_ASKED[GOOD] == 1


@pytest.mark.parametrize("gateway", [{"authz_decision_cache_s": 0.0}], indirect=True)
async def test_with_no_decision_cache_ext_authz_is_asked_every_time(gateway: str) -> None:
    headers = {"Authorization": f"Bearer {GOOD}"}
    for _ in range(3):
        assert (await _get(f"{gateway}/api/v1/users/me", headers=headers))[0] == 200
    assert AUTHZ_ASKED[GOOD] == 3


async def test_public_routes_skip_ext_authz_and_carry_no_identity(gateway: str) -> None:
    status, body, _ = await _get(f"{gateway}/api/v1/character/catalog", headers={"X-User-ID": "m"})
    assert (status, body["user"]) == (200, [])


async def test_internal_and_admin_paths_are_not_routed(gateway: str) -> None:
    for path in ("/internal/characters/onboard", "/api/v1/admin/scan/reprocess"):
        status, body, _ = await _get(
            f"{gateway}{path}", headers={"Authorization": f"Bearer {GOOD}"}
        )
        assert (status, body["error"]["code"]) == (404, "not_found")


async def test_sse_is_streamed_not_buffered(gateway: str) -> None:
    loop = asyncio.get_running_loop()
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"{gateway}/api/v1/scan/j1/events", headers={"Cookie": f"s_access={GOOD}"}
        ) as response,
    ):
        started = loop.time()
        first = await response.content.readuntil(b"\n\n")
        first_after = loop.time() - started
        rest = await response.content.read()
    assert first.startswith(b"event: queued")
    assert first_after < 0.4
    assert b"event: done" in rest


async def test_uploads_stream_through_with_their_length(gateway: str) -> None:
    payload = b"\x89PNG" + b"0" * 300_000
    async with (
        aiohttp.ClientSession() as session,
        session.put(f"{gateway}/api/v1/images/upload/scan/a.png?sig=x", data=payload) as response,
    ):
        body = await response.json()
    assert response.status == 200
    assert (body["size"], body["length"], body["user"]) == (len(payload), str(len(payload)), [])


async def test_a_client_closing_its_stream_early_is_not_an_error(
    gateway: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with structlog.testing.capture_logs() as ours:
        async with aiohttp.ClientSession() as session:
            for _ in range(5):
                async with session.get(
                    f"{gateway}/api/v1/scan/j1/events", headers={"Cookie": f"s_access={GOOD}"}
                ) as response:
                    assert (await response.content.readuntil(b"\n\n")).startswith(b"event:")
                    response.close()  # like EventSource.close() after the first event
        await asyncio.sleep(0.8)  # the upstream writes on; the gateway finds the client gone
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]
    assert [e for e in ours if e["log_level"] in ("error", "critical")] == []
    assert any(e["event"] == "client closed its connection" for e in ours)


async def test_a_503_from_ext_authz_keeps_its_retry_after(gateway: str) -> None:
    headers = {"Authorization": f"Bearer {AUTHZ_DOWN}"}
    status, body, response = await _get(f"{gateway}/api/v1/users/me", headers=headers)
    assert (status, body["error"]["code"]) == (503, "unavailable")
    assert response.headers["Retry-After"] == "1"


async def test_ready_only_while_ext_authz_is_ready(gateway: str) -> None:
    assert (await _get(f"{gateway}/-/readyz"))[0] == 200
    AUTHZ_READY["ready"] = False
    try:
        status, body, response = await _get(f"{gateway}/-/readyz")
    finally:
        AUTHZ_READY["ready"] = True
    assert (status, body["error"]["code"]) == (503, "not_ready")
    assert response.headers["Retry-After"] == "1"


async def test_a_connection_closed_under_a_read_is_retried_but_not_under_a_write(
    gateway: str,
) -> None:
    status, body, _ = await _get(f"{gateway}/api/v1/character/catalog?drop=read")
    assert (status, body["path"]) == (200, "/api/v1/character/catalog?drop=read")
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{gateway}/api/v1/character/catalog?drop=write", json={}) as response,
    ):
        assert response.status == 502
        assert (await response.json())["error"]["code"] == "upstream_unavailable"


async def test_a_serve_route_no_application_serves_yet_is_a_503_to_retry(gateway: str) -> None:
    """While Ray's head and its applications are deployed again, Serve's proxy answers 404 for
    their paths: the caller is told to retry, not that the API does not exist."""
    headers = {"Authorization": f"Bearer {GOOD}"}
    status, body, response = await _get(f"{gateway}/api/v1/scan?missing=plain", headers=headers)
    assert (status, body["error"]["code"]) == (503, "upstream_not_ready")
    assert response.headers["Retry-After"] == "2"
    # An application's own 404, and another service's, pass through as they are.
    status, body, _ = await _get(f"{gateway}/api/v1/scan?missing=json", headers=headers)
    assert (status, body["error"]["code"]) == (404, "not_found")
    status, _, _ = await _get(f"{gateway}/api/v1/users/me?missing=plain", headers=headers)
    assert status == 404


async def test_a_request_serve_lost_with_its_replica_is_a_502_to_retry(gateway: str) -> None:
    """A replica that died under a request leaves Serve's proxy answering a bare 500: the caller
    is told the request was lost and may be retried, not that the service has a bug."""
    headers = {"Authorization": f"Bearer {GOOD}"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{gateway}/api/v1/scan?failed=plain", json={}, headers=headers) as response,
    ):
        body = await response.json()
        assert (response.status, body["error"]["code"]) == (502, "upstream_unavailable")
        assert "X-Idempotency-Key" in body["error"]["message"]
        assert response.headers["Retry-After"] == "1"
    # An application's own 500, and another service's bare one, pass through as they are.
    status, body, _ = await _get(f"{gateway}/api/v1/scan?failed=json", headers=headers)
    assert (status, body["error"]["code"]) == (500, "internal")
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{gateway}/api/v1/users/me?failed=plain", headers=headers) as response,
    ):
        assert (response.status, await response.text()) == (500, "Internal Server Error")


async def test_a_service_that_cannot_be_reached_is_a_503_to_retry() -> None:
    """Nothing answered on the service's port (it is restarting): the request reached no one,
    so the caller may simply retry."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    settings = Settings(services={"location_url": closed})  # type: ignore[arg-type]
    gw, gw_url = await _serve(build_app(settings, SignIn(settings, jwks=StaticJwks())))
    try:
        status, body, response = await _get(f"{gw_url}/api/v1/locations/centers")
    finally:
        await gw.cleanup()
    assert (status, body["error"]["code"]) == (503, "upstream_unavailable")
    assert response.headers["Retry-After"] == "1"


async def _chunks(payload: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(payload), 64 * 1024):
        yield payload[start : start + 64 * 1024]


MAX_BODY_BYTES = 200_000


@pytest.mark.parametrize("gateway", [{"max_body_bytes": MAX_BODY_BYTES}], indirect=True)
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_a_body_past_the_limit_is_413_and_never_reaches_the_service(
    gateway: str, chunked: bool
) -> None:
    """The limit is ``api.max_body_bytes`` (set here below its default)."""
    headers = {"Authorization": f"Bearer {GOOD}", "Content-Type": "application/json"}
    url = f"{gateway}/api/v1/scan"
    async with aiohttp.ClientSession() as session:
        for size, status in ((MAX_BODY_BYTES, 200), (MAX_BODY_BYTES + 1, 413)):
            payload = b"0" * size
            data: Any = _chunks(payload) if chunked else payload
            async with session.post(url, data=data, headers=headers) as response:
                body = await response.json()
            assert response.status == status, body
            if status == 200:
                assert body["size"] == size
            else:
                assert body["error"]["code"] == "too_large"
                assert str(MAX_BODY_BYTES) in body["error"]["message"]


async def test_a_path_with_a_newline_is_the_gateways_to_answer(gateway: str) -> None:
    # Not aiohttp's plain-text 404 (its router's ``.*`` does not match a newline).
    status, body, _ = await _get(f"{gateway}/api/v1/nowhere/%0A/x")
    assert (status, body["error"]["code"]) == (404, "not_found")


async def test_a_token_that_is_not_ascii_is_401_not_500(gateway: str) -> None:
    host, port = gateway.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        b"GET /api/v1/users/me HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n"
        b"Authorization: Bearer \xe9t\xe9\r\n\r\n"
    )
    answer = await reader.read()
    writer.close()
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
    assert b'"malformed_token"' in answer


async def test_a_route_shedding_load_is_throttled_in_the_gateway_with_retry_after(
    gateway: str,
) -> None:
    """Every scan submit refused by the service as overloaded: the gateway soon refuses most
    of them itself, with the service's code and ``Retry-After``; routes that start no job (and
    reads) always reach their service."""
    SHED_SEEN.clear()
    headers = {"Authorization": f"Bearer {GOOD}"}
    answers: list[tuple[int, str | None, str]] = []
    async with aiohttp.ClientSession() as session:
        for _ in range(60):
            async with session.post(
                f"{gateway}/api/v1/scan?shed=1", json={}, headers=headers
            ) as response:
                body = await response.json()
                answers.append(
                    (response.status, response.headers.get("Retry-After"), body["error"]["code"])
                )
        for path in ("/api/v1/scan/j1/result", "/api/v1/users/me"):
            for method in ("GET", "POST"):
                for _ in range(5):
                    async with session.request(
                        method, f"{gateway}{path}?shed=1", headers=headers
                    ) as response:
                        assert response.status == 503
    assert set(answers) == {(503, "3", "overloaded")}
    assert SHED_SEEN["/api/v1/scan"] < 30  # the rest never left the gateway
    assert SHED_SEEN["/api/v1/scan/j1/result"] == 10
    assert SHED_SEEN["/api/v1/users/me"] == 10
