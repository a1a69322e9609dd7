"""Fetching an image from a URL nobody vouches for, without letting the URL reach our network.

:class:`ImageFetcher` is what a stage uses instead of handing such a URL to a model (whose
server, if self-hosted, would fetch it from inside the cluster). Guarantees of
:meth:`ImageFetcher.fetch`:

* **checked where it connects**: the host is resolved by :class:`GuardedResolver`, and the
  connection goes only to the addresses it just checked (no DNS cache, no window between the
  check and the connect, so a name that resolved public at submit and private now is refused);
  IP-literal hosts, which aiohttp would connect to without asking the resolver, are refused
  before any request (:func:`eco2.url_guard.check_shape`); no proxy from the environment;
* **redirects by hand**: at most ``max_redirects`` hops, each ``Location`` checked like the
  first URL, by shape and by the same resolver;
* **bounded**: ``connect_timeout_s`` per connection, ``total_timeout_s`` for every hop and the
  body together, at most ``max_bytes`` read (a larger ``Content-Length`` is refused unread, a
  longer body is refused at the first chunk past the cap); no compressed bodies (a small gzip
  may inflate without bound);
* **an image**: ``Content-Type: image/*`` (not SVG, a document that may name further URLs), and
  the body's magic bytes one of :data:`MODEL_IMAGE_TYPES`, which is the type the result carries
  (whatever the server claimed).

Raised: :class:`~eco2.errors.InvalidInput` (``invalid_image_url``, or its subclasses
:class:`~eco2.errors.TooLarge` / :class:`~eco2.errors.UnsupportedMediaType`) when the same URL
would be refused again, :class:`~eco2.errors.Unavailable` (retriable) for timeouts, broken
connections and 5xx/429 answers.
"""

from __future__ import annotations

import asyncio
import base64
import re
import socket
from dataclasses import dataclass
from urllib.parse import urljoin

import aiohttp
import filetype
from aiohttp.abc import AbstractResolver, ResolveResult

from eco2 import url_guard
from eco2.errors import InvalidInput, TooLarge, Unavailable, UnsupportedMediaType
from eco2.settings import ImageFetchSettings

_CHUNK = 64 * 1024
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_TRANSIENT_STATUSES = frozenset({408, 425, 429})
_IMAGE_TYPE = re.compile(r"image/[a-z0-9][a-z0-9.+-]*")
_DOCUMENT_TYPES = frozenset({"image/svg+xml"})
_GENERIC_TYPES = frozenset({"application/octet-stream", "binary/octet-stream"})
"""Types that say nothing of the bytes (S3's default for an object uploaded without one): the
magic bytes decide, as they do for every body."""
MODEL_IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
"""What vision models take inline (OpenAI: PNG, JPEG, WebP, GIF)."""
_SNIFF_BYTES = 261  # what ``filetype`` reads at most
_HEADERS = {"User-Agent": "eco2-image-fetch", "Accept": "image/*", "Accept-Encoding": "identity"}


@dataclass(frozen=True)
class FetchedImage:
    content_type: str
    """The type the magic bytes show (``image/png``…), not the one the server claimed."""
    body: bytes

    def data_url(self) -> str:
        """The image inline, as a ``data:`` URL (base64) a model accepts in place of a URL."""
        return f"data:{self.content_type};base64,{base64.b64encode(self.body).decode('ascii')}"


class GuardedResolver(AbstractResolver):
    """aiohttp's resolver that answers only with addresses ``policy`` allows, and refuses
    (:class:`InvalidInput`, which aiohttp passes through untouched) a name with any other."""

    def __init__(
        self,
        lookup: url_guard.Lookup = url_guard.system_lookup,
        policy: url_guard.AddressPolicy = url_guard.public_only,
    ) -> None:
        self._lookup, self._policy = lookup, policy

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        addresses = await url_guard.resolve_checked(host, lookup=self._lookup, policy=self._policy)
        found: list[ResolveResult] = []
        for address in addresses:
            kind = socket.AF_INET if address.version == 4 else socket.AF_INET6
            if family in (socket.AF_UNSPEC, kind):
                found.append(
                    ResolveResult(
                        hostname=host,
                        host=str(address),
                        port=port,
                        family=kind,
                        proto=0,
                        flags=socket.AI_NUMERICHOST,
                    )
                )
        if not found:
            raise url_guard.refusal(f"image_url host {host!r} has no address to connect to")
        return found

    async def close(self) -> None:
        return None


