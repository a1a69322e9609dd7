"""The local gateway: one base URL for everything, doing what Envoy does in the cluster.

For each request: find the route by path prefix (segment-aware, longest first); strip any
``X-User-ID``/``X-Auth-Provider`` the client sent (only the sign-in check may set them); for a
route that needs sign-in, verify the access token here (:mod:`runtime.signin`, Envoy's
``jwt_authn``) and answer 401/403 for a bad one, then ask ext-authz (Envoy's HTTP ext_authz
protocol: the original method, path and credential headers to ``<authz>/check<path>``) unless it
allowed this token a moment ago, and answer with its refusal (a revoked token) or set
``x-user-id``/``x-auth-provider`` from the token on the upstream request; then proxy to the
upstream, streaming both bodies (uploads in, SSE out) without buffering.

``/internal/...`` and ``/api/v1/admin/...`` are never routed from outside.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import time
from collections.abc import Mapping, MutableMapping
from typing import Any

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from domains.authz.verifier import CHALLENGE, PROVIDER_HEADER, USER_HEADER, principal_of
from eco2 import telemetry
from eco2.errors import Eco2Error, Forbidden, Unauthenticated, Unavailable, body_too_large
from eco2.loop import new_event_loop
from eco2.settings import Settings, load_settings
from eco2.telemetry import configure, get_logger
from runtime import LOOPBACK, openapi
from runtime.routes import ROUTES, Route, route_of
from runtime.signin import SignIn
from runtime.throttle import SHED_HEADER, AdaptiveThrottle

log = get_logger(__name__)
_tracer = telemetry.tracer(__name__)
_duration = telemetry.meter(__name__).create_histogram(
    "http.server.request.duration",
    unit="s",
    description="Requests through the gateway by route, method and status; a stream counts "
    "until it ends.",
)

POOL_IDLE_S = 30
"""How long an idle upstream connection stays in the pool: shorter than every upstream keeps one
(``runtime.domain_host.IDLE_KEEPALIVE_S``; Ray Serve's proxy: 90 s)."""
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS"})
SERVE_SERVICE = "serve"
"""The route table's name for Ray Serve's HTTP entry (its applications' routes)."""
SERVE_APPLICATION_PREFIXES = ("/", "/api/v1/chat")
"""The ``route_prefix`` of each Serve application (``ray-cluster.yaml``; a unit test keeps them
equal): each serves its own OpenAPI document under it."""
LISTEN_BACKLOG = 4096
"""Connections the kernel queues until the gateway accepts them (capped by
``net.core.somaxconn``). aiohttp's default of 128 overflowed when a thousand users connected at
once: each SYN dropped cost its client a 1 s retransmit, several a connect timeout
(docs/benchmarks.md, issue 16)."""
NOT_DEPLOYED_RETRY_AFTER_S = 2
UNREACHABLE_RETRY_AFTER_S = 1


IDENTITY_HEADERS = (USER_HEADER, PROVIDER_HEADER)
CREDENTIAL_HEADERS = ("authorization", "cookie", "traceparent", "x-request-id")
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
NOT_FORWARDED = HOP_BY_HOP | {"host", *IDENTITY_HEADERS}
NOT_RETURNED = HOP_BY_HOP | {"content-length"}  # set from the upstream's, after prepare


CLIENT_GONE = (ConnectionResetError, aiohttp.ClientConnectionResetError)
"""What writing to a client that closed its connection raises: a browser leaving the page or an
``EventSource`` closed after ``done`` is normal, not a proxy failure."""
AUTHZ_PASSED_HEADERS = ("content-type", "www-authenticate", "retry-after")
AUTHZ_ATTRIBUTE = "eco2.authz"
"""On the gateway's span of a signed-in request whose token it verified: whether ext-authz was
asked or its allow of a moment ago was used."""


def _json_error(
    status: int, code: str, message: str, retry_after_s: int | None = None
) -> web.Response:
    headers = {"Retry-After": str(retry_after_s)} if retry_after_s is not None else None
    return web.json_response(
        {"error": {"code": code, "message": message}}, status=status, headers=headers
    )


def _refusal(exc: Eco2Error) -> web.Response:
    """The gateway's own refusal of a token, shaped as ext-authz's would be."""
    if isinstance(exc, Unavailable):
        retry_after = max(1, round(exc.retry_after_s))
        return _json_error(503, "authz_unavailable", exc.message, retry_after)
    if isinstance(exc, Forbidden):
        return _json_error(403, exc.code, exc.message)
    response = _json_error(401, exc.code, exc.message)
    response.headers.update(CHALLENGE)
    return response


def upstream_headers(incoming: Mapping[str, str], identity: Mapping[str, str]) -> CIMultiDict[str]:
    """The client's headers minus hop-by-hop and identity ones, plus ext-authz's identity."""
    headers: CIMultiDict[str] = CIMultiDict()
    for name, value in incoming.items():
        if name.lower() not in NOT_FORWARDED:
            headers.add(name, value)
    for name, value in identity.items():
        headers[name] = value
    return headers


OPENAPI_PATH, DOCS_PATH = "/openapi.json", "/docs"
OPENAPI_CACHE_S = 30.0
TITLE = "Eco² API"


class Gateway:
    def __init__(self, settings: Settings, sign_in: SignIn) -> None:
        self._settings, self._sign_in = settings, sign_in
        self._session: aiohttp.ClientSession | None = None
        self._openapi: tuple[float, dict[str, Any]] | None = None
        api = settings.api
        self._throttles = {
            r.prefix: AdaptiveThrottle(api.shed_k, api.shed_horizon_s)
            for r in ROUTES
            if r.shed and api.shed_k > 0
        }

    async def start(self, _app: web.Application) -> None:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=4000, ttl_dns_cache=300, keepalive_timeout=POOL_IDLE_S
            ),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=5),
            auto_decompress=False,
        )
        await self._sign_in.start()

    async def stop(self, _app: web.Application) -> None:
        await self._sign_in.stop()
        if self._session is not None:
            await self._session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None, "the gateway is not started"
        return self._session

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.path == "/-/healthz":
            return web.json_response({"status": "ok"})
        if request.path == "/-/readyz":
            return await self._ready()
        if request.path == OPENAPI_PATH:
            return web.json_response(await self._openapi_document())
        if request.path == DOCS_PATH:
            page = openapi.docs_page(OPENAPI_PATH, TITLE)
            return web.Response(text=page, content_type="text/html")
        route = route_of(request.path)
        if route is None:
            return _json_error(404, "not_found", f"no API at {request.path}; see the README")
        started = time.perf_counter()
        status = 500
        try:
            response = await self._routed(request, route)
            status = response.status
            return response
        finally:
            attributes: dict[str, str | int] = {
                "http.request.method": request.method,
                "http.route": route.prefix,
                "http.response.status_code": status,
            }
            _duration.record(time.perf_counter() - started, attributes)

    async def _routed(self, request: web.Request, route: Route) -> web.StreamResponse:
        # The trace of a request starts here (or continues the client's): the sign-in check
        # and the upstream receive this span's traceparent, not the client's.
        with _tracer.start_as_current_span(
            f"{request.method} {route.prefix}",
            context=telemetry.extract(request.headers.get("traceparent")),
            kind=SpanKind.SERVER,
            attributes={
                "http.request.method": request.method,
                "url.path": request.path,
                "http.route": route.prefix,
                "eco2.upstream": route.service,
            },
        ) as span:
            traceparent = telemetry.inject()
            limit = self._body_limit(route)
            if (request.content_length or 0) > limit:
                return _too_large(limit)
            identity: dict[str, str] = {}
            if route.sign_in:
                refused, identity = await self._check(request, traceparent)
                if refused is not None:
                    span.set_attribute("http.response.status_code", refused.status)
                    return refused
            throttle = self._throttles.get(route.prefix) if request.method == "POST" else None
            if throttle is not None and throttle.refuses():
                span.set_attribute("http.response.status_code", 503)
                return _shed(route, throttle)
            response = await self._proxy(request, route, identity, traceparent)
            if throttle is not None:
                throttle.answered(response.status != 503, _retry_after(response))
            span.set_attribute("http.response.status_code", response.status)
            if response.status >= 500:
                span.set_status(Status(StatusCode.ERROR))
            return response

    def _body_limit(self, route: Route) -> int:
        return self._settings.image.max_bytes if route.upload else self._settings.api.max_body_bytes

    async def _check(
        self, request: web.Request, traceparent: str | None
    ) -> tuple[web.Response | None, dict[str, str]]:
        """The token verified here, then ext-authz's say (unless it allowed this token a moment
        ago): ``(None, identity headers)``, or the refusal to answer with."""
        cookie = request.cookies.get(self._settings.auth.access_cookie)
        try:
            claims = await self._sign_in.claims(request.headers.get("authorization"), cookie)
        except (Unauthenticated, Forbidden, Unavailable) as exc:
            return _refusal(exc), {}
        identity = principal_of(claims).headers()
        remembered = self._sign_in.decisions.allowed(claims["jti"])
        said = "remembered" if remembered else "asked"
        trace.get_current_span().set_attribute(AUTHZ_ATTRIBUTE, said)
        if remembered:
            return None, identity
        refused = await self._ask_authz(request, traceparent)
        if refused is None:
            self._sign_in.decisions.allow(claims["jti"])
        return refused, identity

    async def _ask_authz(
        self, request: web.Request, traceparent: str | None
    ) -> web.Response | None:
        """Envoy-style ext_authz: 200 → None; anything else is passed back."""
        headers = {k: v for k, v in request.headers.items() if k.lower() in CREDENTIAL_HEADERS}
        _with_traceparent(headers, traceparent)
        url = f"{self._settings.services.url_of('authz')}/check{request.path}"
        try:
            async with self.session.request(
                request.method,
                url,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self._settings.services.call_timeout_s),
            ) as answer:
                if answer.status == 200:
                    return None
                body = await answer.read()
                passed = {
                    k: v for k, v in answer.headers.items() if k.lower() in AUTHZ_PASSED_HEADERS
                }
                return web.Response(status=answer.status, body=body, headers=passed)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("ext-authz unreachable", error=str(exc))
            return _json_error(
                503, "authz_unavailable", "sign-in check unavailable; retry shortly", 1
            )

    async def _openapi_document(self) -> dict[str, Any]:
        """The merged document of every routed service (see :mod:`runtime.openapi`), rebuilt
        at most every ``OPENAPI_CACHE_S``."""
        if self._openapi is not None and time.monotonic() - self._openapi[0] < OPENAPI_CACHE_S:
            return self._openapi[1]
        services = sorted({route.service for route in ROUTES})
        answers = await asyncio.gather(*(self._fetch_openapi(s) for s in services))
        documents = {s: doc for s, (doc, _) in zip(services, answers, strict=True) if doc}
        unavailable = {s: why for s, (_, why) in zip(services, answers, strict=True) if why}
        merged = openapi.merge(documents, route_of, title=TITLE, unavailable=unavailable)
        if not unavailable:
            self._openapi = (time.monotonic(), merged)
        return merged

    async def _fetch_openapi(self, service: str) -> tuple[dict[str, Any] | None, str | None]:
        """The service's document; Ray Serve's is the :func:`openapi.union` of its
        applications' (each FastAPI ingress documents only its own routes)."""
        base = self._settings.services.url_of(service)
        if service != SERVE_SERVICE:
            return await self._fetch_one_openapi(f"{base}{OPENAPI_PATH}")
        answers = await asyncio.gather(
            *(
                self._fetch_one_openapi(f"{base}{prefix.rstrip('/')}{OPENAPI_PATH}")
                for prefix in SERVE_APPLICATION_PREFIXES
            )
        )
        # What answered is documented; an application not deployed (yet) is said unavailable,
        # without hiding the others' routes.
        documents = [doc for doc, _ in answers if doc is not None]
        why = "; ".join(reason for _, reason in answers if reason) or None
        return (openapi.union(documents) if documents else None), why

    async def _fetch_one_openapi(self, url: str) -> tuple[dict[str, Any] | None, str | None]:
        timeout = aiohttp.ClientTimeout(total=self._settings.services.call_timeout_s)
        try:
            async with self.session.get(url, timeout=timeout) as answer:
                if answer.status != 200:
                    return None, f"HTTP {answer.status}"
                document: dict[str, Any] = await answer.json()
                return document, None
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            return None, f"{type(exc).__name__}: {exc}"

    async def _ready(self) -> web.Response:
        """Ready when auth's keys are loaded here and ext-authz, asked through this gateway's
        own client, is ready (its keys loaded, blacklist reachable), so a signed-in request
        would pass the check."""
        if not self._sign_in.ready:
            return _json_error(503, "not_ready", "auth's signing keys are not loaded yet", 1)
        url = f"{self._settings.services.url_of('authz')}/readyz"
        try:
            async with self.session.get(
                url, timeout=aiohttp.ClientTimeout(total=self._settings.services.call_timeout_s)
            ) as answer:
                if answer.status == 200:
                    return web.json_response({"status": "ready"})
                reason = (await answer.read()).decode(errors="replace")[:300]
        except (aiohttp.ClientError, TimeoutError) as exc:
            reason = f"{type(exc).__name__}: {exc}"
        return _json_error(503, "not_ready", f"ext-authz is not ready: {reason}", 1)

    async def _proxy(
        self,
        request: web.Request,
        route: Route,
        identity: Mapping[str, str],
        traceparent: str | None,
    ) -> web.StreamResponse:
        base = self._settings.services.url_of(route.service)
        headers = upstream_headers(request.headers, identity)
        _with_traceparent(headers, traceparent)
        headers["X-Forwarded-For"] = request.remote or ""
        headers["X-Forwarded-Proto"] = request.scheme
        headers["X-Forwarded-Host"] = request.host  # auth builds OAuth redirect URLs from it
        body: Any = request.content if request.body_exists else None
        if body is not None and request.content_length is None and not route.upload:
            # A chunked body: read it here, within the limit (the upload streams on; the image
            # service counts its bytes itself).
            limit = self._settings.api.max_body_bytes
            body = await _read_within(request, limit)
            if body is None:
                return _too_large(limit)
        # A request without a body that cannot have changed anything (the pooled connection
        # was closed under it) is sent once more, on a new connection.
        retry = request.method in IDEMPOTENT and body is None
        try:
            try:
                upstream = await self._send(request, f"{base}{request.rel_url}", headers, body)
            except aiohttp.ServerDisconnectedError:
                if not retry:
                    raise
                upstream = await self._send(request, f"{base}{request.rel_url}", headers, body)
        except aiohttp.ClientConnectorError as exc:  # never reached it: nothing was done
            log.warning("upstream unreachable", service=route.service, error=str(exc))
            return _json_error(
                503,
                "upstream_unavailable",
                f"{route.service} is unreachable; retry shortly",
                UNREACHABLE_RETRY_AFTER_S,
            )
        except (aiohttp.ClientError, TimeoutError) as exc:  # it may have acted on the request
            log.warning("upstream lost the request", service=route.service, error=str(exc))
            return _json_error(
                502, "upstream_unavailable", f"{route.service} dropped the request; retry"
            )
        if _not_deployed(route, upstream):
            upstream.release()
            return _json_error(
                503,
                "upstream_not_ready",
                f"{route.prefix} is being deployed (again); retry shortly",
                NOT_DEPLOYED_RETRY_AFTER_S,
            )
        if _lost_by_serve(route, upstream):
            upstream.release()
            log.warning("serve lost the request", path=request.path, status=upstream.status)
            return _json_error(
                502,
                "upstream_unavailable",
                f"{route.prefix} lost the request (a replica stopped under it); retry it, "
                "with the same X-Idempotency-Key for a submit",
                UNREACHABLE_RETRY_AFTER_S,
            )
        async with upstream:
            response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
            for name, value in upstream.headers.items():
                if name.lower() not in NOT_RETURNED:
                    response.headers.add(name, value)
            if upstream.headers.get("content-length") is not None:
                response.content_length = int(upstream.headers["content-length"])
            try:
                await response.prepare(request)
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
                await response.write_eof()
            except CLIENT_GONE:
                log.debug("client closed its connection", path=request.path)
            except (aiohttp.ClientError, TimeoutError) as exc:  # the upstream broke off
                log.error(
                    "upstream failed mid-response",
                    service=route.service,
                    path=request.path,
                    error=f"{type(exc).__name__}: {exc}",
                )
                if request.transport is not None:  # the client must see it is cut short
                    request.transport.close()
            return response

    async def _send(
        self, request: web.Request, url: str, headers: CIMultiDict[str], body: Any
    ) -> aiohttp.ClientResponse:
        return await self.session.request(
            request.method, url, headers=headers, data=body, allow_redirects=False
        )


