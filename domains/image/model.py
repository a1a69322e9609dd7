"""The image domain's rules: channels, object keys, upload signatures, content types, magic bytes.

Plain Python (no sockets, no I/O). Every refusal is an :mod:`eco2.errors` type whose message says
what to send instead; nothing here decides HTTP status codes.

Upload URLs are signed like this: the service signs ``(method, key, expires, uid, ct)`` with
HMAC-SHA256 under ``settings.image.signing_key`` (hex digest in ``sig``). The five parts are
serialised as a JSON array, so no choice of values can shift a boundary between two of them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlencode

import filetype

from eco2.errors import Forbidden, InvalidInput, NotFound, UnsupportedMediaType

CHANNELS: tuple[str, ...] = ("chat", "scan", "my")
UPLOAD_PATH = "/api/v1/images/upload/"
OBJECTS_PATH = "/api/v1/images/objects/"
SIGNED_METHOD = "PUT"
MAX_FILENAME_CHARS = 255
MAX_METADATA_KEYS = 20
MAX_METADATA_BYTES = 2048
SNIFF_BYTES = 8192
"""How much of the body the magic-byte check looks at (what ``filetype`` reads at most)."""


@dataclass(frozen=True)
class MediaType:
    label: str
    extensions: tuple[str, ...]


MEDIA_TYPES: dict[str, MediaType] = {
    "image/jpeg": MediaType("JPEG", (".jpg", ".jpeg")),
    "image/png": MediaType("PNG", (".png",)),
    "image/webp": MediaType("WebP", (".webp",)),
    "image/gif": MediaType("GIF", (".gif",)),
    "image/heic": MediaType("HEIC", (".heic",)),
    "image/avif": MediaType("AVIF", (".avif",)),
    "image/bmp": MediaType("BMP", (".bmp",)),
}
"""Content types this service can verify by their magic bytes, with their file extensions.
``settings.image.content_types`` chooses which of them are accepted."""

_SNIFF_ALIASES = {"image/apng": "image/png"}  # an animated PNG is a PNG
_KEY = re.compile(r"(chat|scan|my)/\d{4}/\d{2}/\d{2}/[0-9a-f]{32}\.[a-z0-9]{2,5}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_channel(channel: str) -> str:
    """``channel`` if it is one of :data:`CHANNELS`, else :class:`NotFound` naming them."""
    if channel not in CHANNELS:
        raise NotFound(
            f"unknown image channel {channel!r}; use one of: {', '.join(CHANNELS)}",
            code="unknown_channel",
        )
    return channel


def check_content_type(content_type: str, accepted: tuple[str, ...]) -> MediaType:
    """The media type of an accepted ``content_type`` or :class:`InvalidInput` listing them."""
    media = MEDIA_TYPES.get(content_type)
    if media is None or content_type not in accepted:
        usable = ", ".join(t for t in accepted if t in MEDIA_TYPES)
        raise InvalidInput(
            f"content_type {content_type!r} is not accepted; use one of: {usable}",
            code="unsupported_content_type",
        )
    return media


def extension_of(filename: str, content_type: str, accepted: tuple[str, ...]) -> str:
    """The lower-case extension of ``filename`` (e.g. ``.png``), checked against ``content_type``.

    Raises :class:`InvalidInput` for an empty, over-long or control-character file name, a
    content type not in ``accepted``, or an extension that does not belong to the content type.
    """
    media = check_content_type(content_type, accepted)
    if not 1 <= len(filename) <= MAX_FILENAME_CHARS or _CONTROL.search(filename):
        raise InvalidInput(
            f"filename must be 1-{MAX_FILENAME_CHARS} printable characters, e.g. bottle.jpg",
            code="invalid_filename",
        )
    extension = PurePosixPath(filename.replace("\\", "/")).suffix.lower()
    if extension not in media.extensions:
        raise InvalidInput(
            f"filename {filename!r} does not match content_type {content_type}: name the file "
            f"*{' or *'.join(media.extensions)} or declare the content type of the file",
            code="extension_mismatch",
        )
    return extension


def check_metadata(metadata: dict[str, Any] | None) -> dict[str, Any]:
    """``metadata`` (``{}`` when absent) if it is small: at most :data:`MAX_METADATA_KEYS` keys
    and :data:`MAX_METADATA_BYTES` bytes of JSON; else :class:`InvalidInput`."""
    metadata = metadata or {}
    try:
        size = len(json.dumps(metadata, ensure_ascii=False).encode())
    except (RecursionError, ValueError):
        size = MAX_METADATA_BYTES + 1
    if len(metadata) > MAX_METADATA_KEYS or size > MAX_METADATA_BYTES:
        raise InvalidInput(
            f"metadata is too large: at most {MAX_METADATA_KEYS} keys and "
            f"{MAX_METADATA_BYTES} bytes of JSON",
            code="metadata_too_large",
        )
    if _has_nul(metadata):  # PostgreSQL cannot store U+0000 in jsonb
        raise InvalidInput("metadata must not contain NUL characters", code="invalid_metadata")
    return metadata


def _has_nul(value: Any) -> bool:
    pending = [value]  # iterative: nesting depth is bounded only by the byte limit
    while pending:
        item = pending.pop()
        if isinstance(item, str) and "\x00" in item:
            return True
        if isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


def build_key(channel: str, extension: str, at: datetime, upload_id: uuid.UUID) -> str:
    """``{channel}/{yyyy}/{mm}/{dd}/{uuid hex}{ext}``: the object key of one upload."""
    return f"{channel}/{at:%Y/%m/%d}/{upload_id.hex}{extension}"


def check_key(key: str) -> str:
    """``key`` if it has the shape :func:`build_key` makes, else :class:`NotFound`.

    Routes that take a key from a URL call this first, so no other path reaches storage.
    """
    if not _KEY.fullmatch(key):
        raise NotFound(f"no image {key!r}: keys look like scan/2025/01/31/<32 hex>.jpg")
    return key


def channel_of(key: str) -> str:
    return key.split("/", 1)[0]


def cdn_url(cdn_base_url: str, key: str) -> str:
    """Where clients fetch an object: ``<cdn_base_url>/<key>``."""
    return f"{cdn_base_url.rstrip('/')}/{key}"


@dataclass(frozen=True)
class UploadTicket:
    """What an upload URL grants: PUT ``key`` as user ``uid`` with ``content_type`` until
    ``expires`` (unix seconds)."""

    key: str
    expires: int
    uid: str
    content_type: str

    def signature(self, signing_key: bytes) -> str:
        """Hex HMAC-SHA256 of ``[method, key, expires, uid, ct]`` (JSON) under ``signing_key``."""
        message = json.dumps(
            [SIGNED_METHOD, self.key, self.expires, self.uid, self.content_type],
            separators=(",", ":"),
        )
        return hmac.new(signing_key, message.encode(), hashlib.sha256).hexdigest()

    def upload_url(self, signing_key: bytes) -> str:
        """The relative URL (through the gateway) the client PUTs the file to."""
        query = urlencode(
            {
                "expires": self.expires,
                "uid": self.uid,
                "ct": self.content_type,
                "sig": self.signature(signing_key),
            }
        )
        return f"{UPLOAD_PATH}{self.key}?{query}"


def ticket_of(
    key: str, expires: str | None, uid: str | None, ct: str | None, sig: str | None
) -> tuple[UploadTicket, str]:
    """The ticket and signature carried by an upload URL's query, or :class:`Forbidden`."""
    if not (expires and uid and ct and sig) or not expires.isdecimal():
        raise Forbidden(
            "this upload URL is incomplete (expires, uid, ct and sig are required); use the "
            "upload_url returned by POST /api/v1/images/{channel} unchanged",
            code="invalid_upload_url",
        )
    return UploadTicket(key=key, expires=int(expires), uid=uid, content_type=ct), sig