class ImageFetcher:
    """One per process: a connection pool whose every connection went through the guard.

    The pool is made on the first fetch (in the running loop) and closed by :meth:`close`."""

    def __init__(
        self,
        *,
        lookup: url_guard.Lookup = url_guard.system_lookup,
        policy: url_guard.AddressPolicy = url_guard.public_only,
        limits: ImageFetchSettings | None = None,
    ) -> None:
        self._resolver = GuardedResolver(lookup, policy)
        self.limits = limits or ImageFetchSettings()
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def data_url(self, url: str) -> str:
        """:meth:`fetch` as a ``data:`` URL."""
        return (await self.fetch(url)).data_url()

    async def fetch(self, url: str) -> FetchedImage:
        """The image at ``url`` under the guarantees of the module doc; raises what it lists."""
        limits = self.limits
        try:
            async with asyncio.timeout(limits.total_timeout_s):
                return await self._follow(url)
        except aiohttp.InvalidURL as exc:
            raise url_guard.refusal(f"image_url is not a URL a client can follow: {exc}") from exc
        except TimeoutError as exc:
            raise Unavailable(
                f"image_url did not deliver an image within {limits.total_timeout_s:g} s",
                code="image_fetch_timeout",
            ) from exc
        except aiohttp.ClientError as exc:
            raise Unavailable(
                f"image_url could not be fetched: {type(exc).__name__}: {exc}",
                code="image_fetch_failed",
            ) from exc

    async def _follow(self, url: str) -> FetchedImage:
        for hop in range(self.limits.max_redirects + 1):
            _check_hop(url, hop)
            async with self._client().get(url, allow_redirects=False) as response:
                if response.status not in _REDIRECT_STATUSES:
                    return await self._image(response)
                url = _location(url, response)
        raise url_guard.refusal(f"image_url redirects more than {self.limits.max_redirects} times")

    async def _image(self, response: aiohttp.ClientResponse) -> FetchedImage:
        _check_status(response.status)
        _check_headers(response, self.limits.max_bytes)
        body = bytearray()
        async for chunk in response.content.iter_chunked(_CHUNK):
            body += chunk
            if len(body) > self.limits.max_bytes:
                response.close()  # stop reading: the rest is never received
                raise _too_large(self.limits.max_bytes)
        sniffed = filetype.guess_mime(bytes(body[:_SNIFF_BYTES])) if body else None
        if sniffed not in MODEL_IMAGE_TYPES:
            raise UnsupportedMediaType(
                f"image_url did not deliver a JPEG, PNG, WebP or GIF image (its bytes are "
                f"{sniffed or 'no known format'})",
                code="image_not_an_image",
            )
        return FetchedImage(sniffed, bytes(body))

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            limits = self.limits
            connector = aiohttp.TCPConnector(resolver=self._resolver, use_dns_cache=False)
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers=_HEADERS,
                timeout=aiohttp.ClientTimeout(
                    total=None,
                    sock_connect=limits.connect_timeout_s,
                    sock_read=limits.total_timeout_s,
                ),
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=False,
                trust_env=False,
            )
        return self._session


def _check_hop(url: str, hop: int) -> None:
    try:
        url_guard.check_shape(url, ())
    except InvalidInput as exc:
        if hop == 0:
            raise
        raise url_guard.refusal(f"image_url redirected to a refused URL: {exc}") from exc


def _location(url: str, response: aiohttp.ClientResponse) -> str:
    location = response.headers.get("Location")
    if not location:
        raise url_guard.refusal(f"image_url answered {response.status} without a Location")
    return urljoin(url, location)


def _check_status(status: int) -> None:
    if status >= 500 or status in _TRANSIENT_STATUSES:
        raise Unavailable(f"image_url answered HTTP {status}", code="image_fetch_failed")
    if status != 200:
        raise InvalidInput(
            f"image_url answered HTTP {status}; send the URL of an image that exists",
            code="image_unavailable",
        )


def _check_headers(response: aiohttp.ClientResponse, max_bytes: int) -> None:
    declared = response.content_type.lower()
    generic = declared in _GENERIC_TYPES
    if not generic and (not _IMAGE_TYPE.fullmatch(declared) or declared in _DOCUMENT_TYPES):
        raise UnsupportedMediaType(
            f"image_url delivered {declared!r}, not a raster image (JPEG, PNG, WebP, GIF)",
            code="image_not_an_image",
        )
    encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise UnsupportedMediaType(
            f"image_url delivered a {encoding!r}-encoded body; serve the image as is",
            code="image_not_an_image",
        )
    if response.content_length is not None and response.content_length > max_bytes:
        raise _too_large(max_bytes)


def _too_large(max_bytes: int) -> TooLarge:
    return TooLarge(
        f"image_url delivered more than {max_bytes // 1024} KiB; send a smaller image",
        code="image_too_large",
    )
