"""A local image origin for the SSRF tests: an aiohttp server on 127.0.0.1 (a free port) that
serves images, redirects, oversize and non-image bodies, and a look-up + address policy that
treat the test name ``images.test`` as public while it resolves to that server.

Only in tests: production uses :func:`eco2.url_guard.public_only`.
"""

from __future__ import annotations

import asyncio
import gzip
import socket
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web

from eco2 import url_guard

PUBLIC_TEST_HOST = "images.test"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(range(64))
STREAM_CHUNK = 64 * 1024
STREAM_TOTAL = 64 * 1024 * 1024


@dataclass
class Origin:
    port: int
    streamed: list[int] = field(default_factory=list)
    """Bytes ``/stream`` had written when the client went away (one entry per request)."""
    stream_ended: asyncio.Event = field(default_factory=asyncio.Event)

    def url(self, path: str, host: str = PUBLIC_TEST_HOST) -> str:
        return f"http://{host}:{self.port}{path}"


def names(extra: dict[str, list[str]] | None = None) -> url_guard.Lookup:
    """A look-up table instead of DNS: ``images.test`` → 127.0.0.1, a private and a metadata
    name, and whatever ``extra`` adds."""
    table = {
        PUBLIC_TEST_HOST: ["127.0.0.1"],
        "internal.test": ["10.0.0.1"],
        "metadata.test": ["169.254.169.254"],
        "loopback.test": ["127.0.0.1"],
        "v6-loopback.test": ["::1"],
        "link-local.test": ["fe80::1"],
        "mixed.test": ["93.184.216.34", "10.0.0.1"],
        **(extra or {}),
    }

    async def lookup(host: str) -> Sequence[str]:
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return table[host]

    return lookup


def changing(host: str, answers: list[list[str]]) -> url_guard.Lookup:
    """A name whose answer changes on every look-up (DNS rebinding); the last answer stays."""
    remaining = list(answers)

    async def lookup(name: str) -> Sequence[str]:
        if name != host:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return remaining.pop(0) if len(remaining) > 1 else remaining[0]

    return lookup


def origin_policy(host: str, address: url_guard.IPAddress) -> bool:
    """Public addresses, and the test origin's own name (which resolves to loopback)."""
    return host == PUBLIC_TEST_HOST or url_guard.is_public(address)


def _app(origin: Origin) -> web.Application:
    async def image(request: web.Request) -> web.Response:
        return web.Response(body=PNG, content_type="image/png")

    def redirect_to(target: str) -> web.Response:
        target = target.replace("{port}", str(origin.port))
        return web.Response(status=302, headers={"Location": target})

    async def redirect(request: web.Request) -> web.Response:
        return redirect_to(request.query["to"])

    async def loop(request: web.Request) -> web.Response:
        return redirect_to("/loop")

    async def stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "image/png"})
        await response.prepare(request)
        sent = 0
        try:
            while sent < STREAM_TOTAL:
                await response.write(PNG if sent == 0 else bytes(STREAM_CHUNK))
                sent += len(PNG) if sent == 0 else STREAM_CHUNK
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            origin.streamed.append(sent)
            origin.stream_ended.set()
        return response

    async def declared(request: web.Request) -> web.Response:
        return web.Response(body=PNG + bytes(STREAM_CHUNK * 2), content_type="image/png")

    async def html(request: web.Request) -> web.Response:
        return web.Response(text="<html>metadata</html>", content_type="text/html")

    async def svg(request: web.Request) -> web.Response:
        body = '<svg xmlns="http://www.w3.org/2000/svg"><image href="http://10.0.0.1/"/></svg>'
        return web.Response(text=body, content_type="image/svg+xml")

    async def untyped(request: web.Request) -> web.Response:
        return web.Response(body=PNG, content_type="binary/octet-stream")

    async def untyped_html(request: web.Request) -> web.Response:
        return web.Response(body=b"<html>x</html>", content_type="application/octet-stream")

    async def liar(request: web.Request) -> web.Response:
        return web.Response(body=b"<html>not a png</html>", content_type="image/png")

    async def bmp(request: web.Request) -> web.Response:
        return web.Response(body=b"BM" + bytes(64), content_type="image/bmp")

    async def gzipped(request: web.Request) -> web.Response:
        return web.Response(
            body=gzip.compress(PNG),
            headers={"Content-Type": "image/png", "Content-Encoding": "gzip"},
        )

    async def missing(request: web.Request) -> web.Response:
        return web.Response(status=404)

    async def busy(request: web.Request) -> web.Response:
        return web.Response(status=503)

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.Response(body=PNG, content_type="image/png")

    app = web.Application()
    app.router.add_get("/img.png", image)
    app.router.add_get("/redirect", redirect)
    app.router.add_get("/loop", loop)
    app.router.add_get("/stream", stream)
    app.router.add_get("/declared", declared)
    app.router.add_get("/html", html)
    app.router.add_get("/svg", svg)
    app.router.add_get("/liar", liar)
    app.router.add_get("/untyped", untyped)
    app.router.add_get("/untyped-html", untyped_html)
    app.router.add_get("/bmp", bmp)
    app.router.add_get("/gzip", gzipped)
    app.router.add_get("/missing", missing)
    app.router.add_get("/busy", busy)
    app.router.add_get("/slow", slow)
    return app


@asynccontextmanager
async def serving() -> AsyncIterator[Origin]:
    """The origin on 127.0.0.1 at a port the kernel picked, for the ``async with`` block."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    origin = Origin(port=sock.getsockname()[1])
    runner = web.AppRunner(_app(origin), handle_signals=False)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    try:
        yield origin
    finally:
        await runner.cleanup()