def verify_ticket(ticket: UploadTicket, sig: str, signing_key: bytes, now: datetime) -> None:
    """Raise :class:`Forbidden` unless ``sig`` signs ``ticket`` and it has not expired.

    The signature is compared in constant time and checked before the expiry, so an altered
    ``expires`` is reported as a bad signature.
    """
    if not hmac.compare_digest(ticket.signature(signing_key), sig.lower()):
        raise Forbidden(
            "the upload URL's signature does not match; use the upload_url returned by "
            "POST /api/v1/images/{channel} unchanged",
            code="invalid_signature",
        )
    if now.timestamp() > ticket.expires:
        raise Forbidden(
            "this upload URL has expired; request a new one with POST /api/v1/images/{channel}",
            code="upload_url_expired",
        )


def media_type_of_header(value: str | None) -> str:
    """The bare, lower-case media type of a ``Content-Type`` header (``""`` when absent)."""
    return (value or "").split(";", 1)[0].strip().lower()


def check_declared_type(header: str | None, signed_type: str) -> None:
    """Raise :class:`UnsupportedMediaType` unless the request's Content-Type is the signed one."""
    if media_type_of_header(header) != signed_type:
        raise UnsupportedMediaType(
            f"send the header Content-Type: {signed_type} (from required_headers); "
            f"got {header or 'none'}",
            code="content_type_mismatch",
        )


def sniffed_type(head: bytes) -> str | None:
    """The content type the magic bytes at the start of a file indicate, if any."""
    guessed = filetype.guess_mime(head[:SNIFF_BYTES]) if head else None
    if guessed is None:
        return None
    return _SNIFF_ALIASES.get(str(guessed), str(guessed))


def check_magic(head: bytes, declared: str) -> None:
    """Raise :class:`UnsupportedMediaType` unless ``head`` starts like a ``declared`` file."""
    found = sniffed_type(head)
    if found != declared:
        media = MEDIA_TYPES.get(declared)
        label = media.label if media else declared
        looks = f"its bytes look like {found}" if found else "its type is not recognisable"
        raise UnsupportedMediaType(
            f"the file is not a {label} ({looks}); upload a real {label} file or request an "
            "upload URL with the file's own content type",
            code="content_mismatch",
        )