def _shed(route: Route, throttle: AdaptiveThrottle) -> web.Response:
    response = _json_error(
        503,
        "overloaded",
        f"{route.prefix} is refusing work it cannot take now; retry after the time given",
        max(1, math.ceil(throttle.retry_after_s)),
    )
    response.headers[SHED_HEADER] = "gateway"
    return response


def _retry_after(response: web.StreamResponse) -> float | None:
    try:
        return float(response.headers["Retry-After"])
    except (KeyError, ValueError):
        return None


def _too_large(limit: int) -> web.Response:
    refusal = body_too_large(limit)
    return _json_error(413, refusal.code, refusal.message)


async def _read_within(request: web.Request, limit: int) -> bytes | None:
    """The whole body, or None once it passes ``limit`` bytes (the rest is left unread)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _from_serve_proxy(route: Route, upstream: aiohttp.ClientResponse, status: int) -> bool:
    """Serve's proxy itself answering ``status`` for a route of Serve's: in plain text, where
    every application answers its own errors in JSON."""
    return (
        route.service == SERVE_SERVICE
        and upstream.status == status
        and upstream.content_type != "application/json"
    )


def _not_deployed(route: Route, upstream: aiohttp.ClientResponse) -> bool:
    """Serve's proxy answering that no application serves the path: the application is being
    deployed, for instance again after Ray's head restarted. Not the "not found" of a
    resource."""
    return _from_serve_proxy(route, upstream, 404)


def _lost_by_serve(route: Route, upstream: aiohttp.ClientResponse) -> bool:
    """Serve's proxy answering 500: the replica died under the request (Ray's
    ``RayActorError``), for instance while its ingress is being replaced. The request may have
    been acted on, so it is the caller's to retry (a submit's idempotency key makes that safe)."""
    return _from_serve_proxy(route, upstream, 500)


def _with_traceparent(headers: MutableMapping[str, str], traceparent: str | None) -> None:
    for name in [k for k in headers if k.lower() == "traceparent"]:
        del headers[name]
    if traceparent:
        headers["traceparent"] = traceparent


def build_app(settings: Settings, sign_in: SignIn | None = None) -> web.Application:
    """The gateway's app; ``sign_in`` replaces the check that fetches auth's keys over HTTP."""
    gateway = Gateway(settings, sign_in or SignIn(settings))
    app = web.Application(client_max_size=settings.image.max_bytes + 1024 * 1024)
    app.on_startup.append(gateway.start)
    app.on_cleanup.append(gateway.stop)
    # Any path, a newline in it too (``.`` would not match one: aiohttp's own plain-text 404).
    app.router.add_route("*", r"/{tail:[\s\S]*}", gateway.handle)
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m runtime.gateway", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default=LOOPBACK, help="address to bind (default loopback)")
    args = parser.parse_args(argv)
    settings = load_settings()
    configure("gateway", settings.telemetry)
    web.run_app(
        build_app(settings),
        host=args.host,
        port=args.port,
        print=None,
        access_log=None,
        loop=new_event_loop(),
        backlog=LISTEN_BACKLOG,
    )


if __name__ == "__main__":
    main()
