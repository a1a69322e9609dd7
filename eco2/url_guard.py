"""Validation of a scan's ``image_url`` against SSRF.

Accepted: ``http``/``https`` URLs whose host is in the allow-list (the image domain's CDN hosts,
no DNS look-up), or whose host resolves only to public addresses. Refused: other schemes, literal
IP addresses, user-info, and hosts resolving to loopback, private, link-local, reserved or
multicast addresses. Every refusal says what to send instead.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

from eco2.errors import InvalidInput

MAX_URL_LENGTH = 2048


def _refuse(message: str) -> InvalidInput:
    return InvalidInput(message, code="invalid_image_url")


def check_shape(url: str, allowed_hosts: Iterable[str]) -> tuple[str, bool]:
    """Return ``(host, allow_listed)`` or raise :class:`InvalidInput` for a malformed URL."""
    if len(url) > MAX_URL_LENGTH:
        raise _refuse(
            f"image_url is longer than {MAX_URL_LENGTH} characters; upload the image first"
        )
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise _refuse(
            "image_url must be an http(s) URL, e.g. the cdn_url of POST /api/v1/images/scan"
        )
    if parts.username or parts.password:
        raise _refuse("image_url must not carry credentials")
    host = (parts.hostname or "").lower()
    if not host:
        raise _refuse("image_url has no host")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        raise _refuse("image_url must name a host, not an IP address")
    return host, host in {h.lower() for h in allowed_hosts}


async def check(url: str, allowed_hosts: Iterable[str]) -> None:
    """Raise :class:`InvalidInput` unless ``url`` is safe to hand to a model for fetching."""
    host, allow_listed = check_shape(url, allowed_hosts)
    if allow_listed:
        return
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise _refuse(f"image_url host {host!r} does not resolve; check the URL") from exc
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global:
            raise _refuse(f"image_url host {host!r} resolves to a non-public address")
