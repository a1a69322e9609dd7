"""Validation of an ``image_url`` against SSRF: its shape, and the addresses its host resolves to.

Accepted: ``http``/``https`` URLs whose host is in the allow-list (the image domain's CDN hosts,
no DNS look-up), or whose host resolves only to public addresses. Refused: other schemes, literal
IP addresses, user-info, and hosts resolving to loopback, private, link-local (cloud metadata),
shared, reserved or multicast addresses. Every refusal is an :class:`InvalidInput` with code
``invalid_image_url`` that says what to send instead.

:func:`check` runs at submit. A name that resolved to public addresses then may resolve to
private ones later (DNS rebinding), so whatever fetches the URL afterwards checks again at the
moment it connects (:mod:`eco2.safe_fetch`); :func:`resolve_checked` is the check both share,
with the look-up and the address policy injectable for tests.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence
from urllib.parse import urlsplit

from eco2.errors import InvalidInput, Unavailable

MAX_URL_LENGTH = 2048

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Lookup = Callable[[str], Awaitable[Sequence[str]]]
"""Host name → the addresses it resolves to (textual IPs); raises ``OSError`` when it does not."""
AddressPolicy = Callable[[str, IPAddress], bool]
"""``(host, address)`` → may a fetch of ``host`` connect to ``address``."""

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def refusal(message: str) -> InvalidInput:
    """The error of a refused ``image_url`` (not retriable: the same URL is refused again)."""
    return InvalidInput(message, code="invalid_image_url")


def check_shape(url: str, allowed_hosts: Iterable[str]) -> tuple[str, bool]:
    """Return ``(host, allow_listed)`` or raise :class:`InvalidInput` for a malformed URL."""
    if len(url) > MAX_URL_LENGTH:
        raise refusal(
            f"image_url is longer than {MAX_URL_LENGTH} characters; upload the image first"
        )
    try:
        parts = urlsplit(url)
        hostname = parts.hostname  # raises for brackets that hold no IPv6 address
    except ValueError as exc:
        raise refusal(f"image_url is not a valid URL ({exc}); check it") from exc
    if parts.scheme not in ("http", "https"):
        raise refusal(
            "image_url must be an http(s) URL, e.g. the cdn_url of POST /api/v1/images/scan"
        )
    if parts.username or parts.password:
        raise refusal("image_url must not carry credentials")
    host = (hostname or "").lower()
    if not host:
        raise refusal("image_url has no host")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        raise refusal("image_url must name a host, not an IP address")
    return host, host in {h.lower() for h in allowed_hosts}


def is_public(address: IPAddress) -> bool:
    """A globally routable unicast address, also for IPv4 carried inside IPv6 (mapped, 6to4,
    Teredo, NAT64), whose embedded address must be public too."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None and not is_public(embedded):
            return False
    return address.is_global and not address.is_multicast


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def public_only(host: str, address: IPAddress) -> bool:
    """The production policy: any host, public addresses only."""
    return is_public(address)


async def system_lookup(host: str) -> Sequence[str]:
    """The operating system's resolver (``getaddrinfo``), off the event loop."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


async def resolve_checked(
    host: str, *, lookup: Lookup = system_lookup, policy: AddressPolicy = public_only
) -> list[IPAddress]:
    """The addresses of ``host``, every one allowed by ``policy``; raises :class:`InvalidInput`
    if the name does not resolve or any address is refused (one private answer among public
    ones is enough: a client may pick any of them), :class:`Unavailable` (retriable) if the
    resolver itself failed for now."""
    try:
        answers = await lookup(host)
    except OSError as exc:
        if isinstance(exc, socket.gaierror) and exc.errno == socket.EAI_AGAIN:
            # The resolver failed for now, not the name: a later attempt may pass.
            raise Unavailable(
                f"image_url host {host!r} could not be resolved now; try again",
                code="dns_unavailable",
            ) from exc
        raise refusal(f"image_url host {host!r} does not resolve; check the URL") from exc
    addresses = [ipaddress.ip_address(answer) for answer in answers]
    if not addresses:
        raise refusal(f"image_url host {host!r} does not resolve; check the URL")
    if not all(policy(host, address) for address in addresses):
        raise refusal(f"image_url host {host!r} resolves to a non-public address")
    return addresses


async def check(
    url: str,
    allowed_hosts: Iterable[str],
    *,
    lookup: Lookup = system_lookup,
    policy: AddressPolicy = public_only,
) -> None:
    """Raise :class:`InvalidInput` unless ``url`` is safe to fetch *now* (see the module doc
    for why a later fetch checks again)."""
    host, allow_listed = check_shape(url, allowed_hosts)
    if not allow_listed:
        await resolve_checked(host, lookup=lookup, policy=policy)
